"""Runs that must not publish, and runs that must not collide: a run killed while it writes (and a
run refused while it holds the output), an input changed under a run, too much of the input set
aside, a score run without a model. Published outputs stay exactly as they were in every case.
And the base run again in another process: the same outputs."""

from __future__ import annotations

import json
import os
import re
import shutil
import signal
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import pytest
from chispa import assert_df_equality

import insiders_spark.runs.runner as runner_module
from insiders_spark.core.errors import AccountingError, OutputInUseError, RunFailedError
from insiders_spark.runs import run
from insiders_spark.storage.lock import LOCK, output_lock
from insiders_spark.storage.outputs import recover_interrupted_commits
from tests import background, support
from tests.jobs import LINES

PUBLISHED = ("segments", "profiles", "rules", "quarantine", "runs", "report", "models")


def _cli_process(*args: str, log, env=None) -> subprocess.Popen:
    """``insiders-spark run ARGS`` in its own process (its own JVM), its console into ``log``."""
    return subprocess.Popen(
        [sys.executable, "-m", "insiders_spark.cli", "run", "--env", "test", *args],
        stdout=log,
        stderr=subprocess.STDOUT,
        env={**os.environ, **(env or {})},
        start_new_session=True,
    )


def _written_json(path):
    """The file's JSON once it is all there; None while it is missing, empty or half-written."""
    try:
        return json.loads(path.read_text())
    except (FileNotFoundError, json.JSONDecodeError):
        return None


@dataclass(frozen=True)
class OtherProcess:
    returncode: int
    console: str
    output: Path


@background.job("another process", wanted=lambda item: "another_process" in getattr(item, "fixturenames", ()))
def _the_base_run_in_another_process(folder: Path) -> OtherProcess:
    """The base run's configuration (tests/jobs.py) through the command line in a fresh process,
    every stage one after another (``output.overlap_writes`` off)."""
    output = folder / "out"
    with (folder / "console.log").open("w") as log:
        process = _cli_process(
            "--output", str(output), "--synthetic-lines", str(LINES),
            log=log, env={"INSIDERS_SPARK__OUTPUT__OVERLAP_WRITES": "false"},
        )  # fmt: skip
    try:
        returncode = process.wait(timeout=900)
    finally:
        if process.poll() is None:
            os.killpg(process.pid, signal.SIGKILL)
    return OtherProcess(returncode, (folder / "console.log").read_text(), output)


@pytest.fixture(scope="module")
def another_process() -> OtherProcess:
    return background.result("another process")


@pytest.mark.spark
def test_another_process_gives_the_same_outputs(spark, base_run, another_process):
    """The same seed, the same customers, every stage one after another in another JVM: the same
    segments, profiles, rules and quarantine, row for row."""
    assert another_process.returncode == 0, another_process.console[-4000:]
    output = another_process.output
    assert sorted(p.name for p in (output / "runs").iterdir()) == [f"run_date={base_run.run_date}"]
    assert not (output / LOCK).exists()  # released at the end
    for table in ("segments", "profiles", "rules", "quarantine"):
        again = spark.read.parquet(str(support.partition(output, table, base_run.run_date)))
        assert_df_equality(again, base_run.table(spark, table), ignore_row_order=True, ignore_nullable=True)


@pytest.mark.spark
def test_a_run_killed_while_it_writes_leaves_the_published_outputs(spark, base_run, tmp_path):
    """A run on a copy of the base run's output, same run date, killed (SIGKILL) once it has staged
    its quarantine. While it holds the output, a run on it stops before touching it, naming the
    holder; once it is dead, the next run takes its lock over and clears its debris."""
    output = tmp_path / "out"
    shutil.copytree(base_run.output, output)
    published = {t: support.tree_digest(output / t) for t in PUBLISHED}
    with (tmp_path / "console.log").open("w") as log:
        process = _cli_process(
            "--output", str(output), "--synthetic-lines", "150000", "--run-date", base_run.run_date, log=log
        )
    lock, staging = output / LOCK, output / "_staging"
    try:
        deadline = time.monotonic() + 300
        # the lock exists before its holder has written it (create, then write): wait for the whole of it
        while (holder := _written_json(lock)) is None:
            assert process.poll() is None and time.monotonic() < deadline, "the run never took the output"
            time.sleep(0.1)
        assert holder["pid"] == process.pid and holder["purpose"] == "insiders-spark run (train-and-score)"
        with pytest.raises(OutputInUseError, match=rf"pid {process.pid}\).*delete {re.escape(str(lock))}"):
            run(spark, support.config({"output.path": str(output), "synthetic.lines": LINES}))
        support.kill_once_writing(  # once the run has staged some output
            process,
            lambda: staging.exists() and any(p.name == "quarantine" for r in staging.iterdir() for p in r.iterdir()),
            deadline=deadline,
        )
    finally:
        if process.poll() is None:
            os.killpg(process.pid, signal.SIGKILL)
    assert process.returncode == -signal.SIGKILL
    assert {t: support.tree_digest(output / t) for t in PUBLISHED} == published
    assert json.loads(lock.read_text())["pid"] == process.pid  # the killed run's lock is left
    with output_lock(spark, str(output), "the next run"):  # and taken over: its holder is gone
        assert recover_interrupted_commits(spark, str(output))  # the next run clears the debris
    assert not staging.exists() and not lock.exists()  # no debris, not even an empty _staging


