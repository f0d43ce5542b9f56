"""A run's outputs, published together: a run that fails or is killed leaves the published tables
as they were, and the next run cleans up after it.

Two ways to publish, chosen by the output's scheme (``output.publishing``):

* **rename** (local disks, HDFS: renames are atomic): every output is staged under
  ``<output>/_staging/<run_id>/`` and the commit renames each staged path over the live one,
  following a journal, so that the next run rolls back a commit that was cut short (here);
* **pointer** (object stores: a rename is a copy and a delete): every output is written once under
  the run's own folder and the commit writes one small pointer (``storage.pointers``).

Readers go through :func:`partition_path`, which follows a date's pointer when there is one.
"""

from __future__ import annotations

import datetime as dt
import json
import logging
from typing import Any

from pyspark.sql import DataFrame

from insiders_spark.core.names import PARTITION_COLUMN
from insiders_spark.storage import filesystem, pointers
from insiders_spark.storage.layout import (
    FAILED_RUNS,
    JOURNAL,
    POINTER,
    RENAME,
    STAGING,
    SUCCESS,
    StagedOutputs,
    conventional_path,
)
from insiders_spark.storage.uris import OBJECT_STORE_SCHEMES, scheme_of

log = logging.getLogger(__name__)

__all__ = ["FAILED_RUNS", "JOURNAL", "STAGING", "SUCCESS", "RunOutputs", "open_run_outputs", "partition_path"]


def publishing_for(output: str, configured: str = "auto") -> str:
    """``rename`` where renames are atomic (local disks, HDFS), ``pointer`` on object stores."""
    if configured != "auto":
        return configured
    return POINTER if scheme_of(output) in OBJECT_STORE_SCHEMES else RENAME


def open_run_outputs(spark: Any, output: str, run_date: str, run_id: str, publishing: str = "auto") -> StagedOutputs:
    if publishing_for(output, publishing) == POINTER:
        return pointers.PointerOutputs(spark, output, run_date, run_id)
    return RunOutputs(spark, output, run_date, run_id)


def partition_path(output: str, table: str, run_date: str) -> str:
    """Where ``table``'s partition of ``run_date`` is published: the date's pointer's location when
    the date was published by pointer, else ``<output>/<table>/run_date=<date>``. The path may not
    exist (the table has no rows that date, or the date was never published)."""
    pointer = pointers.read_pointer(None, output, str(run_date))
    if pointer is not None and table in pointer["tables"]:
        return pointer["tables"][table]
    return conventional_path(output, table, str(run_date))


def read_partition(spark: Any, output: str, table: str, run_date) -> DataFrame:
    """One published partition of one of the job's tables (without the run_date column)."""
    return spark.read.parquet(partition_path(output, table, str(run_date)))


def latest_published_date(spark: Any, output: str, table: str, before: str) -> str | None:
    """The latest run date before ``before`` with a published partition of ``table`` (a folder of
    the rename publishing or a date's pointer), or None."""
    prefix = f"{PARTITION_COLUMN}="
    folders = [f.rsplit("/", 1)[-1] for f in filesystem.list_dirs(spark, f"{output.rstrip('/')}/{table}")]
    dates = {f[len(prefix) :] for f in folders if f.startswith(prefix)} | set(pointers.pointer_dates(spark, output))
    for date in sorted((d for d in dates if _is_date(d) and d < before), reverse=True):
        if filesystem.exists(spark, partition_path(output, table, date)):
            return date
    return None


def _is_date(text: str) -> bool:
    try:
        dt.date.fromisoformat(text)
    except ValueError:
        return False
    return True


class RunOutputs(StagedOutputs):
    """A run's outputs, staged under ``<output>/_staging/<run_id>/`` and made visible together.

    Every table partition, model folder and file is written to the staging folder first, at the
    same relative path it will have under ``<output>``. ``commit`` then moves each staged path over
    the live one (the live one is kept aside until the end), the ``runs`` partition with the
    metrics, manifest and ``_SUCCESS`` last, following a journal so that an interrupted commit is
    rolled back by the next run (:func:`recover_interrupted_commits`). A run that fails before its
    commit leaves every live path exactly as it was; ``fail`` moves what it staged to
    ``<output>/failed_runs/run_date=<date>/<run_id>/`` for inspection.
    """

    layout = RENAME

    def __init__(self, spark: Any, output: str, run_date: str, run_id: str) -> None:
        super().__init__(spark, output, run_date, run_id, f"{output.rstrip('/')}/{STAGING}/{run_id}")

    def write_table(self, frame: DataFrame, table: str) -> str:
        """Stage ``frame`` as ``table``'s partition for this run date (dynamic partition overwrite)."""
        return self._write_partition(frame, table, "dynamic")

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


def recover_interrupted_commits(spark: Any, output: str, retention_days: float = 7.0) -> list[str]:
    """Roll back commits a killed run left half-done, and drop the folders of dead runs (both ways
    of publishing; old failed and superseded run folders of the pointer publishing too).

    Returns the run ids it cleaned up after. Called at the start of every run, before anything is read.
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
    return cleaned + pointers.recover(spark, output, retention_days)


def _remove_if_empty(spark: Any, folder: str) -> None:
    """Remove ``folder`` (``_staging``) once no run uses it, so a finished run leaves no empty folder.

    Not recursive: should another run have staged into it meanwhile, the folder stays."""
    filesystem.remove_empty_folder(spark, folder)


def _roll_back(spark: Any, moves: list[dict]) -> None:
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


def _commit_completed(spark: Any, moves: list[dict]) -> bool:
    """The last move (the runs partition) is done and its ``_SUCCESS`` marker was written."""
    last = moves[-1]
    return (
        last["staged"] is not None
        and not filesystem.exists(spark, last["staged"])
        and filesystem.exists(spark, f"{last['live']}/{SUCCESS}")
    )
