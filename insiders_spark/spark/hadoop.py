"""Hadoop's own file systems through the session's JVM, for the one thing ``pyarrow.fs`` cannot do:
create a file only if it is absent, atomically (the output lock on HDFS and on S3A).

Only a classic session has a JVM: from a Spark Connect client, or for a scheme the JVM has no
connector for, :func:`create_exclusive` answers None and the caller falls back.
"""

from __future__ import annotations

from pyspark.sql import SparkSession

CONDITIONAL_CREATE = "fs.option.create.conditional.overwrite"  # S3A (Hadoop 3.4.2+): a PUT with If-None-Match: *


def create_exclusive(spark: SparkSession | None, path: str, data: bytes) -> tuple[bool, str] | None:
    """Create ``path`` holding ``data`` unless it exists: (True, how) when this call created it,
    (False, how) when it was there; None when no Hadoop file system is reachable for it.

    ``how`` names the mechanism: S3A's conditional create where the store declares it (a PUT with
    ``If-None-Match: *``), else ``create(overwrite=false)`` (atomic on HDFS, whose NameNode creates
    the file under its lock; a check then a create on most other connectors).
    """
    jvm = _jvm(spark)
    if jvm is None:
        return None
    gateway, conf = jvm
    hadoop_path = gateway.org.apache.hadoop.fs.Path(path)
    try:
        fs = hadoop_path.getFileSystem(conf)
    except Exception:  # no connector for this scheme (e.g. s3:// without EMRFS)
        return None
    conditional = bool(fs.hasPathCapability(hadoop_path, CONDITIONAL_CREATE))
    how = "hadoop conditional create (If-None-Match)" if conditional else "hadoop create(overwrite=false)"
    try:
        if conditional:
            stream = fs.createFile(hadoop_path).overwrite(False).must(CONDITIONAL_CREATE, True).build()
        else:
            stream = fs.create(hadoop_path, False)
        try:
            stream.write(bytearray(data))
        finally:
            stream.close()  # S3A's conditional PUT happens here
    except Exception as error:
        if _already_exists(error) or fs.exists(hadoop_path):
            return False, how
        raise
    return True, how


def _jvm(spark: SparkSession | None):
    if spark is None:
        return None
    try:
        context = spark.sparkContext  # a Spark Connect session has none
        return context._jvm, context._jsc.hadoopConfiguration()
    except Exception:
        return None


def _already_exists(error: Exception) -> bool:
    text = str(error)
    return any(marker in text for marker in ("FileAlreadyExistsException", "PreconditionFailed", " 412"))
