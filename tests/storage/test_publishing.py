"""Both ways a run publishes, on the local file system: stage and rename (local disks, HDFS), and
write once and point (object stores, forced here with ``output.publishing = pointer``).

Each is killed at every step of its commit, and after the next run's recovery a reader sees the
previous run's outputs or the new run's, whole, and nothing is left behind; the pointer publishing
never shows a reader anything else, even before the recovery. A real run is killed mid-write too.
"""

from __future__ import annotations

import datetime as dt
import json
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pyarrow.parquet as pq
import pytest

from insiders_spark.core.config import load_config
from insiders_spark.runs.runner import run
from insiders_spark.storage import filesystem
from insiders_spark.storage.layout import POINTER, POINTERS, RENAME, RUN_FOLDERS, STAGING
from insiders_spark.storage.lock import LOCK
from insiders_spark.storage.outputs import (
    latest_published_date,
    open_run_outputs,
    partition_path,
    publishing_for,
    read_partition,
    recover_interrupted_commits,
)
from insiders_spark.storage.pointers import STATE, read_pointer
from tests import support

DATE = "2011-12-09"
TABLES = ("segments", "profiles")
pytestmark = pytest.mark.spark


def _rows(path: str) -> list[tuple] | None:
    """A partition as a reader sees it (pyarrow: no Spark job per look), or None when absent."""
    if not filesystem.exists(None, path):
        return None
    return sorted(pq.read_table(path).to_pylist(), key=str)


def _seen(output: Path) -> dict:
    """Everything a reader of the output sees for the date: each table, the metrics, the model."""
    runs = partition_path(str(output), "runs", DATE)
    current = filesystem.read_replaced_text(None, f"{output}/models/CURRENT")
    return {
        **{table: _rows(partition_path(str(output), table, DATE)) for table in TABLES},
        "metrics": json.loads(Path(runs, "metrics.json").read_text()) if Path(runs, "metrics.json").exists() else None,
        "current": current,
        "model": (output / "models" / (current or "none").strip() / "model.json").exists(),
    }


def _stage_second(spark, output: Path, publishing: str, *, write_tables: bool):
    second = open_run_outputs(spark, str(output), DATE, "run-two", publishing)
    for table in TABLES:
        if write_tables:
            second.write_table(spark.createDataFrame([(2, "new")], "id long, v string"), table)
        else:  # already on disk (a copy of the template): registered as write_table registers it
            second.clear_table(table)
    second.write_file("runs", "metrics.json", '{"new": true}')
    filesystem.write_text(spark, f"{second.stage_folder('models/v2')}/model.json", "{}")
    second.write_path("models/CURRENT", "v2\n")
    return second


@pytest.fixture(scope="module", params=[RENAME, POINTER])
def template(request, spark, tmp_path_factory):
    """Run one published, run two staged (not committed): copied for each kill."""
    publishing, output = request.param, tmp_path_factory.mktemp(request.param) / "out"
    first = open_run_outputs(spark, str(output), DATE, "run-one", publishing)
    for table in TABLES:
        first.write_table(spark.createDataFrame([(1, "old")], "id long, v string"), table)
    first.write_file("runs", "metrics.json", "{}")
    filesystem.write_text(spark, f"{first.stage_folder('models/v1')}/model.json", "{}")
    first.write_path("models/CURRENT", "v1\n")
    first.commit(last="runs")
    _stage_second(spark, output, publishing, write_tables=True)
    return publishing, output


OLD = {"segments": [{"id": 1, "v": "old"}], "profiles": [{"id": 1, "v": "old"}], "metrics": {}, "current": "v1\n",
       "model": True}
NEW = {"segments": [{"id": 2, "v": "new"}], "profiles": [{"id": 2, "v": "new"}], "metrics": {"new": True},
       "current": "v2\n", "model": True}

NEW_BUT_CURRENT = {**NEW, "current": "v1\n"}  # killed between the pointer and CURRENT: the next run writes it


class Killed(BaseException):
    """The process dying: not an Exception, so no ``except Exception`` in the commit catches it."""


def _kill_at(monkeypatch, step: int) -> list[str]:
    """Every change the commit makes to the file system counts as a step; the ``step``-th never happens."""
    done: list[str] = []
    for name in ("write_bytes", "rename", "delete_path"):
        real = getattr(filesystem, name)

        def changed(*args, _real=real, _name=name):
            if len(done) + 1 == step:
                raise Killed(f"killed before {_name} {args[1]}")
            done.append(f"{_name} {args[1]}")
            return _real(*args)

        monkeypatch.setattr(filesystem, name, changed)
    return done


