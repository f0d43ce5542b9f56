"""The only module that knows paths and formats: read the raw log, write the job's outputs.

Paths go through Hadoop's FileSystem API (via the session's JVM), so the same code reads and writes
local folders, HDFS and object stores alike.
"""

from __future__ import annotations

import datetime as dt
import json
import logging
import os
import socket
import uuid
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass

from pyspark.sql import Column, DataFrame, SparkSession
from pyspark.sql import functions as F
from pyspark.sql import types as T

from insiders_spark import synthetic
from insiders_spark.config import InputConfig, SyntheticConfig
from insiders_spark.paths import is_data_file, is_glob
from insiders_spark.schemas import CORRUPT_RECORD, RAW_COLUMNS, RAW_TO_COLUMN, SOURCE_FILE

log = logging.getLogger(__name__)

CSV_SUFFIXES = (".csv", ".csv.gz", ".txt")
PARQUET_SUFFIXES = (".parquet", ".parq")
PARTITION_COLUMN = "run_date"


class InputError(ValueError):
    """The input cannot be read as a transaction log; the message names the file and the problem."""


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


# --- paths ----------------------------------------------------------------------------------


def _jvm_path(spark: SparkSession, path: str):
    jvm = spark.sparkContext._jvm
    hadoop_path = jvm.org.apache.hadoop.fs.Path(path)
    fs = hadoop_path.getFileSystem(spark.sparkContext._jsc.hadoopConfiguration())
    return fs, hadoop_path


@dataclass(frozen=True)
class InputFile:
    path: str
    size: int


def list_input_files(spark: SparkSession, path: str) -> list[InputFile]:
    """Expand a file, folder (recursively) or glob into its data files, sorted by path."""
    fs, pattern = _jvm_path(spark, path)
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
                relative = found.getPath().toString()[len(status.getPath().toString()):]
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
    fs, hadoop_path = _jvm_path(spark, path)
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


# --- writing --------------------------------------------------------------------------------


def read_partition(spark: SparkSession, output: str, table: str, run_date) -> DataFrame:
    """One published partition of one of the job's tables (without the run_date column)."""
    return spark.read.parquet(partition_path(output, table, str(run_date)))


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


# --- staged, atomic run outputs -------------------------------------------------------------

STAGING = "_staging"
FAILED_RUNS = "failed_runs"
JOURNAL = "_COMMITTING.json"
SUCCESS = "_SUCCESS"
LOCK = "_RUNNING.json"


class OutputInUseError(RuntimeError):
    """Another run holds the output folder: one output takes one run at a time."""


def _lock_holder(spark: SparkSession, path: str) -> dict | None:
    try:
        return json.loads(read_text(spark, path))
    except Exception:  # gone meanwhile, or half-written by a holder that is writing it right now
        return None


def _is_dead_here(holder: dict) -> bool:
    """The holder ran on this machine and its process is gone (killed, or the machine rebooted)."""
    if holder.get("host") != socket.gethostname() or not isinstance(holder.get("pid"), int):
        return False
    try:
        os.kill(holder["pid"], 0)
    except ProcessLookupError:
        return True
    except PermissionError:  # alive, another user's
        return False
    return False


@contextmanager
def output_lock(spark: SparkSession, output: str, purpose: str) -> Iterator[dict]:
    """Hold ``<output>/_RUNNING.json`` while a run (or ``models use``) changes the output.

    Two runs on one output would otherwise clean up each other's staging folder as debris and
    publish over each other. The lock file is created only if absent (atomic on HDFS; a check then
    create on a local disk and on object stores, so schedulers should still run one at a time). A
    lock left by a process of this machine that no longer exists is taken over with a warning; one
    from another machine needs a person: the error says which file to delete.
    """
    path = f"{output.rstrip('/')}/{LOCK}"
    mine = {
        "token": uuid.uuid4().hex,
        "purpose": purpose,
        "host": socket.gethostname(),
        "pid": os.getpid(),
        "started": dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds"),
    }
    fs, hadoop_path = _jvm_path(spark, path)
    folder = hadoop_path.getParent()
    created_folder = not fs.exists(folder)  # removed again if the run leaves it empty (e.g. bad input)
    for _attempt in range(2):
        if fs.exists(hadoop_path):
            holder = _lock_holder(spark, path)
            if holder is not None and _is_dead_here(holder):
                log.warning(
                    "taking over %s: its holder (pid %s, %s since %s) is no longer running",
                    path, holder.get("pid"), holder.get("purpose"), holder.get("started"),
                )
                fs.delete(hadoop_path, False)
                continue
            raise OutputInUseError(_in_use_message(path, holder))
        try:
            stream = fs.create(hadoop_path, False)
        except Exception:
            if not fs.exists(hadoop_path):  # not a lock taken meanwhile: e.g. no permission to write there
                raise
            raise OutputInUseError(_in_use_message(path, _lock_holder(spark, path))) from None
        try:
            stream.write(bytearray(json.dumps(mine).encode("utf-8")))
        finally:
            stream.close()
        holder = _lock_holder(spark, path)
        if holder is None or holder.get("token") != mine["token"]:  # lost a race on a local disk
            raise OutputInUseError(_in_use_message(path, holder))
        break
    else:
        raise OutputInUseError(_in_use_message(path, _lock_holder(spark, path)))
    try:
        yield mine
    finally:
        holder = _lock_holder(spark, path)
        if holder is not None and holder.get("token") == mine["token"]:
            fs.delete(hadoop_path, False)
        if created_folder and fs.exists(folder) and len(fs.listStatus(folder)) == 0:
            fs.delete(folder, False)


