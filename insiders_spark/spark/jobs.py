"""Names on the Spark jobs a stage of the run starts, for the Spark UI, the event log and the
history server: which part of the run a slow or failed job belongs to.

Two names, set for the calling thread only (a background stage names its own jobs):

* a job **tag**, which also lets a stage's jobs be cancelled together: in classic mode on the
  SparkContext (``addJobTag``, ``spark.classic.label_jobs``), so that every job carries it, the RDD-based ones of MLlib
  included (a session's tags reach only its SQL executions); over Spark Connect on the session
  (``SparkSession.addTag``: every operation there is the session's);
* the job **description**, which the UI shows as the job's name, in classic mode only (Spark
  Connect has no SparkContext; its UI names a job by its tag and operation).
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from contextlib import contextmanager

from pyspark.sql import SparkSession

from insiders_spark.spark import classic
from insiders_spark.spark.connect import is_connect

JOB_TAG_PREFIX = "insiders-spark"


def job_tag(stage: str) -> str:
    """The tag of a stage's jobs: ``insiders-spark-read-and-aggregate`` (no commas, never empty)."""
    return f"{JOB_TAG_PREFIX}-{re.sub(r'[^a-z0-9]+', '-', stage.lower()).strip('-') or 'stage'}"


def job_description(stage: str) -> str:
    return f"{JOB_TAG_PREFIX}: {stage}"


@contextmanager
def named_jobs(spark: SparkSession, stage: str) -> Iterator[None]:
    """The Spark jobs this thread starts inside the block carry ``stage``'s tag and description;
    the thread's previous description (an enclosing stage's) comes back afterwards."""
    tag = job_tag(stage)
    if not is_connect(spark):
        with classic.label_jobs(spark, tag, job_description(stage)):
            yield
        return
    spark.addTag(tag)
    try:
        yield
    finally:
        spark.removeTag(tag)
