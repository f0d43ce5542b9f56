"""Small files and folders on any Hadoop-compatible path (local, HDFS, object stores), through
the session's Hadoop FileSystem: the job's metadata, manifests, reports and its commit's moves.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass

from pyspark.sql import SparkSession

from insiders_spark.core.paths import is_data_file, is_glob

log = logging.getLogger(__name__)


def filesystem_path(spark: SparkSession, path: str):
    jvm = spark.sparkContext._jvm
    hadoop_path = jvm.org.apache.hadoop.fs.Path(path)
    fs = hadoop_path.getFileSystem(spark.sparkContext._jsc.hadoopConfiguration())
    return fs, hadoop_path


def delete_path(spark: SparkSession, path: str) -> None:
    fs, hadoop_path = filesystem_path(spark, path)
    if fs.exists(hadoop_path):
        fs.delete(hadoop_path, True)


def write_bytes(spark: SparkSession, path: str, data: bytes) -> str:
    """Write a small driver-side artefact (metrics, report) to any Hadoop-compatible path."""
    fs, hadoop_path = filesystem_path(spark, path)
    stream = fs.create(hadoop_path, True)
    try:
        stream.write(bytearray(data))
    finally:
        stream.close()
    return hadoop_path.toString()


def write_text(spark: SparkSession, path: str, text: str) -> str:
    return write_bytes(spark, path, text.encode("utf-8"))


def read_text(spark: SparkSession, path: str) -> str:
    fs, hadoop_path = filesystem_path(spark, path)
    stream = fs.open(hadoop_path)
    try:
        jvm = spark.sparkContext._jvm
        return jvm.org.apache.commons.io.IOUtils.toString(stream, "UTF-8")
    finally:
        stream.close()


def exists(spark: SparkSession, path: str) -> bool:
    fs, hadoop_path = filesystem_path(spark, path)
    return bool(fs.exists(hadoop_path))


def rename(spark: SparkSession, source: str, target: str) -> None:
    fs, source_path = filesystem_path(spark, source)
    _, target_path = filesystem_path(spark, target)
    fs.mkdirs(target_path.getParent())
    if not fs.rename(source_path, target_path):
        raise OSError(f"could not move {source} to {target}")


def list_dirs(spark: SparkSession, path: str) -> list[str]:
    fs, hadoop_path = filesystem_path(spark, path)
    if not fs.exists(hadoop_path):
        return []
    return sorted(s.getPath().toString() for s in fs.listStatus(hadoop_path) if s.isDirectory())


def replace_text(spark: SparkSession, path: str, text: str) -> None:
    """Replace a small file: write beside it, then swap it in.

    The old file is moved aside (``<path>.previous``) before the new one moves in and deleted
    after, so a process killed in between leaves one of the two for :func:`read_replaced_text`.
    """
    temporary, previous = f"{path}.tmp", f"{path}.previous"
    write_text(spark, temporary, text)
    delete_path(spark, previous)
    if exists(spark, path):
        rename(spark, path, previous)
    rename(spark, temporary, path)
    delete_path(spark, previous)


def read_replaced_text(spark: SparkSession, path: str) -> str | None:
    """A file written by :func:`replace_text`, or None when there is none."""
    for candidate in (path, f"{path}.previous"):
        if exists(spark, candidate):
            return read_text(spark, candidate)
    return None


@dataclass(frozen=True)
class FileInfo:
    path: str
    size: int


def list_files(spark: SparkSession, path: str) -> list[FileInfo]:
    """Expand a file, folder (recursively) or glob into its data files, sorted by path: hidden and
    underscore-prefixed names are skipped (``core.paths.is_data_file``), at any depth of a folder."""
    fs, pattern = filesystem_path(spark, path)
    statuses = fs.globStatus(pattern)
    if statuses is None or len(statuses) == 0:
        raise FileNotFoundError(path)
    files: list[FileInfo] = []
    for status in statuses:
        if is_glob(path) and not is_data_file(status.getPath().getName()):
            continue  # 'drops/*' must not read drops/_temporary or drops/.staging, as 'drops/' does not
        if status.isDirectory():
            iterator = fs.listFiles(status.getPath(), True)
            while iterator.hasNext():
                found = iterator.next()
                relative = found.getPath().toString()[len(status.getPath().toString()) :]
                if all(is_data_file(part) for part in relative.split("/") if part):
                    files.append(FileInfo(found.getPath().toString(), int(found.getLen())))
        elif is_data_file(status.getPath().getName()):
            files.append(FileInfo(status.getPath().toString(), int(status.getLen())))
    return sorted(files, key=lambda f: f.path)


def first_line(spark: SparkSession, path: str, encoding: str) -> str:
    """The first line of a (possibly compressed) text file, decoded with ``encoding`` (a byte-order
    mark dropped); ``LookupError`` for an encoding the JVM does not know."""
    jvm = spark.sparkContext._jvm
    if not jvm.java.nio.charset.Charset.isSupported(encoding):
        raise LookupError(encoding)
    fs, hadoop_path = filesystem_path(spark, path)
    codec = jvm.org.apache.hadoop.io.compress.CompressionCodecFactory(
        spark.sparkContext._jsc.hadoopConfiguration()
    ).getCodec(hadoop_path)
    stream = fs.open(hadoop_path)
    try:
        source = codec.createInputStream(stream) if codec is not None else stream
        reader = jvm.java.io.BufferedReader(jvm.java.io.InputStreamReader(source, encoding))
        line = reader.readLine()
    finally:
        stream.close()
    return (line or "").lstrip("\ufeff")


def parquet_columns(spark: SparkSession, path: str) -> list[str]:
    """A parquet file's top-level column names, from its footer (no data read)."""
    jvm = spark.sparkContext._jvm
    conf = spark.sparkContext._jsc.hadoopConfiguration()
    source = jvm.org.apache.parquet.hadoop.util.HadoopInputFile.fromPath(jvm.org.apache.hadoop.fs.Path(path), conf)
    reader = jvm.org.apache.parquet.hadoop.ParquetFileReader.open(source)
    try:
        schema = reader.getFooter().getFileMetaData().getSchema()
        return [str(schema.getType(i).getName()) for i in range(schema.getFieldCount())]
    finally:
        reader.close()