def _in_use_message(path: str, holder: dict | None) -> str:
    who = (
        f"{holder.get('purpose', 'a run')} on {holder.get('host')} (pid {holder.get('pid')}) since {holder.get('started')}"
        if holder
        else "another run"
    )
    return (
        f"the output is in use by {who}: one output folder takes one run at a time (schedule runs of one "
        f"output one after another, e.g. Airflow's max_active_runs=1). If no such run is going any more, "
        f"delete {path} and start again"
    )


def exists(spark: SparkSession, path: str) -> bool:
    fs, hadoop_path = _jvm_path(spark, path)
    return bool(fs.exists(hadoop_path))


def _rename(spark: SparkSession, source: str, target: str) -> None:
    fs, source_path = _jvm_path(spark, source)
    _, target_path = _jvm_path(spark, target)
    fs.mkdirs(target_path.getParent())
    if not fs.rename(source_path, target_path):
        raise OSError(f"could not move {source} to {target}")


def list_dirs(spark: SparkSession, path: str) -> list[str]:
    fs, hadoop_path = _jvm_path(spark, path)
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
        _rename(spark, path, previous)
    _rename(spark, temporary, path)
    delete_path(spark, previous)


def read_replaced_text(spark: SparkSession, path: str) -> str | None:
    """A file written by :func:`replace_text`, or None when there is none."""
    for candidate in (path, f"{path}.previous"):
        if exists(spark, candidate):
            return read_text(spark, candidate)
    return None


