"""The Spark session and how its JVM starts; small tables built in the plan; Spark's errors explained.

The names load on first use: the command line plans the JVM's start (``spark.launch``) before
numpy, pandas and pyarrow, which ``literals`` pulls in through ``pyspark.ml``, are imported.
"""

from __future__ import annotations

from importlib import import_module
from typing import Any

_EXPORTS = {
    "LaunchPlan": "insiders_spark.spark.launch",
    "plan_launch": "insiders_spark.spark.launch",
    "write_class_archive": "insiders_spark.spark.launch",
    "literal_frame": "insiders_spark.spark.literals",
    "explain": "insiders_spark.spark.messages",
    "build_spark_session": "insiders_spark.spark.session",
}

__all__ = sorted(_EXPORTS)


def __getattr__(name: str) -> Any:
    if name not in _EXPORTS:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    return getattr(import_module(_EXPORTS[name]), name)
