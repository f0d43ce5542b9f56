"""Read the raw log: list the input's files, tell their format, read them under an explicit schema.

Paths go through Hadoop's FileSystem API, so the same code reads local folders, HDFS and object
stores alike.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass

from pyspark.sql import Column, DataFrame, SparkSession
from pyspark.sql import functions as F
from pyspark.sql import types as T

from insiders_spark.core.config import InputConfig, SyntheticConfig
from insiders_spark.core.errors import InputError
from insiders_spark.core.names import CORRUPT_RECORD, RAW_COLUMNS, RAW_TO_COLUMN, SOURCE_FILE
from insiders_spark.core.paths import is_data_file, is_glob
from insiders_spark.storage import filesystem
from insiders_spark.storage.synthetic import SyntheticLogSpec, to_spark

log = logging.getLogger(__name__)


CSV_SUFFIXES = (".csv", ".csv.gz", ".txt")


PARQUET_SUFFIXES = (".parquet", ".parq")


@dataclass(frozen=True)
class RawInput:
    """What was read: a lazy DataFrame of raw fields plus where they came from."""

    frame: DataFrame  # the source's own columns
    source_file: Column  # each line's file (or the generator's name)
    description: str
    format: str
    files: tuple[str, ...]
    extra_columns: tuple[str, ...] = ()
    empty_files: tuple[str, ...] = ()

    @property
    def lines(self) -> DataFrame:
        """The raw fields in snake_case (raw types), for the aggregation: no file column, so the
        scan reads only the data columns."""
        return _to_raw_columns(self.frame, None)

    def lines_with_source(self) -> DataFrame:
        """The same plus ``source_file``, for the quarantine (which needs to say where a line was)."""
        return _to_raw_columns(self.frame, self.source_file)


@dataclass(frozen=True)
class InputFile:
    path: str
    size: int


def list_input_files(spark: SparkSession, path: str) -> list[InputFile]:
    """Expand a file, folder (recursively) or glob into its data files, sorted by path."""
    fs, pattern = filesystem.filesystem_path(spark, path)
    statuses = fs.globStatus(pattern)
    if statuses is None or len(statuses) == 0:
        raise InputError(f"input {path!r} does not exist (no file or folder matches it)")
    files: list[InputFile] = []
    for status in statuses:
        if is_glob(path) and not is_data_file(status.getPath().getName()):
            continue  # 'drops/*' must not read drops/_temporary or drops/.staging, as 'drops/' does not
        if status.isDirectory():
            iterator = fs.listFiles(status.getPath(), True)
            while iterator.hasNext():
                found = iterator.next()
                relative = found.getPath().toString()[len(status.getPath().toString()) :]
                if all(is_data_file(part) for part in relative.split("/") if part):
                    files.append(InputFile(found.getPath().toString(), int(found.getLen())))
        elif is_data_file(status.getPath().getName()):
            files.append(InputFile(status.getPath().toString(), int(status.getLen())))
    if not files:
        raise InputError(f"input {path!r} holds no data files (an empty folder, or only hidden files)")
    return sorted(files, key=lambda f: f.path)


def detect_format(files: Sequence[str], configured: str) -> str:
    if configured != "auto":
        return configured
    lowered = [f.lower() for f in files]
    if all(name.endswith(CSV_SUFFIXES) for name in lowered):
        return "csv"
    if all(name.endswith(PARQUET_SUFFIXES) for name in lowered):
        return "parquet"
    unknown = [f for f, low in zip(files, lowered, strict=True) if not low.endswith(CSV_SUFFIXES + PARQUET_SUFFIXES)]
    example = unknown[0] if unknown else files[0]
    raise InputError(
        f"cannot tell the input format: {example} is neither .csv nor .parquet, or the input mixes "
        "both; set input.format (--format csv|parquet) or point --input at files of one kind"
    )


def read_transactions(spark: SparkSession, input_config: InputConfig, synthetic_config: SyntheticConfig) -> RawInput:
    """Read the raw log into snake_case columns (raw types) plus ``source_file``.

    With no input path configured, the embedded synthetic log is generated in the executors.
    """
    if not input_config.path:
        spec = SyntheticLogSpec(lines=synthetic_config.lines, seed=synthetic_config.seed)
        name = f"synthetic(lines={spec.lines},seed={spec.seed})"
        frame = to_spark(spark, spec)
        return RawInput(frame=frame, source_file=F.lit(name), description=name, format="synthetic", files=())

    listed = list_input_files(spark, input_config.path)
    paths = [f.path for f in listed]
    empty = tuple(f.path for f in listed if f.size == 0)
    fmt = detect_format(paths, input_config.format)
    if len(empty) == len(listed):
        raise InputError(f"input {input_config.path!r}: every file is empty (0 bytes): {_sample(empty)}")
    if empty:
        log.warning("%d empty input file(s) hold no lines: %s", len(empty), _sample(empty))
    readable = [f.path for f in listed if f.size > 0]
    if fmt == "csv":
        frame, extra = _read_csv(spark, readable, input_config)
    else:
        frame, extra = _read_parquet(spark, readable)
    if extra:
        log.warning("input has columns the job does not use (ignored): %s", ", ".join(extra))
    return RawInput(
        frame=frame,
        source_file=F.col("_metadata.file_path"),
        description=input_config.path,
        format=fmt,
        files=tuple(paths),
        extra_columns=tuple(extra),
        empty_files=empty,
    )


def _sample(paths: Sequence[str], count: int = 3) -> str:
    shown = ", ".join(paths[:count])
    return shown + (f" and {len(paths) - count} more" if len(paths) > count else "")


def _to_raw_columns(frame: DataFrame, source_file: Column | None) -> DataFrame:
    corrupt = F.col(CORRUPT_RECORD) if CORRUPT_RECORD in frame.columns else F.lit(None).cast("string")
    return frame.select(
        *[F.col(f"`{raw}`").alias(name) for raw, name in RAW_TO_COLUMN.items()],
        corrupt.alias(CORRUPT_RECORD),
        *([source_file.alias(SOURCE_FILE)] if source_file is not None else []),
    )


def _check_columns(found: Sequence[str], where: str) -> list[str]:
    missing = [name for name in RAW_COLUMNS if name not in found]
    if missing:
        raise InputError(
            f"{where}: required column(s) {', '.join(missing)} missing; found columns "
            f"{', '.join(found) or '(none)'}; expected {', '.join(RAW_COLUMNS)}"
        )
    return [name for name in found if name not in RAW_COLUMNS]


CSV_COLUMN_PRUNING = "spark.sql.csv.parser.columnPruning.enabled"


def _read_csv(spark: SparkSession, files: list[str], input_config: InputConfig) -> tuple[DataFrame, list[str]]:
    """Every field as text, under the first file's header; every other file's header must match.

    A line that does not split into the header's columns lands whole in ``_corrupt_record``. Spark
    only notices that when it parses every column, so CSV column pruning must be off (conf/base.toml).
    """
    if spark.conf.get(CSV_COLUMN_PRUNING, "true").lower() != "false":
        raise InputError(
            f"{CSV_COLUMN_PRUNING} must be false (conf/base.toml sets it): with pruning on, Spark "
            "does not notice CSV lines with too few or too many fields, and they would be lost silently"
        )
    raw_header = _csv_header(spark, files[0], input_config)
    header = [name.strip() for name in raw_header]
    extra = _check_columns(header, files[0])
    # Spark checks every file's header against these names as written (spaces included), so the
    # schema keeps them; the columns are renamed to the trimmed names after the read.
    schema = T.StructType(
        [T.StructField(name, T.StringType(), True) for name in raw_header]
        + [T.StructField(CORRUPT_RECORD, T.StringType(), True)]
    )
    frame = (
        spark.read.schema(schema)
        .option("header", True)
        .option("enforceSchema", False)
        .option("mode", "PERMISSIVE")
        .option("columnNameOfCorruptRecord", CORRUPT_RECORD)
        .option("encoding", input_config.encoding)
        .option("sep", input_config.csv_delimiter)
        .csv([_literal_path(f) for f in files])
        .toDF(*header, CORRUPT_RECORD)
    )
    return frame, extra


def _csv_header(spark: SparkSession, path: str, input_config: InputConfig) -> list[str]:
    """Column names from the first line of ``path``, read directly (no Spark job, nothing inferred)."""
    line = _first_line(spark, path, input_config.encoding)
    if not line.strip():
        raise InputError(f"{path}: the first line is empty; expected a header naming {', '.join(RAW_COLUMNS)}")
    return [_unquoted(name) for name in line.split(input_config.csv_delimiter)]


def _unquoted(name: str) -> str:
    """A header name as Spark's CSV parser reads it: surrounding quotes removed, spaces outside the
    quotes dropped, spaces of an unquoted name kept (Spark does not trim them when reading)."""
    trimmed = name.strip()
    if len(trimmed) >= 2 and trimmed[0] == trimmed[-1] == '"':
        return trimmed[1:-1]
    return name  # _first_line's readLine has already dropped the line end


def _first_line(spark: SparkSession, path: str, encoding: str) -> str:
    """The first line of a (possibly compressed) text file, decoded in the JVM."""
    jvm = spark.sparkContext._jvm
    if not jvm.java.nio.charset.Charset.isSupported(encoding):
        raise InputError(f"unknown text encoding {encoding!r} (input.encoding / --encoding)")
    fs, hadoop_path = filesystem.filesystem_path(spark, path)
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


def _read_parquet(spark: SparkSession, files: list[str]) -> tuple[DataFrame, list[str]]:
    """Every file's own columns are checked: Spark takes the schema from one file and reads a column
    another file lacks as nulls (a drop without CustomerID would turn its customers into guests)."""
    frame = spark.read.parquet(*[_literal_path(f) for f in files])
    extra = _check_columns(frame.columns, files[0])
    if len(files) > 1:
        for path in files:
            extra += [name for name in _check_columns(_parquet_columns(spark, path), path) if name not in extra]
    return frame, extra


def _parquet_columns(spark: SparkSession, path: str) -> list[str]:
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


GLOB_CHARACTERS = "{}[]*?\\"


def _literal_path(path: str) -> str:
    """A listed file's path with Hadoop's glob characters escaped: Spark globs the paths it is given
    again, and ``day[1].csv`` would match ``day1.csv`` (or nothing) instead of itself."""
    return "".join(f"\\{c}" if c in GLOB_CHARACTERS else c for c in path)
