"""The command line as a user runs it: exit statuses and one-paragraph messages."""

import json
import os
import re
import subprocess
import sys


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


def test_the_config_command_prints_the_merged_profile():
    result = _run("config", "--env", "test", env={"INSIDERS_SPARK__CLUSTERING__K": "7"})
    assert result.returncode == 0
    merged = json.loads(result.stdout)
    assert merged["job"]["log_level"] == "WARNING"  # test.toml over base.toml's INFO
    assert merged["cleaning"]["min_unit_price"] == 0.04  # base.toml, which test.toml leaves alone
    assert merged["clustering"]["k"] == 7  # the environment over both
    assert merged["spark"]["spark.sql.shuffle.partitions"] == "2"


def test_the_spark_submit_entry_point_takes_the_same_options_as_run():
    job = os.path.join(os.path.dirname(__file__), "..", "jobs", "segment_customers.py")
    submitted = subprocess.run([sys.executable, job, "--help"], capture_output=True, text=True, timeout=120)
    direct = _run("run", "--help")
    assert submitted.returncode == direct.returncode == 0

    def options(text):
        return set(re.findall(r"(?<![\w-])--[a-z][a-z-]+", text))

    assert "--input" in options(submitted.stdout)
    assert options(submitted.stdout) == options(direct.stdout)
