"""A run's outputs, staged and published together: a commit cut short is rolled back (at once, or
by the next run), a finished one is kept, a small file is swapped in whole, and one output takes
one run at a time (``storage.outputs``, ``storage.filesystem``, ``storage.lock``)."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
from pathlib import Path

import pytest

from insiders_spark.core.errors import OutputInUseError
from insiders_spark.storage import filesystem
from insiders_spark.storage.lock import LOCK, output_lock
from insiders_spark.storage.outputs import JOURNAL, RunOutputs, recover_interrupted_commits
from tests.support import tree_digest


def _rows(spark, path: Path):
    return sorted(spark.read.parquet(str(path)).collect())


def _published_then_staged(spark, tmp_path) -> RunOutputs:
    """Run one publishes segments, profiles and runs for 2011-12-09; run two stages its own."""
    first = RunOutputs(spark, str(tmp_path), "2011-12-09", "run-one")
    first.write_table(spark.createDataFrame([(1, "old")], "id long, v string"), "segments")
    first.write_table(spark.createDataFrame([(1, "old")], "id long, v string"), "profiles")
    first.write_file("runs", "metrics.json", "{}")
    first.commit(last="runs")
    second = RunOutputs(spark, str(tmp_path), "2011-12-09", "run-two")
    second.write_table(spark.createDataFrame([(2, "new")], "id long, v string"), "segments")
    second.write_table(spark.createDataFrame([(2, "new")], "id long, v string"), "profiles")
    second.write_file("runs", "metrics.json", '{"new": true}')
    return second


def test_a_commit_that_finished_before_the_kill_is_kept_by_the_next_run(spark, tmp_path, monkeypatch):
    """Killed after its _SUCCESS marker but before it removed its journal: the night's output was
    published whole, and the next run must clean up after it, not roll it back."""
    output = str(tmp_path)
    second = _published_then_staged(spark, tmp_path)
    real_delete = filesystem.delete_path

    def killed_at_cleanup(spark_, path):
        if path.endswith(JOURNAL):
            raise KeyboardInterrupt("killed")
        real_delete(spark_, path)

    monkeypatch.setattr(filesystem, "delete_path", killed_at_cleanup)
    with pytest.raises(KeyboardInterrupt):
        second.commit(last="runs")
    monkeypatch.setattr(filesystem, "delete_path", real_delete)
    published = {t: _rows(spark, tmp_path / t) for t in ("segments", "profiles")}
    assert [(r.id, r.v) for r in published["segments"]] == [(r.id, r.v) for r in published["profiles"]] == [(2, "new")]
    assert (tmp_path / "_staging" / "run-two" / JOURNAL).exists()
    assert recover_interrupted_commits(spark, output) == ["run-two"]
    assert {t: _rows(spark, tmp_path / t) for t in published} == published  # run two's, still live
    assert json.loads((tmp_path / "runs" / "run_date=2011-12-09" / "metrics.json").read_text()) == {"new": True}
    assert (tmp_path / "runs" / "run_date=2011-12-09" / "_SUCCESS").exists()
    assert not (tmp_path / "_staging" / "run-two").exists()


def test_an_interrupted_commit_is_rolled_back_by_the_next_run(spark, tmp_path, monkeypatch):
    output = str(tmp_path)
    second = _published_then_staged(spark, tmp_path)
    before = {t: _rows(spark, tmp_path / t) for t in ("segments", "profiles")}  # run one's, still live
    real_rename, calls = filesystem.rename, []

    def crash_after_three(source, target):  # the process dies in the middle of publishing
        calls.append(source)
        if len(calls) > 3:
            raise KeyboardInterrupt("killed")
        real_rename(spark, source, target)

    monkeypatch.setattr(filesystem, "rename", lambda _spark, s, t: crash_after_three(s, t))
    with pytest.raises(KeyboardInterrupt):
        second.commit(last="runs")
    monkeypatch.setattr(filesystem, "rename", real_rename)
    assert _rows(spark, tmp_path / "segments") != before["segments"]  # half published...

    assert recover_interrupted_commits(spark, output) == ["run-two"]
    assert {t: _rows(spark, tmp_path / t) for t in ("segments", "profiles")} == before  # ...and rolled back
    assert (tmp_path / "runs" / "run_date=2011-12-09" / "metrics.json").read_text() == "{}"


def test_a_commit_that_fails_part_way_is_rolled_back_at_once(spark, tmp_path, monkeypatch):
    output = str(tmp_path)
    second = _published_then_staged(spark, tmp_path)
    published = {t: tree_digest(tmp_path / t) for t in ("segments", "profiles", "runs")}
    real_rename, calls = filesystem.rename, []

    def refuse_the_fourth(spark_, source, target):  # e.g. an object store's copy failing mid-commit
        calls.append(source)
        if len(calls) == 4:
            raise OSError(f"could not move {source} to {target}")
        real_rename(spark_, source, target)

    monkeypatch.setattr(filesystem, "rename", refuse_the_fourth)
    with pytest.raises(OSError, match="could not move"):
        second.commit(last="runs")
    monkeypatch.setattr(filesystem, "rename", real_rename)
    assert len(calls) > 4  # the roll-back moved things back
    assert {t: tree_digest(tmp_path / t) for t in published} == published  # as it was, with no later run
    assert not (tmp_path / "_staging" / "run-two" / JOURNAL).exists()
    kept = Path(second.fail().removeprefix("file:"))  # the staged outputs go aside for inspection, whole
    assert _rows(spark, kept / "segments") == _rows(spark, kept / "profiles") != _rows(spark, tmp_path / "segments")
    assert json.loads((kept / "runs" / "run_date=2011-12-09" / "metrics.json").read_text()) == {"new": True}
    assert recover_interrupted_commits(spark, output) == []


def test_a_model_switch_killed_between_its_moves_still_names_a_model(spark, tmp_path, monkeypatch):
    path = str(tmp_path / "CURRENT")
    filesystem.replace_text(spark, path, "v1\n")
    real_rename = filesystem.rename

    def die_on_the_second(spark_, source, target):
        if source.endswith(".tmp"):
            raise KeyboardInterrupt("killed")  # after the old file moved aside, before the new one moved in
        real_rename(spark_, source, target)

    monkeypatch.setattr(filesystem, "rename", die_on_the_second)
    with pytest.raises(KeyboardInterrupt):
        filesystem.replace_text(spark, path, "v2\n")
    monkeypatch.setattr(filesystem, "rename", real_rename)
    assert not (tmp_path / "CURRENT").exists() and filesystem.read_replaced_text(spark, path) == "v1\n"
    filesystem.replace_text(spark, path, "v2\n")
    assert filesystem.read_replaced_text(spark, path) == "v2\n" and sorted(
        p.name for p in tmp_path.iterdir() if not p.name.startswith(".")
    ) == ["CURRENT"]


def test_a_lock_left_by_a_dead_process_here_is_taken_over_but_not_one_from_elsewhere(spark, tmp_path):
    output = tmp_path / "out"
    output.mkdir()
    gone = subprocess.Popen([sys.executable, "-c", "pass"])
    gone.wait()
    lock = output / LOCK
    here = {"token": "t", "purpose": "insiders-spark run (score)", "host": socket.gethostname(), "pid": gone.pid}
    lock.write_text(json.dumps({**here, "host": "another-machine"}))
    with pytest.raises(OutputInUseError, match="another-machine"), output_lock(spark, str(output), "test"):
        pass
    assert json.loads(lock.read_text())["host"] == "another-machine"  # not ours to take
    lock.write_text(json.dumps(here))
    with output_lock(spark, str(output), "test") as mine:
        assert json.loads(lock.read_text())["token"] == mine["token"] != "t"
        with (
            pytest.raises(OutputInUseError, match=rf"test on .* \(pid {os.getpid()}\)"),
            output_lock(spark, str(output), "a second holder"),
        ):
            pass
    assert not lock.exists()
