"""One run of the job: hold the output, read the log, run every step, publish or keep the failure.

The steps themselves are in ``runs.publish``, in the order they run.
"""

from __future__ import annotations

import datetime as dt
import functools
import json
import logging
import time
import uuid

from pyspark.sql import SparkSession

from insiders_spark.core.config import Config
from insiders_spark.core.errors import RunFailedError
from insiders_spark.core.names import MODES, TRAIN_AND_SCORE
from insiders_spark.core.progress import BackgroundStages, StageTimer
from insiders_spark.features.table import prepare_customers
from insiders_spark.runs.context import RunContext
from insiders_spark.runs.manifest import failure_record
from insiders_spark.runs.publish import RunResult, publish
from insiders_spark.spark.jobs import named_jobs
from insiders_spark.spark.messages import explain as explain_error
from insiders_spark.spark.session import thread_initializer
from insiders_spark.storage import filesystem
from insiders_spark.storage.layout import StagedOutputs
from insiders_spark.storage.lock import output_lock
from insiders_spark.storage.outputs import open_run_outputs, recover_interrupted_commits

log = logging.getLogger(__name__)


def run(
    spark: SparkSession,
    config: Config,
    *,
    run_date: dt.date | None = None,
    as_of: dt.date | None = None,
    mode: str = TRAIN_AND_SCORE,
    model_version: str | None = None,
) -> RunResult:
    """One run of the job: train a model, score customers with one, or both (the default).

    Every output is staged and published together at the end (``storage.outputs``: renamed into
    place, or a pointer written): a run that fails, or is killed, leaves the previously published
    partitions and models exactly as they were.
    """
    if mode not in MODES:
        raise ValueError(f"mode {mode!r}: expected one of {', '.join(MODES)}")
    started = time.perf_counter()
    with output_lock(spark, config.output.path, f"insiders-spark run ({mode})"):
        return _run_holding_the_output(
            spark, config, started, run_date=run_date, as_of=as_of, mode=mode, model_version=model_version
        )


def _run_holding_the_output(
    spark: SparkSession,
    config: Config,
    started: float,
    *,
    run_date: dt.date | None,
    as_of: dt.date | None,
    mode: str,
    model_version: str | None,
) -> RunResult:
    timer = StageTimer(log, label_jobs=functools.partial(named_jobs, spark))
    for run_id in recover_interrupted_commits(spark, config.output.path, config.output.retention_days):
        log.warning("cleaned up after an earlier run that did not finish: %s", run_id)

    try:
        with timer.stage(READ_STAGE):
            table = prepare_customers(spark, config, as_of=as_of)
    except Exception as error:
        # nothing is staged yet, and the run date may be unknown (it defaults to the log's last day)
        known = run_date or as_of
        outputs = _open_outputs(spark, config, known, _new_run_id(known))
        failed = _keep_failure(spark, outputs, read_failure_record(error, config, as_of))
        message = explain_error(error)
        if failed:
            message += f"{'' if message.endswith('.') else '.'} The failure is recorded in {failed}/{FAILURE_FILE}."
        raise RunFailedError(message, None) from error
    run_date = run_date or table.as_of
    outputs = _open_outputs(spark, config, run_date, _new_run_id(run_date))
    try:
        # leaving the block waits for the background stages, so a failure moves nothing still being written
        with BackgroundStages(
            timer, enabled=config.output.overlap_writes, prepare_thread=thread_initializer(spark)
        ) as background:
            context = RunContext(
                spark=spark,
                config=config,
                table=table,
                outputs=outputs,
                timer=timer,
                background=background,
                mode=mode,
                started=started,
            )
            return publish(context, model_version=model_version)
    except Exception as error:
        failed = _keep_failure(spark, outputs, failure_record(error, table))
        raise RunFailedError(explain_error(error), failed) from error
    finally:
        table.unpersist()


READ_STAGE = "read and aggregate"
FAILURE_FILE = "failure.json"
UNKNOWN_DATE = "unknown"


def _date_label(day: dt.date | None) -> str:
    return day.isoformat() if day else UNKNOWN_DATE


def _open_outputs(spark: SparkSession, config: Config, run_date: dt.date | None, run_id: str) -> StagedOutputs:
    """Staged and renamed, or written once and pointed to: by the output's scheme (output.publishing)."""
    return open_run_outputs(spark, config.output.path, _date_label(run_date), run_id, config.output.publishing)


def _new_run_id(run_date: dt.date | None) -> str:
    return f"{_date_label(run_date)}_{dt.datetime.now(dt.UTC):%Y%m%dT%H%M%SZ}_{uuid.uuid4().hex[:8]}"


def read_failure_record(error: BaseException, config: Config, as_of: dt.date | None) -> dict:
    """What a run that failed while reading knows: the error, and what it was asked to read."""
    source = config.input.table or config.input.path or f"synthetic(lines={config.synthetic.lines})"
    return {
        "error": explain_error(error),
        "error_type": type(error).__name__,
        "stage": READ_STAGE,
        "input": source,
        "as_of": as_of.isoformat() if as_of else None,
    }


def _keep_failure(spark: SparkSession, outputs: StagedOutputs, record: dict) -> str | None:
    """Move what the run staged to ``failed_runs/`` and write ``failure.json`` beside it; the folder,
    or None where even that cannot be written (the run's own error is what the person must see)."""
    try:
        failed = outputs.fail()
        filesystem.write_text(spark, f"{failed}/{FAILURE_FILE}", json.dumps(record, indent=2) + "\n")
    except Exception as error:  # e.g. the output's storage is what failed
        log.warning("could not record the failure under %s: %s", outputs.output, error)
        return None
    return failed
