"""Read the raw log: files (CSV, parquet, JSON lines, ORC) or a catalog table, under an explicit schema.

What is read keeps the source's own column names; ``storage.mapping`` maps them onto the job's
canonical columns. Files are listed through ``storage.filesystem``, so the same code reads local
folders, HDFS and object stores alike.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Sequence
from dataclasses import dataclass

from pyspark.sql import Column, DataFrame, SparkSession
from pyspark.sql import functions as F
from pyspark.sql import types as T

from insiders_spark.core.config import InputConfig, SyntheticConfig
from insiders_spark.core.errors import InputError
from insiders_spark.core.names import CORRUPT_RECORD
from insiders_spark.storage import filesystem
from insiders_spark.storage.synthetic import SyntheticLogSpec, to_spark

log = logging.getLogger(__name__)

SUFFIXES: dict[str, tuple[str, ...]] = {
    "csv": (".csv", ".csv.gz", ".txt", ".txt.gz", ".tsv"),
    "parquet": (".parquet", ".parq"),
    "json": (".json", ".jsonl", ".ndjson", ".json.gz", ".jsonl.gz", ".ndjson.gz"),
    "orc": (".orc",),
}
TEXT_FORMATS = ("csv", "json")  # read as text under an all-string schema: the job parses every value
SYNTHETIC = "synthetic"
TABLE = "table"


@dataclass(frozen=True)
class RawInput:
    """What was read: a lazy DataFrame of the source's own columns, and where they came from."""

    frame: DataFrame  # the source's columns (CSV and JSON: all text, plus _corrupt_record)
    source_file: Column  # each line's file (or the table's or the generator's name)
    description: str
    format: str  # csv | parquet | json | orc | table | synthetic
    files: tuple[str, ...] = ()
    empty_files: tuple[str, ...] = ()

    @property
    def columns(self) -> tuple[str, ...]:
        """The source's columns (without the reader's own ``_corrupt_record``)."""
        return tuple(name for name in self.frame.columns if name != CORRUPT_RECORD)

    @property
    def decoded_text(self) -> bool:
        """Bytes decoded with ``input.encoding`` (so a wrong encoding shows as U+FFFD)."""
        return self.format in TEXT_FORMATS


def read_input(spark: SparkSession, input_config: InputConfig, synthetic_config: SyntheticConfig) -> RawInput:
    """The configured input: a catalog table, files, or (neither configured) the synthetic log,
    generated in the executors."""
    if input_config.table:
        return _read_table(spark, input_config.table)
    if not input_config.path:
        spec = SyntheticLogSpec(lines=synthetic_config.lines, seed=synthetic_config.seed)
        name = f"synthetic(lines={spec.lines},seed={spec.seed})"
        return RawInput(frame=to_spark(spark, spec), source_file=F.lit(name), description=name, format=SYNTHETIC)
    path = input_config.path
    try:
        listed = filesystem.list_files(spark, path)
    except FileNotFoundError:
        raise InputError(f"input {path!r} does not exist (no file or folder matches it)") from None
    if not listed:
        raise InputError(f"input {path!r} holds no data files (an empty folder, or only hidden files)")
    paths = [f.path for f in listed]
    fmt = detect_format(paths, input_config.format)
    empty = tuple(f.path for f in listed if f.size == 0)
    if len(empty) == len(listed):
        raise InputError(f"input {path!r}: every file is empty (0 bytes): {_sample(empty)}")
    if empty:
        log.warning("%d empty input file(s) hold no lines: %s", len(empty), _sample(empty))
    readable = [f.path for f in listed if f.size > 0]
    readers = {"csv": _read_csv, "json": _read_json, "parquet": _read_parquet, "orc": _read_orc}
    frame = readers[fmt](spark, readable, input_config)
    return RawInput(
        frame=frame,
        source_file=F.col("_metadata.file_path"),
        description=path,
        format=fmt,
        files=tuple(paths),
        empty_files=empty,
    )


def detect_format(files: Sequence[str], configured: str) -> str:
    """``configured``, or the one format every file's extension names."""
    if configured != "auto":
        return configured
    lowered = [f.lower() for f in files]
    for fmt, suffixes in SUFFIXES.items():
        if all(name.endswith(suffixes) for name in lowered):
            return fmt
    known = tuple(s for suffixes in SUFFIXES.values() for s in suffixes)
    unknown = [f for f, low in zip(files, lowered, strict=True) if not low.endswith(known)]
    example = unknown[0] if unknown else files[0]
    raise InputError(
        f"cannot tell the input format: {example} is not a {', '.join(SUFFIXES)} file by its name, or the "
        f"input mixes formats; set --format {'|'.join(SUFFIXES)} or point --input at files of one kind"
    )


def _read_table(spark: SparkSession, name: str) -> RawInput:
    if not spark.catalog.tableExists(name):
        raise InputError(f"table {name!r} does not exist in the session's catalog (--table db.name)")
    frame = spark.table(name)
    return RawInput(frame=frame, source_file=F.lit(f"table {name}"), description=f"table {name}", format=TABLE)


def _sample(paths: Sequence[str], count: int = 3) -> str:
    shown = ", ".join(paths[:count])
    return shown + (f" and {len(paths) - count} more" if len(paths) > count else "")


