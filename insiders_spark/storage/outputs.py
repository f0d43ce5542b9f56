"""A run's outputs, staged and published together: a run that fails or is killed leaves the
published tables as they were, and the next run rolls back a commit that was cut short.
"""

from __future__ import annotations

import json
import logging

from pyspark.sql import DataFrame, SparkSession
from pyspark.sql import functions as F

from insiders_spark.core.names import PARTITION_COLUMN
from insiders_spark.storage import filesystem

log = logging.getLogger(__name__)


def read_partition(spark: SparkSession, output: str, table: str, run_date) -> DataFrame:
    """One published partition of one of the job's tables (without the run_date column)."""
    return spark.read.parquet(partition_path(output, table, str(run_date)))


def partition_path(output: str, table: str, run_date: str) -> str:
    return f"{output.rstrip('/')}/{table}/{PARTITION_COLUMN}={run_date}"


STAGING = "_staging"


FAILED_RUNS = "failed_runs"


JOURNAL = "_COMMITTING.json"


SUCCESS = "_SUCCESS"


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
        filesystem.write_bytes(self.spark, self.staged(relative), payload)
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
                "staged": self.staged(p) if filesystem.exists(self.spark, self.staged(p)) else None,
                "live": self.live(p),
                "previous": f"{self.staging}/_previous/{p}",
            }
            for p in order
        ]
        journal = f"{self.staging}/{JOURNAL}"
        filesystem.write_text(self.spark, journal, json.dumps({"run_id": self.run_id, "moves": moves}))
        try:
            for move in moves:
                if filesystem.exists(self.spark, move["live"]):
                    filesystem.rename(self.spark, move["live"], move["previous"])
                if move["staged"]:
                    filesystem.rename(self.spark, move["staged"], move["live"])
            filesystem.write_text(self.spark, f"{self.live(final)}/{SUCCESS}", "")
        except Exception:
            # Put every live path back as it was; if even that fails, the journal stays for the
            # next run's recovery (and ``fail`` leaves the staging folder where recovery finds it).
            _roll_back(self.spark, moves)
            filesystem.delete_path(self.spark, journal)
            raise
        filesystem.delete_path(self.spark, journal)
        filesystem.delete_path(self.spark, self.staging)
        _remove_if_empty(self.spark, f"{self.output}/{STAGING}")

    @property
    def failed(self) -> str:
        """Where a failed run's staged outputs and its ``failure.json`` are kept."""
        return f"{self.output}/{FAILED_RUNS}/{PARTITION_COLUMN}={self.run_date}/{self.run_id}"

    def fail(self) -> str:
        """Keep what this run staged aside for inspection; live paths are untouched. Returns the
        failed run's folder (:attr:`failed`), where the caller records the failure.

        A staging folder that still holds a commit journal is left in place: its commit could not
        be rolled back here, and the next run's :func:`recover_interrupted_commits` will.
        """
        if filesystem.exists(self.spark, f"{self.staging}/{JOURNAL}"):
            log.error("the commit of run %s could not be rolled back; the next run on this output will", self.run_id)
        elif filesystem.exists(self.spark, self.staging):
            filesystem.rename(self.spark, self.staging, self.failed)
            _remove_if_empty(self.spark, f"{self.output}/{STAGING}")
        return self.failed


def recover_interrupted_commits(spark: SparkSession, output: str) -> list[str]:
    """Roll back commits a killed run left half-done, and drop staging folders of dead runs.

    Returns the run ids it cleaned up. Called at the start of every run, before anything is read.
    """
    cleaned = []
    for staging in filesystem.list_dirs(spark, f"{output.rstrip('/')}/{STAGING}"):
        journal_path = f"{staging}/{JOURNAL}"
        if filesystem.exists(spark, journal_path):
            journal = json.loads(filesystem.read_text(spark, journal_path))
            if _commit_completed(spark, journal["moves"]):
                log.warning("run %s had finished its commit; cleaning up after it", journal["run_id"])
            else:
                _roll_back(spark, journal["moves"])
                log.warning("rolled back the interrupted commit of run %s", journal["run_id"])
        filesystem.delete_path(spark, staging)
        cleaned.append(staging.rsplit("/", 1)[-1])
    _remove_if_empty(spark, f"{output.rstrip('/')}/{STAGING}")
    return cleaned


def _remove_if_empty(spark: SparkSession, folder: str) -> None:
    """Remove ``folder`` (``_staging``) once no run uses it, so a finished run leaves no empty folder.

    Not recursive: should another run have staged into it meanwhile, the folder stays."""
    filesystem.remove_empty_folder(spark, folder)


def _roll_back(spark: SparkSession, moves: list[dict]) -> None:
    """Undo a commit's moves, last first: each published path goes back to staging, each live
    path kept aside goes back to where it was."""
    for move in reversed(moves):
        if (
            move["staged"] is not None
            and not filesystem.exists(spark, move["staged"])
            and filesystem.exists(spark, move["live"])
        ):
            filesystem.rename(spark, move["live"], move["staged"])
        if filesystem.exists(spark, move["previous"]):
            filesystem.delete_path(spark, move["live"])
            filesystem.rename(spark, move["previous"], move["live"])


def _commit_completed(spark: SparkSession, moves: list[dict]) -> bool:
    """The last move (the runs partition) is done and its ``_SUCCESS`` marker was written."""
    last = moves[-1]
    return (
        last["staged"] is not None
        and not filesystem.exists(spark, last["staged"])
        and filesystem.exists(spark, f"{last['live']}/{SUCCESS}")
    )
