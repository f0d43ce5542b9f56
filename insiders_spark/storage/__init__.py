"""Where data lives: the raw log read in and mapped onto the job's columns, the synthetic log, and
a run's outputs locked and published together (staged and renamed, or written once and pointed
to), and registered in a catalog."""

from insiders_spark.storage.inputs import RawInput, read_input
from insiders_spark.storage.lock import output_lock
from insiders_spark.storage.mapping import ColumnMapping, MappedInput, map_columns, map_input
from insiders_spark.storage.outputs import (
    RunOutputs,
    latest_published_date,
    open_run_outputs,
    partition_path,
    read_partition,
    recover_interrupted_commits,
)

__all__ = [
    "ColumnMapping",
    "MappedInput",
    "RawInput",
    "RunOutputs",
    "latest_published_date",
    "map_columns",
    "map_input",
    "open_run_outputs",
    "output_lock",
    "partition_path",
    "read_input",
    "read_partition",
    "recover_interrupted_commits",
]