def _text_schema(names: Sequence[str]) -> T.StructType:
    return T.StructType(
        [T.StructField(name, T.StringType(), True) for name in names]
        + [T.StructField(CORRUPT_RECORD, T.StringType(), True)]
    )


def _first_line(spark: SparkSession, path: str, input_config: InputConfig) -> str:
    try:
        return filesystem.first_line(spark, path, input_config.encoding)
    except LookupError:
        raise InputError(f"unknown text encoding {input_config.encoding!r} (input.encoding / --encoding)") from None


CSV_COLUMN_PRUNING = "spark.sql.csv.parser.columnPruning.enabled"


def _read_csv(spark: SparkSession, files: list[str], input_config: InputConfig) -> DataFrame:
    """Every field as text, under the first file's header; every other file's header must match.

    A line that does not split into the header's columns lands whole in ``_corrupt_record``. Spark
    only notices that when it parses every column, so CSV column pruning must be off (conf/base.toml).
    """
    if spark.conf.get(CSV_COLUMN_PRUNING, "true").lower() != "false":
        raise InputError(
            f"{CSV_COLUMN_PRUNING} must be false (conf/base.toml sets it): with pruning on, Spark "
            "does not notice CSV lines with too few or too many fields, and they would be lost silently"
        )
    line = _first_line(spark, files[0], input_config)
    if not line.strip():
        raise InputError(f"{files[0]}: the first line is empty; expected a header naming the columns")
    raw_header = [_unquoted(name) for name in line.split(input_config.csv_delimiter)]
    header = [name.strip() for name in raw_header]
    repeated = sorted({name for name in header if header.count(name) > 1})
    if repeated:
        raise InputError(f"{files[0]}: the header names {', '.join(repeated)} more than once")
    # Spark checks every file's header against these names as written (spaces included), so the
    # schema keeps them; the columns are renamed to the trimmed names after the read.
    return (
        spark.read.schema(_text_schema(raw_header))
        .option("header", True)
        .option("enforceSchema", False)
        .option("mode", "PERMISSIVE")
        .option("columnNameOfCorruptRecord", CORRUPT_RECORD)
        .option("encoding", input_config.encoding)
        .option("sep", input_config.csv_delimiter)
        .csv([_literal_path(f) for f in files])
        .toDF(*header, CORRUPT_RECORD)
    )


def _unquoted(name: str) -> str:
    """A header name as Spark's CSV parser reads it: surrounding quotes removed, spaces outside the
    quotes dropped, spaces of an unquoted name kept (Spark does not trim them when reading)."""
    trimmed = name.strip()
    if len(trimmed) >= 2 and trimmed[0] == trimmed[-1] == '"':
        return trimmed[1:-1]
    return name  # the first line's reader has already dropped the line end


def _read_json(spark: SparkSession, files: list[str], input_config: InputConfig) -> DataFrame:
    """JSON lines, every field as text under the first record's keys: a number, a boolean or a
    nested value arrives as its JSON text, and a line that is not a JSON object lands whole in
    ``_corrupt_record`` (nothing is inferred)."""
    line = _first_line(spark, files[0], input_config)
    try:
        record = json.loads(line)
    except ValueError as error:
        raise InputError(f"{files[0]}: the first line is not a JSON object ({error}); expected JSON lines") from None
    if not isinstance(record, dict) or not record:
        raise InputError(f"{files[0]}: the first line is not a JSON object with fields; expected JSON lines")
    return (
        spark.read.schema(_text_schema(list(record)))
        .option("mode", "PERMISSIVE")
        .option("columnNameOfCorruptRecord", CORRUPT_RECORD)
        .option("encoding", input_config.encoding)
        .json([_literal_path(f) for f in files])
    )


def _read_parquet(spark: SparkSession, files: list[str], input_config: InputConfig) -> DataFrame:
    """Typed columns from the files' footers. Spark takes the schema from one file and reads a column
    another file lacks as nulls (a drop without its customer column would turn its customers into
    guests), so every file must have the first file's columns."""
    frame = spark.read.parquet(*[_literal_path(f) for f in files])
    if len(files) > 1:
        expected = set(filesystem.parquet_columns(spark, files[0]))
        for path in files[1:]:
            missing = sorted(expected - set(filesystem.parquet_columns(spark, path)))
            if missing:
                raise InputError(
                    f"{path}: column(s) {', '.join(missing)} missing; every file of one input must have "
                    f"the columns of {files[0]}"
                )
    return frame


def _read_orc(spark: SparkSession, files: list[str], input_config: InputConfig) -> DataFrame:
    """Typed columns; every file must have the first file's columns (as for parquet)."""
    frame = spark.read.orc(*[_literal_path(f) for f in files])
    if len(files) > 1:
        expected = set(spark.read.orc(_literal_path(files[0])).columns)
        for path in files[1:]:
            missing = sorted(expected - set(spark.read.orc(_literal_path(path)).columns))
            if missing:
                raise InputError(
                    f"{path}: column(s) {', '.join(missing)} missing; every file of one input must have "
                    f"the columns of {files[0]}"
                )
    return frame


GLOB_CHARACTERS = "{}[]*?\\"


def _literal_path(path: str) -> str:
    """A listed file's path with Hadoop's glob characters escaped: Spark globs the paths it is given
    again, and ``day[1].csv`` would match ``day1.csv`` (or nothing) instead of itself."""
    return "".join(f"\\{c}" if c in GLOB_CHARACTERS else c for c in path)
