"""A run of the job: the only layer that sequences the steps and writes outputs."""

from insiders_spark.runs.publish import RunResult
from insiders_spark.runs.runner import run

__all__ = ["RunResult", "run"]
