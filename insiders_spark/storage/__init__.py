"""Where data lives: the raw log read in and mapped onto the job's columns, the synthetic log, and
a run's outputs staged, locked and published together."""

from insiders_spark.storage.inputs import RawInput, read_input
from insiders_spark.storage.lock import output_lock
from insiders_spark.storage.mapping import ColumnMapping, MappedInput, map_columns, map_input
from insiders_spark.storage.outputs import RunOutputs, partition_path, read_partition, recover_interrupted_commits

__all__ = [
    "ColumnMapping",
    "MappedInput",
    "RawInput",
    "RunOutputs",
    "map_columns",
    "map_input",
    "output_lock",
    "partition_path",
    "read_input",
    "read_partition",
    "recover_interrupted_commits",
]