class RunOutputs:
    """A run's outputs, staged under ``<output>/_staging/<run_id>/`` and made visible together.

    Every table partition, model folder and file is written to the staging folder first, at the
    same relative path it will have under ``<output>``. ``commit`` then moves each staged path over
    the live one (the live one is kept aside until the end), the ``runs`` partition with the
    metrics, manifest and ``_SUCCESS`` last, following a journal so that an interrupted commit is
    rolled back by the next run (:func:`recover_interrupted_commits`). A run that fails before its
    commit leaves every live path exactly as it was; ``fail`` moves what it staged to
    ``<output>/failed_runs/run_date=<date>/<run_id>/`` for inspection.
    """

    def __init__(self, spark: SparkSession, output: str, run_date: str, run_id: str) -> None:
        self.spark = spark
        self.output = output.rstrip("/")
        self.run_date = run_date
        self.run_id = run_id
        self.staging = f"{self.output}/{STAGING}/{run_id}"
        self._paths: list[str] = []  # relative paths to publish, in order

    def _register(self, relative: str) -> str:
        if relative not in self._paths:
            self._paths.append(relative)
        return f"{self.output}/{relative}"

    def partition(self, table: str) -> str:
        return f"{table}/{PARTITION_COLUMN}={self.run_date}"

    def staged(self, relative: str) -> str:
        return f"{self.staging}/{relative}"

    def live(self, relative: str) -> str:
        return f"{self.output}/{relative}"

    def write_table(self, frame: DataFrame, table: str) -> str:
        """Stage ``frame`` as ``table``'s partition for this run date (dynamic partition overwrite)."""
        (
            frame.withColumn(PARTITION_COLUMN, F.lit(self.run_date))
            .write.mode("overwrite")
            .option("partitionOverwriteMode", "dynamic")
            .partitionBy(PARTITION_COLUMN)
            .parquet(f"{self.staging}/{table}")
        )
        return self._register(self.partition(table))

    def clear_table(self, table: str) -> str:
        """This run has no rows for ``table``: its live partition goes away at commit."""
        return self._register(self.partition(table))

    def write_file(self, table: str, name: str, data: bytes | str) -> str:
        """Stage a file in ``table``'s partition for this run date."""
        return self.write_path(f"{self.partition(table)}/{name}", data, publish=self.partition(table))

    def write_path(self, relative: str, data: bytes | str, *, publish: str | None = None) -> str:
        """Stage a file at ``relative``; ``publish`` names the enclosing path that moves at commit."""
        payload = data.encode("utf-8") if isinstance(data, str) else data
        write_bytes(self.spark, self.staged(relative), payload)
        self._register(publish or relative)
        return self.live(relative)

    def stage_folder(self, relative: str) -> str:
        """A staged folder for a writer that needs a path (e.g. MLlib's ``save``); returns it."""
        self._register(relative)
        return self.staged(relative)

    def commit(self, last: str) -> None:
        """Make every staged path live; the ``last`` table's partition moves after all others."""
        final = self.partition(last)
        order = [p for p in self._paths if p != final] + [final]
        moves = [
            {
                "staged": self.staged(p) if exists(self.spark, self.staged(p)) else None,
                "live": self.live(p),
                "previous": f"{self.staging}/_previous/{p}",
            }
            for p in order
        ]
        journal = f"{self.staging}/{JOURNAL}"
        write_text(self.spark, journal, json.dumps({"run_id": self.run_id, "moves": moves}))
        try:
            for move in moves:
                if exists(self.spark, move["live"]):
                    _rename(self.spark, move["live"], move["previous"])
                if move["staged"]:
                    _rename(self.spark, move["staged"], move["live"])
            write_text(self.spark, f"{self.live(final)}/{SUCCESS}", "")
        except Exception:
            # Put every live path back as it was; if even that fails, the journal stays for the
            # next run's recovery (and ``fail`` leaves the staging folder where recovery finds it).
            _roll_back(self.spark, moves)
            delete_path(self.spark, journal)
            raise
        delete_path(self.spark, journal)
        delete_path(self.spark, self.staging)

    def fail(self) -> str | None:
        """Keep what this run staged aside for inspection; live paths are untouched.

        A staging folder that still holds a commit journal is left in place: its commit could not
        be rolled back here, and the next run's :func:`recover_interrupted_commits` will.
        """
        if not exists(self.spark, self.staging):
            return None
        if exists(self.spark, f"{self.staging}/{JOURNAL}"):
            log.error("the commit of run %s could not be rolled back; the next run on this output will", self.run_id)
            return None
        target = f"{self.output}/{FAILED_RUNS}/{PARTITION_COLUMN}={self.run_date}/{self.run_id}"
        _rename(self.spark, self.staging, target)
        return target


def recover_interrupted_commits(spark: SparkSession, output: str) -> list[str]:
    """Roll back commits a killed run left half-done, and drop staging folders of dead runs.

    Returns the run ids it cleaned up. Called at the start of every run, before anything is read.
    """
    cleaned = []
    for staging in list_dirs(spark, f"{output.rstrip('/')}/{STAGING}"):
        journal_path = f"{staging}/{JOURNAL}"
        if exists(spark, journal_path):
            journal = json.loads(read_text(spark, journal_path))
            if _commit_completed(spark, journal["moves"]):
                log.warning("run %s had finished its commit; cleaning up after it", journal["run_id"])
            else:
                _roll_back(spark, journal["moves"])
                log.warning("rolled back the interrupted commit of run %s", journal["run_id"])
        delete_path(spark, staging)
        cleaned.append(staging.rsplit("/", 1)[-1])
    return cleaned


def _roll_back(spark: SparkSession, moves: list[dict]) -> None:
    """Undo a commit's moves, last first: each published path goes back to staging, each live
    path kept aside goes back to where it was."""
    for move in reversed(moves):
        if move["staged"] is not None and not exists(spark, move["staged"]) and exists(spark, move["live"]):
            _rename(spark, move["live"], move["staged"])
        if exists(spark, move["previous"]):
            delete_path(spark, move["live"])
            _rename(spark, move["previous"], move["live"])


def _commit_completed(spark: SparkSession, moves: list[dict]) -> bool:
    """The last move (the runs partition) is done and its ``_SUCCESS`` marker was written."""
    last = moves[-1]
    return (
        last["staged"] is not None
        and not exists(spark, last["staged"])
        and exists(spark, f"{last['live']}/{SUCCESS}")
    )
