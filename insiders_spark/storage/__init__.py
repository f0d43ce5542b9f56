"""Where data lives: the raw log read in, the synthetic log, and a run's outputs staged, locked and
published together."""

from insiders_spark.storage.inputs import RawInput, list_input_files, read_transactions
from insiders_spark.storage.lock import output_lock
from insiders_spark.storage.outputs import RunOutputs, partition_path, read_partition, recover_interrupted_commits

__all__ = [
    "RawInput",
    "RunOutputs",
    "list_input_files",
    "output_lock",
    "partition_path",
    "read_partition",
    "read_transactions",
    "recover_interrupted_commits",
]
