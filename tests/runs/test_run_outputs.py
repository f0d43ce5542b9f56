"""What a run leaves besides its tables: ``failure.json`` for every failure once the output is
known (a failed read included), no empty ``_staging/`` folder, ``report.html`` beside
``report.md``."""

from __future__ import annotations

import datetime as dt
import json
import re

import pytest

from insiders_spark.core.config import load_config
from insiders_spark.core.errors import RunFailedError
from insiders_spark.runs.runner import run
from insiders_spark.storage.lock import LOCK
from insiders_spark.storage.outputs import FAILED_RUNS, STAGING

LINES = 20_000


def _config(output, **overrides):
    return load_config(env="test", overrides={"output.path": str(output), "synthetic.lines": LINES, **overrides},
                       environ={})


@pytest.fixture(scope="module")
def published(spark, tmp_path_factory):
    output = tmp_path_factory.mktemp("published") / "out"
    return output, run(spark, _config(output))


def test_a_published_run_leaves_no_staging_folder_and_writes_the_html_report(published):
    output, result = published
    assert not (output / STAGING).exists() and not (output / FAILED_RUNS).exists() and not (output / LOCK).exists()
    report = output / "report" / f"run_date={result.run_date}"
    markdown, html = (report / "report.md").read_text(), (report / "report.html").read_text()
    headings = re.findall(r"^#{1,2} (.+)$", markdown, flags=re.MULTILINE)
    assert len(headings) >= 8 and re.findall(r"<h[12]>(.+?)</h[12]>", html) == headings
    assert html.count('src="data:image/png;base64,') == 1  # the revenue chart (no backtest on this run)


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
