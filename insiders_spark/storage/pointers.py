"""Publishing by pointer, for object stores, where a rename is a copy and a delete.

Each run writes its files once, under its own folder ``<output>/_runs/run_date=<date>/<run_id>/``
(at the relative paths the rename publishing uses: ``segments/run_date=<date>/``, ...), and commits
by writing one small file, the date's pointer ``<output>/_published/run_date=<date>.json``: a
single PUT, which S3 makes visible whole, or not at all. The pointer names each table partition's
location; readers (``storage.outputs.partition_path``) and the catalog follow it. Until the pointer
is written nothing a reader sees has changed, so a run that fails or is killed leaves the previous
pointer, and every file it names, in place.

Files outside a partition (``models/CURRENT``) are written just after the pointer, following a
journal (``_COMMIT.json``, with the new and the old contents in the run's folder), so that the next
run finishes them should the process die in between (a roll-forward: the pointer is the commit
point). A model version's folder (``models/<version>/``) is written in place, as a new name nobody
reads until ``CURRENT`` names it.

Bookkeeping, so that nothing is left behind: ``<output>/_runs/_state/<run_id>.json`` says a run
folder is *open* (written before its first file), *failed* or *superseded*. A live run has no
record. At the start of every run (``recover``), an open run that the pointer names was killed
just after its commit, and is finished; one it does not name was killed before: its folders are
deleted. Failed and superseded run folders are deleted after ``retention_days``, so that a reader
that read the previous pointer just before a rerun committed can finish reading.
"""

from __future__ import annotations

import datetime as dt
import json
import logging
from typing import Any

from pyspark.sql import DataFrame

from insiders_spark.core.names import PARTITION_COLUMN
from insiders_spark.storage import filesystem
from insiders_spark.storage.layout import POINTER, POINTERS, RUN_FOLDERS, SUCCESS, StagedOutputs, now_utc

log = logging.getLogger(__name__)

STATE = "_state"
COMMIT = "_COMMIT.json"
PREVIOUS = "_previous"  # files outside partitions, as they were before the commit
FILES = "_files"  # files outside partitions, as the commit writes them after its pointer
OPEN, FAILED, SUPERSEDED = "open", "failed", "superseded"
FORMAT = 1


def run_folder(output: str, run_date: str, run_id: str) -> str:
    return f"{output.rstrip('/')}/{RUN_FOLDERS}/{PARTITION_COLUMN}={run_date}/{run_id}"


def pointer_path(output: str, run_date: str) -> str:
    return f"{output.rstrip('/')}/{POINTERS}/{PARTITION_COLUMN}={run_date}.json"


def read_pointer(spark: Any, output: str, run_date: str) -> dict | None:
    """The date's pointer, or None when no run of that date published by pointer."""
    path = pointer_path(output, run_date)
    if not filesystem.exists(spark, path):
        return None
    return json.loads(filesystem.read_text(spark, path))


def pointer_dates(spark: Any, output: str) -> list[str]:
    """The run dates that have a pointer."""
    prefix, suffix = f"{PARTITION_COLUMN}=", ".json"
    names = filesystem.list_names(spark, f"{output.rstrip('/')}/{POINTERS}")
    return [n[len(prefix) : -len(suffix)] for n in names if n.startswith(prefix) and n.endswith(suffix)]


def referenced_runs(pointer: dict | None) -> set[str]:
    """The runs whose folders the pointer reads from (a table the last run did not write stays
    with the run that did)."""
    return set(pointer["runs"]) if pointer else set()


