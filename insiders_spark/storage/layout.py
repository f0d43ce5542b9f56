"""Names and paths shared by the two ways a run publishes (``storage.outputs``: stage, then rename;
``storage.pointers``: write once, then point), and what both offer the run's steps."""

from __future__ import annotations

import datetime as dt
import threading
from typing import Any

from pyspark.sql import DataFrame
from pyspark.sql import functions as F

from insiders_spark.core.names import PARTITION_COLUMN
from insiders_spark.storage import filesystem

STAGING = "_staging"  # rename publishing: <output>/_staging/<run_id>/
FAILED_RUNS = "failed_runs"
JOURNAL = "_COMMITTING.json"
SUCCESS = "_SUCCESS"
RUN_FOLDERS = "_runs"  # pointer publishing: <output>/_runs/run_date=<date>/<run_id>/
POINTERS = "_published"  # pointer publishing: <output>/_published/run_date=<date>.json
RENAME, POINTER = "rename", "pointer"


def partition_relative(table: str, run_date: str) -> str:
    return f"{table}/{PARTITION_COLUMN}={run_date}"


def conventional_path(output: str, table: str, run_date: str) -> str:
    """Where the rename publishing puts a table's partition (``<output>/<table>/run_date=<date>``)."""
    return f"{output.rstrip('/')}/{partition_relative(table, run_date)}"


def now_utc() -> str:
    return dt.datetime.now(dt.UTC).isoformat(timespec="seconds")


class StagedOutputs:
    """What the run's steps use, whichever way the run publishes: every table partition, model
    folder and file is written to ``staged(relative)`` first and made live by ``commit``."""

    layout = ""

    def __init__(self, spark: Any, output: str, run_date: str, run_id: str, staging: str) -> None:
        self.spark = spark
        self.output = output.rstrip("/")
        self.run_date = run_date
        self.run_id = run_id
        self.staging = staging
        self._paths: list[str] = []  # relative paths to publish, in order
        self._guard = threading.Lock()  # the second driver thread stages too

    def _register(self, relative: str) -> str:
        with self._guard:
            if relative not in self._paths:
                self._paths.append(relative)
        return self.live(relative)

    def partition(self, table: str) -> str:
        return partition_relative(table, self.run_date)

    def staged(self, relative: str) -> str:
        return f"{self.staging}/{relative}"

    def live(self, relative: str) -> str:
        return f"{self.output}/{relative}"

    def _write_partition(self, frame: DataFrame, table: str, overwrite_mode: str) -> str:
        (
            frame.withColumn(PARTITION_COLUMN, F.lit(self.run_date))
            .write.mode("overwrite")
            .option("partitionOverwriteMode", overwrite_mode)
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

    def published_partitions(self) -> dict[str, str | None]:
        """After the commit: each table partition this run published, and where it is now (None for
        a table it emptied). What the catalog registers."""
        found = {}
        for relative in self._paths:
            table, _, rest = relative.partition("/")
            if rest == f"{PARTITION_COLUMN}={self.run_date}":
                location = self.live(relative)
                found[table] = location if filesystem.exists(self.spark, location) else None
        return found