def test_a_commit_killed_at_any_step_leaves_the_old_or_the_new_outputs_whole(spark, template, tmp_path, monkeypatch):
    publishing, prepared = template
    outcomes = []
    for step in range(1, 100):
        output = tmp_path / f"kill-{step}" / "out"
        shutil.copytree(prepared, output)
        second = _stage_second(spark, output, publishing, write_tables=False)
        with monkeypatch.context() as patched:
            done = _kill_at(patched, step)
            try:
                second.commit(last="runs")
            except Killed:
                pass
            else:
                break  # the commit has fewer steps than this: every step has been killed
        seen = _seen(output)
        if publishing == POINTER:  # the tables are never a mix, even before anyone cleans up
            assert seen in (OLD, NEW, NEW_BUT_CURRENT), (step, done, seen)
        assert recover_interrupted_commits(spark, str(output)) in ([], ["run-two"])
        after = _seen(output)
        assert after in (OLD, NEW), (step, done, after)
        assert publishing == RENAME or after == (NEW if seen == NEW_BUT_CURRENT else seen)
        outcomes.append("new" if after == NEW else "old")
        _assert_no_debris(output, publishing, committed=after == NEW)
        assert recover_interrupted_commits(spark, str(output)) == []  # a second look finds nothing to do
    else:
        pytest.fail("the commit never finished")
    assert outcomes[0] == "old" and outcomes[-1] == "new" and len(outcomes) >= 5, outcomes


def _assert_no_debris(output: Path, publishing: str, *, committed: bool) -> None:
    names = sorted(p.name for p in output.iterdir())
    assert STAGING not in names and LOCK not in names
    assert sorted(p.name for p in (output / "models").iterdir()) == (["CURRENT", "v1", "v2"] if committed else
                                                                     ["CURRENT", "v1"])
    if publishing == RENAME:
        assert names == ["models", "profiles", "runs", "segments"]
        return
    assert names == [POINTERS, RUN_FOLDERS, "models"]
    runs = sorted(p.name for p in (output / RUN_FOLDERS / f"run_date={DATE}").iterdir())
    assert runs == (["run-one", "run-two"] if committed else ["run-one"])  # run one kept until the retention
    for run_folder in runs:  # a run's journal and the files it kept for a roll-back go once it is live
        inside = {p.name for p in (output / RUN_FOLDERS / f"run_date={DATE}" / run_folder).iterdir()}
        assert not {"_COMMIT.json", "_previous"} & inside
    state = sorted(p.name for p in (output / RUN_FOLDERS / STATE).iterdir()) if committed else []
    assert state == (["run-one.json"] if committed else [])
    assert not (output / RUN_FOLDERS / STATE).exists() or committed
    assert sorted(p.name for p in (output / POINTERS).iterdir()) == [f"run_date={DATE}.json"]


def test_the_scheme_chooses_how_a_run_publishes():
    assert [publishing_for(p) for p in ("/data/out", "file:///out", "hdfs://nn/out", "viewfs://c/out")] == [RENAME] * 4
    assert [publishing_for(p) for p in ("s3a://b/out", "s3://b/o", "s3n://b/o", "gs://b/o", "abfss://c@a/o")] == [
        POINTER
    ] * 5
    assert publishing_for("/data/out", POINTER) == POINTER and publishing_for("s3a://b/out", RENAME) == RENAME


