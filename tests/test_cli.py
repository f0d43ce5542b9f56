"""The command line as a user runs it: exit statuses and one-paragraph messages."""

import os
import subprocess
import sys

import pytest


def _run(*args, env=None):
    environment = {**os.environ, **(env or {})}
    return subprocess.run(
        [sys.executable, "-m", "insiders_spark.cli", *args],
        capture_output=True,
        text=True,
        env=environment,
        timeout=300,
    )


def test_help_lists_the_run_options():
    result = _run("run", "--help")
    assert result.returncode == 0
    for option in ("--input", "--output", "--as-of", "--run-date", "--env", "--k", "--seed", "--timestamp-format"):
        assert option in result.stdout


def test_configuration_errors_exit_2_naming_the_key(tmp_path):
    result = _run("run", "--output", str(tmp_path), env={"INSIDERS_SPARK__CLUSTERING__KK": "3"})
    assert result.returncode == 2
    assert "unknown key clustering.kk" in result.stderr
    result = _run("run", "--env", "nosuchprofile")
    assert result.returncode == 2 and "nosuchprofile.toml" in result.stderr


def test_bad_dates_are_usage_errors():
    result = _run("run", "--as-of", "09/12/2011")
    assert result.returncode == 2 and "YYYY-MM-DD" in result.stderr


def test_a_missing_input_stops_with_a_message_not_a_stack_trace(tmp_path):
    missing = tmp_path / "no-such-drop"
    result = _run("run", "--env", "test", "--input", str(missing), "--output", str(tmp_path / "out"))
    assert result.returncode == 1
    assert f"input {str(missing)!r} does not exist" in result.stderr
    assert "Traceback" not in result.stderr and "at org.apache" not in result.stderr
    assert not (tmp_path / "out").exists()


@pytest.mark.parametrize("entry", ["cli", "job"])
def test_config_command_and_job_entry_point_agree(entry, tmp_path):
    if entry == "cli":
        result = _run("config", "--env", "test")
        assert result.returncode == 0 and '"k": 9' in result.stdout
    else:
        job = os.path.join(os.path.dirname(__file__), "..", "jobs", "segment_customers.py")
        result = subprocess.run([sys.executable, job, "--help"], capture_output=True, text=True, timeout=120)
        assert result.returncode == 0 and "--input" in result.stdout
