"""Stage timing and the stages that run beside the main line (``BackgroundStages``)."""

import logging
import threading
import time

import pytest

from insiders_spark.core.progress import BackgroundStages, StageTimer


def _fail(message):
    raise ValueError(message)


def test_background_stages_run_in_order_on_a_second_thread_and_report_the_first_failure():
    timer = StageTimer(logging.getLogger("test"))
    seen = []
    release = threading.Event()

    def first():
        assert release.wait(30)
        seen.append(("first", threading.current_thread().name))

    with BackgroundStages(timer, enabled=True, prepare_thread=lambda: seen.append("prepared")) as stages:
        stages.run("first", first)
        stages.run("second", lambda: _fail("the second stage broke"))
        stages.run("third", lambda: seen.append("third"))
        seen.append("the caller went on")  # while the first stage still waits for it
        release.set()
        with pytest.raises(ValueError, match="the second stage broke"):
            stages.wait()
    assert seen[0] == "prepared"
    assert seen[1] == "the caller went on"
    assert seen[2][0] == "first" and seen[2][1].startswith("insiders-spark-stage")
    assert seen[3] == "third"  # a failed stage does not stop the next one
    assert set(timer.durations) == {"first", "third"}  # the failed stage has no duration


def test_leaving_the_block_waits_for_a_running_stage_even_when_the_caller_failed():
    """The run moves its staged outputs when it fails: no stage may still be writing then."""
    finished = []

    def slow():
        time.sleep(0.3)
        finished.append("slow")

    with (
        pytest.raises(RuntimeError, match="the main line failed"),
        BackgroundStages(StageTimer(logging.getLogger("test")), enabled=True) as stages,
    ):
        stages.run("slow", slow)
        raise RuntimeError("the main line failed")
    assert finished == ["slow"]


def test_not_enabled_each_stage_runs_at_once_on_the_caller_thread():
    timer = StageTimer(logging.getLogger("test"))
    with BackgroundStages(timer, enabled=False) as stages:
        assert stages.run("here", lambda: threading.current_thread().name).result() == threading.current_thread().name
        with pytest.raises(ValueError, match="at once"):
            stages.run("broken", lambda: _fail("raised at once"))
        stages.wait()
    assert set(timer.durations) == {"here"}