class PointerOutputs(StagedOutputs):
    """A run's outputs written once under its own folder and published by the date's pointer."""

    layout = POINTER

    def __init__(self, spark: Any, output: str, run_date: str, run_id: str) -> None:
        super().__init__(spark, output, run_date, run_id, run_folder(output, run_date, run_id))
        self._files: dict[str, bytes] = {}  # outside a partition: written at commit (models/CURRENT)
        self._folders: list[str] = []  # outside a partition: written in place (models/<version>)
        self._opened = False
        self._committed = False

    def _is_partition(self, relative: str) -> bool:
        parts = relative.split("/")
        return len(parts) >= 2 and parts[1] == f"{PARTITION_COLUMN}={self.run_date}"

    def live(self, relative: str) -> str:
        """Where ``relative`` is read once published: in this run's folder for a partition."""
        return self.staged(relative) if self._is_partition(relative) else f"{self.output}/{relative}"

    def _open(self, folder: str | None = None) -> None:
        """Record the run as open before it writes anything, with any folder it writes in place."""
        with self._guard:
            if self._opened and folder is None:
                return
            if folder is not None:
                self._folders.append(folder)
            self._opened = True
            _write_state(self.spark, self.output, self.run_id, self.run_date, OPEN, folders=self._folders)

    def write_table(self, frame: DataFrame, table: str) -> str:
        """Write ``frame`` as ``table``'s partition in this run's folder (a new folder: a static
        overwrite, which the S3A committers support, where a dynamic one is not)."""
        self._open()
        return self._write_partition(frame, table, "static")

    def write_path(self, relative: str, data: bytes | str, *, publish: str | None = None) -> str:
        if publish or self._is_partition(relative):
            self._open()
            return super().write_path(relative, data, publish=publish)
        self._files[relative] = data.encode("utf-8") if isinstance(data, str) else data
        return self.live(relative)

    def stage_folder(self, relative: str) -> str:
        """A folder for a writer that needs a path (MLlib's ``save``): in this run's folder for a
        partition, else in place (a model version: a new name)."""
        if self._is_partition(relative):
            self._open()
            return self._register(relative)
        self._open(folder=relative)
        return self.live(relative)

    def commit(self, last: str) -> None:
        """Publish: the ``last`` table's ``_SUCCESS``, then the pointer (the commit point), then the
        files outside partitions (``models/CURRENT``), which the next run's recovery writes should the
        process die between the two."""
        self._open()
        previous = read_pointer(self.spark, self.output, self.run_date)
        tables = dict(previous["tables"]) if previous else {}
        empty = set(previous.get("empty", ())) if previous else set()
        for relative in self._paths:
            table = relative.split("/", 1)[0]
            tables[table] = self.staged(relative)
            (empty.add if not filesystem.exists(self.spark, self.staged(relative)) else empty.discard)(table)
        filesystem.write_text(self.spark, f"{self.staged(self.partition(last))}/{SUCCESS}", "")
        runs = sorted({self.run_id} | {r for r in referenced_runs(previous) if _reads_from(tables, empty, r)})
        pointer = {
            "format": FORMAT,
            "run_id": self.run_id,
            "run_date": self.run_date,
            "committed_at": now_utc(),
            "replaces": previous["run_id"] if previous else None,
            "tables": tables,
            "empty": sorted(empty),
            "runs": runs,
        }
        for relative, data in self._files.items():  # kept in the run's folder: the journal's roll-forward
            filesystem.write_bytes(self.spark, f"{self.staging}/{FILES}/{relative}", data)
            if filesystem.exists(self.spark, self.live(relative)):
                old = filesystem.read_bytes(self.spark, self.live(relative))
                filesystem.write_bytes(self.spark, f"{self.staging}/{PREVIOUS}/{relative}", old)
        journal = {"run_id": self.run_id, "files": sorted(self._files), "folders": self._folders}
        filesystem.write_text(self.spark, f"{self.staging}/{COMMIT}", json.dumps(journal))
        try:
            for run in referenced_runs(previous) - set(runs):  # before the pointer: never lost
                _write_state(self.spark, self.output, run, self.run_date, SUPERSEDED)
            filesystem.write_text(self.spark, pointer_path(self.output, self.run_date), json.dumps(pointer, indent=2))
        except Exception:
            # A PUT whose answer was lost may have been stored all the same: ask the store. When it
            # cannot say, the journal stays and the next run decides by the pointer it finds.
            if (read_pointer(self.spark, self.output, self.run_date) or {}).get("run_id") != self.run_id:
                filesystem.delete_path(self.spark, f"{self.staging}/{COMMIT}")  # nothing a reader sees changed
                raise
        self._committed = True  # the commit point: from here on the run is published
        _roll_forward(self.spark, self.output, self.staging, journal)
        _finish(self.spark, self.output, self.staging, self.run_id)

    @property
    def failed(self) -> str:
        """Where a failed run's files and its ``failure.json`` are kept: its own folder."""
        return self.staging

    def fail(self) -> str:
        """Keep what this run wrote in its folder for inspection (``retention_days``): a model folder
        written in place moves into it. Nothing live changes. Returns the folder, where the caller
        records the failure.

        A run that failed after its commit (registering its tables) stays live; one whose commit
        cannot tell whether its pointer was written stays open, for the next run's :func:`recover`
        to decide by the pointer it finds.
        """
        if self._committed:
            return self.staging
        if filesystem.exists(self.spark, f"{self.staging}/{COMMIT}"):
            log.error("run %s cannot tell whether it published; the next run on this output will", self.run_id)
            return self.staging
        for folder in self._folders:
            if filesystem.exists(self.spark, self.live(folder)):
                filesystem.rename(self.spark, self.live(folder), self.staged(folder))
        self._opened = True
        _write_state(self.spark, self.output, self.run_id, self.run_date, FAILED)
        return self.staging


