"""The only module that knows paths and formats: read the raw log, write the job's outputs.

Paths go through Hadoop's FileSystem API (via the session's JVM), so the same code reads and writes
local folders, HDFS and object stores alike.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass

from pyspark.sql import Column, DataFrame, SparkSession
from pyspark.sql import functions as F
from pyspark.sql import types as T

from insiders_spark.config import InputConfig, SyntheticConfig
from insiders_spark.schemas import CORRUPT_RECORD, RAW_COLUMNS, RAW_TO_COLUMN, SOURCE_FILE
from insiders_spark import synthetic

log = logging.getLogger(__name__)

CSV_SUFFIXES = (".csv", ".csv.gz", ".txt")
PARQUET_SUFFIXES = (".parquet", ".parq")
PARTITION_COLUMN = "run_date"


class InputError(ValueError):
    """The input cannot be read as a transaction log; the message names the file and the problem."""


@dataclass(frozen=True)
class RawInput:
    """What was read: a lazy DataFrame of raw fields plus where they came from."""

    lines: DataFrame
    description: str
    format: str
    files: tuple[str, ...]
    extra_columns: tuple[str, ...] = ()


# --- paths ----------------------------------------------------------------------------------


def _jvm_path(spark: SparkSession, path: str):
    jvm = spark.sparkContext._jvm
    hadoop_path = jvm.org.apache.hadoop.fs.Path(path)
    fs = hadoop_path.getFileSystem(spark.sparkContext._jsc.hadoopConfiguration())
    return fs, hadoop_path


def _is_data_file(name: str) -> bool:
    return not (name.startswith("_") or name.startswith("."))


def list_input_files(spark: SparkSession, path: str) -> list[str]:
    """Expand a file, folder (recursively) or glob into its data files, sorted by path."""
    fs, pattern = _jvm_path(spark, path)
    statuses = fs.globStatus(pattern)
    if statuses is None or len(statuses) == 0:
        raise InputError(f"input {path!r} does not exist (no file or folder matches it)")
    files: list[str] = []
    for status in statuses:
        if status.isDirectory():
            iterator = fs.listFiles(status.getPath(), True)
            while iterator.hasNext():
                found = iterator.next()
                relative = found.getPath().toString()[len(status.getPath().toString()):]
                if all(_is_data_file(part) for part in relative.split("/") if part):
                    files.append(found.getPath().toString())
        elif _is_data_file(status.getPath().getName()):
            files.append(status.getPath().toString())
    if not files:
        raise InputError(f"input {path!r} holds no data files (an empty folder, or only hidden files)")
    return sorted(files)


def detect_format(files: Sequence[str], configured: str) -> str:
    if configured != "auto":
        return configured
    lowered = [f.lower() for f in files]
    if all(name.endswith(CSV_SUFFIXES) for name in lowered):
        return "csv"
    if all(name.endswith(PARQUET_SUFFIXES) for name in lowered):
        return "parquet"
    unknown = [f for f, low in zip(files, lowered) if not low.endswith(CSV_SUFFIXES + PARQUET_SUFFIXES)]
    example = unknown[0] if unknown else files[0]
    raise InputError(
        f"cannot tell the input format: {example} is neither .csv nor .parquet, or the input mixes "
        "both; set input.format (--format csv|parquet) or point --input at files of one kind"
    )


# --- reading --------------------------------------------------------------------------------


def read_transactions(
    spark: SparkSession, input_config: InputConfig, synthetic_config: SyntheticConfig
) -> RawInput:
    """Read the raw log into snake_case columns (raw types) plus ``source_file``.

    With no input path configured, the embedded synthetic log is generated in the executors.
    """
    if not input_config.path:
        spec = synthetic.SyntheticLogSpec(lines=synthetic_config.lines, seed=synthetic_config.seed)
        name = f"synthetic(lines={spec.lines},seed={spec.seed})"
        frame = synthetic.to_spark(spark, spec, chunk_lines=synthetic_config.chunk_lines)
        return RawInput(
            lines=_to_raw_columns(frame, F.lit(name)), description=name, format="synthetic", files=()
        )

    files = list_input_files(spark, input_config.path)
    fmt = detect_format(files, input_config.format)
    if fmt == "csv":
        frame, extra = _read_csv(spark, files, input_config)
    else:
        frame, extra = _read_parquet(spark, files)
    if extra:
        log.warning("input has columns the job does not use (ignored): %s", ", ".join(extra))
    return RawInput(
        lines=_to_raw_columns(frame, F.col("_metadata.file_path")),
        description=input_config.path,
        format=fmt,
        files=tuple(files),
        extra_columns=tuple(extra),
    )


def _to_raw_columns(frame: DataFrame, source_file: Column) -> DataFrame:
    corrupt = F.col(CORRUPT_RECORD) if CORRUPT_RECORD in frame.columns else F.lit(None).cast("string")
    return frame.select(
        *[F.col(f"`{raw}`").alias(name) for raw, name in RAW_TO_COLUMN.items()],
        corrupt.alias(CORRUPT_RECORD),
        source_file.alias(SOURCE_FILE),
    )


def _check_columns(found: Sequence[str], where: str) -> list[str]:
    missing = [name for name in RAW_COLUMNS if name not in found]
    if missing:
        raise InputError(
            f"{where}: required column(s) {', '.join(missing)} missing; found columns "
            f"{', '.join(found) or '(none)'}; expected {', '.join(RAW_COLUMNS)}"
        )
    return [name for name in found if name not in RAW_COLUMNS]


def _read_csv(spark: SparkSession, files: list[str], input_config: InputConfig) -> tuple[DataFrame, list[str]]:
    reader = (
        spark.read.option("header", True)
        .option("encoding", input_config.encoding)
        .option("sep", input_config.csv_delimiter)
    )
    header = _csv_header(spark, files[0], input_config)
    extra = _check_columns(header, files[0])
    schema = T.StructType(
        [T.StructField(name, T.StringType(), True) for name in header]
        + [T.StructField(CORRUPT_RECORD, T.StringType(), True)]
    )
    frame = (
        reader.schema(schema)
        .option("enforceSchema", False)
        .option("mode", "PERMISSIVE")
        .option("columnNameOfCorruptRecord", CORRUPT_RECORD)
        .csv(files)
    )
    return frame, extra


def _csv_header(spark: SparkSession, path: str, input_config: InputConfig) -> list[str]:
    """Column names from the first line of ``path`` (one line read, nothing inferred)."""
    first = (
        spark.read.option("encoding", input_config.encoding)
        .option("sep", input_config.csv_delimiter)
        .option("header", False)
        .csv(path)
        .limit(1)
        .collect()
    )
    if not first:
        raise InputError(f"{path}: the file is empty (no header line)")
    return [value.strip() if value is not None else "" for value in first[0]]


def _read_parquet(spark: SparkSession, files: list[str]) -> tuple[DataFrame, list[str]]:
    frame = spark.read.parquet(*files)
    extra = _check_columns(frame.columns, files[0])
    return frame, extra


# --- writing --------------------------------------------------------------------------------


def write_partition(frame: DataFrame, output: str, table: str, run_date: str) -> str:
    """Replace ``<output>/<table>/run_date=<run_date>/`` and no other partition."""
    target = f"{output.rstrip('/')}/{table}"
    (
        frame.withColumn(PARTITION_COLUMN, F.lit(run_date))
        .write.mode("overwrite")
        .option("partitionOverwriteMode", "dynamic")
        .partitionBy(PARTITION_COLUMN)
        .parquet(target)
    )
    return f"{target}/{PARTITION_COLUMN}={run_date}"


def partition_path(output: str, table: str, run_date: str) -> str:
    return f"{output.rstrip('/')}/{table}/{PARTITION_COLUMN}={run_date}"


def delete_path(spark: SparkSession, path: str) -> None:
    fs, hadoop_path = _jvm_path(spark, path)
    if fs.exists(hadoop_path):
        fs.delete(hadoop_path, True)


def write_bytes(spark: SparkSession, path: str, data: bytes) -> str:
    """Write a small driver-side artefact (metrics, report) to any Hadoop-compatible path."""
    fs, hadoop_path = _jvm_path(spark, path)
    stream = fs.create(hadoop_path, True)
    try:
        stream.write(bytearray(data))
    finally:
        stream.close()
    return hadoop_path.toString()


def write_text(spark: SparkSession, path: str, text: str) -> str:
    return write_bytes(spark, path, text.encode("utf-8"))


def read_text(spark: SparkSession, path: str) -> str:
    fs, hadoop_path = _jvm_path(spark, path)
    stream = fs.open(hadoop_path)
    try:
        jvm = spark.sparkContext._jvm
        return jvm.org.apache.commons.io.IOUtils.toString(stream, "UTF-8")
    finally:
        stream.close()