def test_an_input_changed_during_the_run_fails_it_late_and_it_releases_what_it_cached(spark, tmp_path, monkeypatch):
    """The quarantine is a second pass over the input; a drop corrected in place between the two
    passes must not publish a quarantine that disagrees with the counts. The run fails at its
    commit, after the segmentation: it keeps nothing cached (a notebook's session outlives it)."""
    raw = support.synthetic_frame(3_000, 11).astype({"UnitPrice": object})
    raw.loc[[3, 7], "UnitPrice"] = "#.##"
    broken = support.to_csv_text(raw)
    path = tmp_path / "drop.csv"
    path.write_text(broken)
    real = runner_module.prepare_customers

    def then_corrected(*args, **kwargs):  # the export re-delivers the corrected file mid-run
        table = real(*args, **kwargs)
        path.write_text(broken.replace("#.##", "9.99"))  # same length: the listing's sizes still hold
        return table

    monkeypatch.setattr(runner_module, "prepare_customers", then_corrected)
    cached = support.persistent_rdds(spark)
    with pytest.raises(RunFailedError, match="the input changed while the run read it") as error:
        run(spark, support.config({"input.path": str(path), "output.path": str(tmp_path / "out")}))
    assert isinstance(error.value.__cause__, AccountingError)
    written, counted = (int(n.replace(",", "")) for n in re.search(r"holds ([\d,]+) lines but the run counted ([\d,]+)",
                                                                    str(error.value)).groups())  # fmt: skip
    assert counted - written == 2  # the two prices corrected in between
    assert support.persistent_rdds(spark) == cached
    assert not (tmp_path / "out" / "segments").exists()
    (failed,) = (tmp_path / "out" / "failed_runs").glob("run_date=*/*")
    failure = json.loads((failed / "failure.json").read_text())
    assert failure["error_type"] == "AccountingError" and failure["rows"]["input"] == 3_000


def test_above_the_quarantine_threshold_nothing_is_published_and_earlier_outputs_stay(spark, base_run, tmp_path):
    output = tmp_path / "out"
    shutil.copytree(base_run.output, output)
    published = {t: support.tree_digest(output / t) for t in PUBLISHED}
    broken = support.synthetic_frame(3_000, 11).astype({"UnitPrice": object})
    broken.loc[broken.index % 3 == 0, "UnitPrice"] = "1,25"  # a third of the prices in decimal-comma form
    source = tmp_path / "broken" / "day1.csv"
    source.parent.mkdir()
    source.write_text(support.to_csv_text(broken))
    done = support.run_cli(
        [
            "run",
            "--env",
            "test",
            "--input",
            str(source.parent),
            "--output",
            str(output),
            "--run-date",
            base_run.run_date,
        ]
    )
    assert done.status == 1
    assert "too much of the input was set aside" in done.stderr and "non_numeric_price: 1,000 lines" in done.stderr
    assert "> 1.00%" in done.stderr and "Traceback" not in done.stderr
    assert {t: support.tree_digest(output / t) for t in PUBLISHED} == published
    (failed,) = (output / "failed_runs" / f"run_date={base_run.run_date}").iterdir()
    assert str(failed) in done.stderr  # the message says where the failed run's outputs are
    failure = json.loads((failed / "failure.json").read_text())
    assert failure["error_type"] == "QuarantineThresholdError"
    assert failure["rows"]["quarantined"]["non_numeric_price"] == 1_000
    reasons = spark.read.parquet(str(failed / "quarantine")).groupBy("reason").count().collect()
    assert {r["reason"]: r["count"] for r in reasons}["non_numeric_price"] == 1_000
    assert not (output / "_staging").exists() and not (output / LOCK).exists()


def test_a_score_run_without_a_model_is_a_clear_error(spark, tmp_path):
    done = support.run_cli(
        ["run", "--env", "test", "--output", str(tmp_path), "--mode", "score", "--synthetic-lines", "1000"]
    )
    assert done.status == 1
    assert f"no trained model under {tmp_path}/models: run with --mode train" in done.stderr
    assert not (tmp_path / "segments").exists() and not (tmp_path / LOCK).exists()
