"""The foundation every layer stands on: configuration, names, schemas, errors, paths, progress.

No Spark session here, and nothing heavier than ``pyspark.sql.types`` (in ``core.schemas``): the
command line loads the configuration before the JVM starts.
"""

from insiders_spark.core.config import Config, default_conf_dir, load_config
from insiders_spark.core.errors import (
    AccountingError,
    BacktestError,
    ClusteringError,
    ConfigError,
    DuplicateCustomerIdError,
    InputError,
    ModelFormatError,
    ModelNotFoundError,
    NoCustomersError,
    OutputInUseError,
    QuarantineThresholdError,
    RunDateConflictError,
    RunFailedError,
)
from insiders_spark.core.progress import BackgroundStages, StageTimer, configure_logging

__all__ = [
    "AccountingError",
    "BackgroundStages",
    "BacktestError",
    "ClusteringError",
    "Config",
    "ConfigError",
    "DuplicateCustomerIdError",
    "InputError",
    "ModelFormatError",
    "ModelNotFoundError",
    "NoCustomersError",
    "OutputInUseError",
    "QuarantineThresholdError",
    "RunDateConflictError",
    "RunFailedError",
    "StageTimer",
    "configure_logging",
    "default_conf_dir",
    "load_config",
]