def _finish(spark: Any, output: str, folder: str, run_id: str) -> None:
    """A committed run's bookkeeping goes: its journal, the files it kept, then its record, last, so
    that a kill in between leaves the record for :func:`recover` to finish the job."""
    for done in (f"{folder}/{COMMIT}", f"{folder}/{PREVIOUS}", f"{folder}/{FILES}", _state_path(output, run_id)):
        filesystem.delete_path(spark, done)
    _remove_if_empty(spark, f"{output.rstrip('/')}/{RUN_FOLDERS}/{STATE}")


def _reads_from(tables: dict[str, str], empty: set[str], run_id: str) -> bool:
    return any(f"/{run_id}/" in location for table, location in tables.items() if table not in empty)


def _state_path(output: str, run_id: str) -> str:
    return f"{output.rstrip('/')}/{RUN_FOLDERS}/{STATE}/{run_id}.json"


def _write_state(spark: Any, output: str, run_id: str, run_date: str, state: str, folders=()) -> None:
    record = {"run_id": run_id, "run_date": run_date, "state": state, "at": now_utc(), "folders": list(folders)}
    filesystem.write_text(spark, _state_path(output, run_id), json.dumps(record))


def _roll_forward(spark: Any, output: str, folder: str, journal: dict) -> None:
    """After the pointer: each file outside a partition (``models/CURRENT``) gets the run's content,
    unless it changed since the run read it (``models use`` in between: that choice stands)."""
    for relative in journal["files"]:
        live, kept = f"{output}/{relative}", f"{folder}/{PREVIOUS}/{relative}"
        before = filesystem.read_bytes(spark, kept) if filesystem.exists(spark, kept) else None
        now = filesystem.read_bytes(spark, live) if filesystem.exists(spark, live) else None
        new = filesystem.read_bytes(spark, f"{folder}/{FILES}/{relative}")
        if now in (before, new):
            filesystem.write_bytes(spark, live, new)
        else:
            log.warning("%s changed after run %s committed; left as it is", live, journal["run_id"])


def recover(spark: Any, output: str, retention_days: float, now: dt.datetime | None = None) -> list[str]:
    """Clean up after earlier runs, holding the output's lock: roll back a commit cut short, delete
    the folders of runs that were killed, and those of failed and superseded runs older than
    ``retention_days``. Returns the ids of the runs that had not finished."""
    output = output.rstrip("/")
    now = now or dt.datetime.now(dt.UTC)
    unfinished = []
    for name in filesystem.list_names(spark, f"{output}/{RUN_FOLDERS}/{STATE}"):
        path = f"{output}/{RUN_FOLDERS}/{STATE}/{name}"
        try:
            record = json.loads(filesystem.read_text(spark, path))
        except (ValueError, OSError):  # not a record (a leftover temporary file)
            filesystem.delete_path(spark, path)
            continue
        run_id, run_date = record["run_id"], record["run_date"]
        folder = run_folder(output, run_date, run_id)
        if run_id in referenced_runs(read_pointer(spark, output, run_date)):  # live: killed just after its pointer
            journal_path = f"{folder}/{COMMIT}"
            if filesystem.exists(spark, journal_path):
                _roll_forward(spark, output, folder, json.loads(filesystem.read_text(spark, journal_path)))
                log.warning("finished the commit of run %s, which was killed after publishing", run_id)
            _finish(spark, output, folder, run_id)
            continue
        if record["state"] == OPEN:  # killed before its pointer: nothing it wrote was ever read
            for relative in record.get("folders", ()):
                filesystem.delete_path(spark, f"{output}/{relative}")
            unfinished.append(run_id)
        elif now - dt.datetime.fromisoformat(record["at"]) < dt.timedelta(days=retention_days):
            continue
        else:
            log.info("removing the folder of run %s (%s on %s)", run_id, record["state"], record["at"])
        filesystem.delete_path(spark, folder)
        filesystem.delete_path(spark, path)
        _remove_if_empty(spark, folder.rsplit("/", 1)[0])
    _remove_if_empty(spark, f"{output}/{RUN_FOLDERS}/{STATE}")
    for name in filesystem.list_names(spark, f"{output}/{POINTERS}"):
        if name.startswith(".") and name.endswith(".tmp"):  # a pointer's write killed before its rename (local)
            filesystem.delete_path(spark, f"{output}/{POINTERS}/{name}")
    return unfinished


def _remove_if_empty(spark: Any, folder: str) -> None:
    filesystem.remove_empty_folder(spark, folder)