def test_a_rerun_moves_the_pointer_and_the_superseded_run_goes_after_the_retention(spark, tmp_path):
    output = tmp_path / "out"
    first = open_run_outputs(spark, str(output), DATE, "run-one", POINTER)
    for table in ("segments", "profiles", "backtest"):
        first.write_table(spark.createDataFrame([(1, "old")], "id long, v string"), table)
    first.write_file("runs", "metrics.json", "{}")
    first.commit(last="runs")
    second = open_run_outputs(spark, str(output), DATE, "run-two", POINTER)
    second.write_table(spark.createDataFrame([(2, "new")], "id long, v string"), "segments")
    second.clear_table("profiles")  # no rows this time: its partition goes
    second.write_file("runs", "metrics.json", '{"new": true}')
    second.commit(last="runs")
    assert second.published_partitions() == {
        "segments": f"{output}/{RUN_FOLDERS}/run_date={DATE}/run-two/segments/run_date={DATE}",
        "profiles": None,
        "runs": f"{output}/{RUN_FOLDERS}/run_date={DATE}/run-two/runs/run_date={DATE}",
    }
    segments = read_partition(spark, str(output), "segments", DATE).collect()
    assert [r.asDict() for r in segments] == [{"id": 2, "v": "new"}]
    assert _rows(partition_path(str(output), "profiles", DATE)) is None
    # backtest was not written again: it stays run one's, so run one's folder is still read from
    assert _rows(partition_path(str(output), "backtest", DATE)) == [{"id": 1, "v": "old"}]
    assert read_pointer(None, str(output), DATE)["runs"] == ["run-one", "run-two"]
    assert latest_published_date(spark, str(output), "segments", "2011-12-10") == DATE
    assert latest_published_date(spark, str(output), "profiles", "2011-12-10") is None
    assert latest_published_date(spark, str(output), "segments", DATE) is None
    later = dt.datetime.now(dt.UTC) + dt.timedelta(days=30)
    assert recover_interrupted_commits(spark, str(output)) == []
    from insiders_spark.storage.pointers import recover

    assert recover(spark, str(output), retention_days=7, now=later) == []
    assert (output / RUN_FOLDERS / f"run_date={DATE}" / "run-one").is_dir()  # still read: never removed

    third = open_run_outputs(spark, str(output), DATE, "run-three", POINTER)
    for table in ("segments", "backtest"):
        third.write_table(spark.createDataFrame([(3, "third")], "id long, v string"), table)
    third.write_file("runs", "metrics.json", "{}")
    third.commit(last="runs")
    assert read_pointer(None, str(output), DATE)["runs"] == ["run-three"]
    assert recover(spark, str(output), retention_days=7) == []  # superseded a moment ago: kept for readers
    assert sorted(p.name for p in (output / RUN_FOLDERS / f"run_date={DATE}").iterdir()) == [
        "run-one", "run-three", "run-two"
    ]
    assert recover(spark, str(output), retention_days=7, now=later) == []
    assert sorted(p.name for p in (output / RUN_FOLDERS).iterdir()) == [f"run_date={DATE}"]  # no _state left
    assert [p.name for p in (output / RUN_FOLDERS / f"run_date={DATE}").iterdir()] == ["run-three"]


def test_a_failed_pointer_run_keeps_its_folder_for_a_while_and_changes_nothing_live(spark, tmp_path):
    output = tmp_path / "out"
    first = open_run_outputs(spark, str(output), DATE, "run-one", POINTER)
    first.write_table(spark.createDataFrame([(1, "old")], "id long, v string"), "segments")
    first.write_file("runs", "metrics.json", "{}")
    first.write_path("models/CURRENT", "v1\n")
    first.commit(last="runs")
    before = _rows(partition_path(str(output), "segments", DATE))
    failing = open_run_outputs(spark, str(output), DATE, "run-two", POINTER)
    failing.write_table(spark.createDataFrame([(2, "new")], "id long, v string"), "segments")
    filesystem.write_text(spark, f"{failing.stage_folder('models/v2')}/model.json", "{}")
    failing.write_path("models/CURRENT", "v2\n")
    kept = failing.fail()
    assert kept == f"{output}/{RUN_FOLDERS}/run_date={DATE}/run-two"
    assert Path(kept, "models", "v2", "model.json").exists()  # the model moved in: not a version to use
    assert sorted(p.name for p in (output / "models").iterdir()) == ["CURRENT"]
    assert (output / "models" / "CURRENT").read_text() == "v1\n"
    assert _rows(partition_path(str(output), "segments", DATE)) == before
    assert recover_interrupted_commits(spark, str(output)) == []
    assert Path(kept).is_dir()  # inside the retention: kept for inspection
    assert recover_interrupted_commits(spark, str(output), retention_days=0) == []
    assert not Path(kept).exists() and not (output / RUN_FOLDERS / STATE).exists()


def _config(output: Path, **overrides):
    values = {"output.path": str(output), "synthetic.lines": 40_000,
              "output.publishing": POINTER, **overrides}
    return load_config(env="test", overrides=values, environ={})


