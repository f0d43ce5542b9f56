"""What only a classic session can do: the few calls into the driver's JVM (py4j) the job keeps.

This is the one module of the package allowed to reach past PySpark's public API into the JVM
(``tests/spark/test_py4j_guard.py`` fails on any such call elsewhere). Each function is here for a
classic-only feature or a measured gain, and the job skips it over Spark Connect, which has no JVM
in the client's process:

* ``launcher_settings``: under ``spark-submit``, the settings its JVM already holds (they win);
* ``stop_jvm`` and ``jvm_is_running``: the class archive is written when the driver JVM exits
  (``spark.launch.write_class_archive``, the start-up aid measured in benchmarks/README.md);
* ``label_jobs``: every job of a stage, the RDD-based ones of MLlib included, carries the stage's
  tag and description in the Spark UI (a session's tags reach only its SQL executions);
* ``executor_summary``: the executors that did a standalone run's work, lost ones included, from
  Spark's status store (``runs.manifest``);
* ``java_version``: the driver JVM's, read without a Spark job (SQL's ``java_method``, which the
  manifest uses over Connect, runs one, outside every stage the job names);
* ``java_causes``: a Java exception's chain of causes, which classic PySpark leaves inside a
  ``Py4JJavaError`` (``spark.messages``);
* ``create_exclusive``: a file created only if it is absent, atomically, through Hadoop's own file
  systems, the one thing ``pyarrow.fs`` cannot do (the output lock on HDFS and on S3A).

py4j is imported inside the functions: a Spark Connect client may have no py4j at all.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

from pyspark.sql import SparkSession

DESCRIPTION = "spark.job.description"  # SparkContext.setJobDescription's local property
CONDITIONAL_CREATE = "fs.option.create.conditional.overwrite"  # S3A (Hadoop 3.4.2+): a PUT with If-None-Match: *


def launcher_settings() -> set[str]:
    """The keys spark-submit already set (its --conf, --master, defaults), read from its JVM."""
    from pyspark import SparkConf, SparkContext

    SparkContext._ensure_initialized()  # under spark-submit: connects to the running JVM
    return {key for key, _ in SparkConf().getAll()}


def jvm_is_running() -> bool:
    """Whether this process already started (or joined) a driver JVM."""
    from pyspark import SparkContext

    return SparkContext._gateway is not None


def stop_jvm(spark: SparkSession, *, write_archive: bool) -> None:
    """Stop the session and wait until its JVM has exited: normally, so that it writes the archive
    on its way out, or killed, so that it writes nothing (a kill skips the exit hooks)."""
    from pyspark import SparkContext

    spark.stop()
    gateway = SparkContext._gateway
    if gateway is not None and getattr(gateway, "proc", None) is not None:
        if write_archive:
            gateway.proc.stdin.close()  # the JVM exits when its stdin closes
        else:
            gateway.proc.kill()
        gateway.proc.wait(timeout=600)
    SparkContext._gateway = None
    SparkContext._jvm = None


@contextmanager
def label_jobs(spark: SparkSession, tag: str, description: str) -> Iterator[None]:
    """The jobs this thread starts inside the block carry ``tag`` and ``description``; the thread's
    previous description (an enclosing stage's) comes back afterwards."""
    context = spark.sparkContext
    previous = context.getLocalProperty(DESCRIPTION)
    context.addJobTag(tag)
    context.setJobDescription(description)
    try:
        yield
    finally:
        context.setLocalProperty(DESCRIPTION, previous)  # None removes it
        context.removeJobTag(tag)


def executor_summary(spark: SparkSession) -> dict:
    """The live block managers (``executors``, the driver included); every executor that joined the
    run, the driver excluded (``executor_ids``, empty in local mode), with the tasks each completed;
    and those removed before the end (``lost_executors``) and why. From Spark's status store, the
    data behind the UI, which remembers removed executors."""
    context = spark.sparkContext
    executors = sorted(
        {f"{info.host()}:{info.port()}" for info in context._jsc.sc().statusTracker().getExecutorInfos()}
    )
    summaries = context._jsc.sc().statusStore().executorList(False)
    joined = [summaries.apply(index) for index in range(summaries.size())]
    joined = sorted((s for s in joined if s.id() != "driver"), key=lambda s: (len(s.id()), s.id()))  # "2" < "10"
    return {
        "executors": executors,
        "executor_ids": [s.id() for s in joined],
        "tasks_by_executor": {s.id(): s.completedTasks() for s in joined},
        "lost_executors": [
            {
                "id": s.id(),
                "host_port": s.hostPort(),
                "reason": s.removeReason().get() if s.removeReason().isDefined() else None,
            }
            for s in joined
            if not s.isActive()
        ],
    }


def java_version(spark: SparkSession) -> str:
    """The driver JVM's ``java.version`` system property."""
    return str(spark.sparkContext._jvm.System.getProperty("java.version"))


def java_causes(error: BaseException) -> list[str] | None:
    """``class: message`` of a ``Py4JJavaError``'s Java exception and each of its causes, outermost
    first; None for any other error (or where py4j is not installed)."""
    try:
        from py4j.protocol import Py4JJavaError
    except ImportError:
        return None
    if not isinstance(error, Py4JJavaError):
        return None
    messages, seen, cause = [], set(), error.java_exception
    while cause is not None and id(cause) not in seen:
        seen.add(id(cause))
        messages.append(f"{cause.getClass().getName()}: {cause.getMessage()}")
        nxt = cause.getCause()
        if nxt is None or nxt.equals(cause):
            break
        cause = nxt
    return messages


def create_exclusive(spark: SparkSession | None, path: str, data: bytes) -> tuple[bool, str] | None:
    """Create ``path`` holding ``data`` unless it exists: (True, how) when this call created it,
    (False, how) when it was there; None when no Hadoop file system is reachable for it (no
    session, a Spark Connect session, or a scheme the JVM has no connector for): the caller then
    falls back to ``pyarrow.fs``.

    ``how`` names the mechanism: S3A's conditional create where the store declares it (a PUT with
    ``If-None-Match: *``), else ``create(overwrite=false)`` (atomic on HDFS, whose NameNode creates
    the file under its lock; a check then a create on most other connectors).
    """
    jvm = _hadoop_jvm(spark)
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


def _hadoop_jvm(spark: SparkSession | None):
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
