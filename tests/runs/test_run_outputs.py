"""What a run leaves besides its tables: ``failure.json`` for every failure once the output is
known (a failed read included), no empty ``_staging/`` folder, ``report.html`` beside
``report.md``, and Spark jobs named after the stage that started them."""

from __future__ import annotations

import datetime as dt
import json
import logging
import re
from contextlib import contextmanager

import pytest

from insiders_spark.core.config import load_config
from insiders_spark.core.errors import RunFailedError
from insiders_spark.core.progress import StageTimer
from insiders_spark.runs.runner import run
from insiders_spark.spark.jobs import job_description, job_tag, named_jobs
from insiders_spark.storage.lock import LOCK
from insiders_spark.storage.outputs import FAILED_RUNS, STAGING

LINES = 20_000


def _config(output, **overrides):
    return load_config(env="test", overrides={"output.path": str(output), "synthetic.lines": LINES, **overrides},
                       environ={})


@pytest.fixture(scope="module")
def published(base_run):
    """The suite's base run (tests/jobs.py): its output, result and the Spark jobs it started."""
    return base_run.output, base_run.result, list(base_run.jobs)


@pytest.mark.spark
def test_a_published_run_leaves_no_staging_folder_and_writes_the_html_report(published):
    output, result, _ = published
    assert not (output / STAGING).exists() and not (output / FAILED_RUNS).exists() and not (output / LOCK).exists()
    report = output / "report" / f"run_date={result.run_date}"
    markdown, html = (report / "report.md").read_text(), (report / "report.html").read_text()
    headings = re.findall(r"^#{1,2} (.+)$", markdown, flags=re.MULTILINE)
    assert len(headings) >= 8 and re.findall(r"<h[12]>(.+?)</h[12]>", html) == headings
    assert html.count('src="data:image/png;base64,') == 1  # the revenue chart (no backtest on this run)


@pytest.mark.spark
def test_every_spark_job_of_the_run_is_named_after_its_stage(published):
    _, result, jobs = published
    assert jobs
    stages = {job_description(stage): job_tag(stage) for stage in result.metrics["durations_s"]}
    unnamed = [job for job in jobs if job[1] not in stages]
    assert not unnamed, unnamed
    for _, description, tags in jobs:  # the tag too (the name that works over Spark Connect)
        assert stages[description] in tags.split(","), (description, tags)
    assert {description for _, description, _ in jobs} >= {job_description("read and aggregate")}


@pytest.mark.spark
def test_a_failed_read_records_the_failure(spark, tmp_path):
    output = tmp_path / "out"
    missing = tmp_path / "no such drop.csv"
    with pytest.raises(RunFailedError, match="does not exist") as failure:
        run(spark, _config(output, **{"input.path": str(missing)}))
    (folder,) = (output / FAILED_RUNS / "run_date=unknown").iterdir()  # the run date is the log's: unknown
    assert f"The failure is recorded in {folder}/failure.json." in str(failure.value)
    record = json.loads((folder / "failure.json").read_text())
    assert record["stage"] == "read and aggregate" and record["input"] == str(missing)
    assert "does not exist" in record["error"] and record["as_of"] is None
    assert not (output / STAGING).exists() and not (output / LOCK).exists()
    with pytest.raises(RunFailedError):  # with an as-of date the failure files under that date
        run(spark, _config(output, **{"input.path": str(missing)}), as_of=dt.date(2011, 12, 9))
    (dated,) = (output / FAILED_RUNS / "run_date=2011-12-09").iterdir()
    assert json.loads((dated / "failure.json").read_text())["as_of"] == "2011-12-09"


@pytest.mark.spark
def test_a_failure_after_the_read_keeps_what_was_staged_and_no_staging_folder(spark, tmp_path):
    output = tmp_path / "out"
    with pytest.raises(RunFailedError, match="too much of the input was set aside") as failure:
        run(spark, _config(output, **{"quarantine.max_share": 0.0001}))
    (folder,) = (output / FAILED_RUNS).glob("run_date=*/*")
    assert failure.value.failed_outputs == str(folder)
    record = json.loads((folder / "failure.json").read_text())
    assert sum(record["rows"]["quarantined"].values()) > 0
    assert (folder / "quarantine").is_dir()  # staged before the check failed, kept for inspection
    assert not (output / STAGING).exists() and not (output / LOCK).exists()


def test_the_stage_timer_names_the_jobs_of_each_stage():
    seen = []

    @contextmanager
    def label(name):
        seen.append(("enter", name))
        try:
            yield
        finally:
            seen.append(("exit", name))

    timer = StageTimer(logging.getLogger("test"), label_jobs=label)
    with timer.stage("read"):
        seen.append("work")
    with pytest.raises(ValueError), timer.stage("broken"):
        raise ValueError("stage failed")
    assert seen == [("enter", "read"), "work", ("exit", "read"), ("enter", "broken"), ("exit", "broken")]


@pytest.mark.spark
def test_named_jobs_restores_the_enclosing_description_and_tags(spark):
    context = spark.sparkContext
    with named_jobs(spark, "outer, with a comma"):
        with named_jobs(spark, "inner"):
            assert context.getLocalProperty("spark.job.description") == job_description("inner")
            assert context.getJobTags() >= {job_tag("outer, with a comma"), job_tag("inner")}
        assert context.getLocalProperty("spark.job.description") == job_description("outer, with a comma")
        assert job_tag("outer, with a comma") in context.getJobTags() and job_tag("inner") not in context.getJobTags()
    assert context.getLocalProperty("spark.job.description") is None
    assert not any(tag.startswith("insiders-spark") for tag in context.getJobTags())