def test_a_pointer_run_killed_mid_write_leaves_the_previous_outputs_and_no_debris(spark, tmp_path):
    output = tmp_path / "out"
    run(spark, _config(output), run_date=dt.date(2011, 12, 9))
    pointer = (output / POINTERS / f"run_date={DATE}.json").read_text()
    live = json.loads(pointer)["run_id"]
    published = {p: _digest(p) for p in (output / RUN_FOLDERS / f"run_date={DATE}" / live, output / "models")}
    process = subprocess.Popen(
        [sys.executable, "-m", "insiders_spark.cli", "run", "--env", "test", "--output", str(output),
         "--synthetic-lines", "150000", "--run-date", DATE],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        env={**os.environ, "INSIDERS_SPARK__OUTPUT__PUBLISHING": POINTER},
        start_new_session=True,
    )
    runs = output / RUN_FOLDERS / f"run_date={DATE}"
    deadline = time.monotonic() + 240
    try:
        support.kill_once_writing(  # once the new run has written some of its outputs
            process,
            lambda: any((folder / "quarantine").exists() for folder in runs.iterdir() if folder.name != live),
            deadline=deadline,
        )
    finally:
        if process.poll() is None:
            os.killpg(process.pid, signal.SIGKILL)
    assert process.returncode == -signal.SIGKILL
    assert (output / POINTERS / f"run_date={DATE}.json").read_text() == pointer  # the commit never happened
    assert {p: _digest(p) for p in published} == published
    assert read_partition(spark, str(output), "segments", DATE).count() > 0  # readable as before
    assert json.loads((output / LOCK).read_text())["pid"] == process.pid  # the killed run's lock is left
    (dead,) = [p.name for p in runs.iterdir() if p.name != live]
    assert (output / RUN_FOLDERS / STATE / f"{dead}.json").exists()  # it said it was open before writing
    result = run(spark, _config(output), run_date=dt.date(2011, 12, 10))  # the next run takes over and cleans up
    assert not (runs / dead).exists() and not (output / RUN_FOLDERS / STATE).exists()
    assert result.metrics["churn"]["previous_run_date"] == DATE  # read through the pointer
    assert sorted(p.name for p in output.iterdir()) == [POINTERS, RUN_FOLDERS, "models"]
    versions = sorted(p.name for p in (output / "models").iterdir())
    assert len(versions) == 3 and "CURRENT" in versions  # the killed run's model version is gone with it


def _digest(folder: Path) -> dict[str, bytes]:
    return {str(p.relative_to(folder)): p.read_bytes() for p in sorted(folder.rglob("*")) if p.is_file()}


@pytest.mark.parametrize("stored", [True, False])
def test_a_pointer_put_whose_answer_is_lost_is_judged_by_what_the_store_holds(spark, tmp_path, monkeypatch, stored):
    """An object store may store a PUT and still fail the request (a timeout on the way back): the
    run then asks for the pointer, and is published if it holds its run id, failed if not."""
    output = tmp_path / "out"
    first = open_run_outputs(spark, str(output), DATE, "run-one", POINTER)
    first.write_table(spark.createDataFrame([(1, "old")], "id long, v string"), "segments")
    first.write_file("runs", "metrics.json", "{}")
    first.commit(last="runs")
    second = open_run_outputs(spark, str(output), DATE, "run-two", POINTER)
    second.write_table(spark.createDataFrame([(2, "new")], "id long, v string"), "segments")
    second.write_file("runs", "metrics.json", '{"new": true}')
    second.write_path("models/CURRENT", "v2\n")
    real = filesystem.write_bytes

    def lost_answer(spark_, path, data):
        if path.endswith(f"{POINTERS}/run_date={DATE}.json"):
            if stored:
                real(spark_, path, data)
            raise OSError("connection reset by peer")
        return real(spark_, path, data)

    monkeypatch.setattr(filesystem, "write_bytes", lost_answer)
    if stored:
        second.commit(last="runs")
    else:
        with pytest.raises(OSError, match="connection reset"):
            second.commit(last="runs")
        assert second.fail() == f"{output}/{RUN_FOLDERS}/run_date={DATE}/run-two"
    monkeypatch.setattr(filesystem, "write_bytes", real)
    expected = [{"id": 2, "v": "new"}] if stored else [{"id": 1, "v": "old"}]
    assert _rows(partition_path(str(output), "segments", DATE)) == expected
    assert (output / "models" / "CURRENT").exists() == stored
    assert recover_interrupted_commits(spark, str(output), retention_days=0) == []
    assert _rows(partition_path(str(output), "segments", DATE)) == expected  # the recovery agrees
    assert not (output / RUN_FOLDERS / STATE).exists()
