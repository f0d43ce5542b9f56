"""``insiders-spark models list|use``: the persisted models of an output as an operator sees them,
and a rollback. The commands run in one fresh process (each one starts and stops its own
session), on a copy of the nightly runs' output, which holds two model versions: a background job
started as soon as the nightly runs are done (tests/background.py)."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from tests import background

pytestmark = pytest.mark.spark

# Each command through insiders_spark.cli.main, its status, stdout and stderr recorded; between
# two of them the lock of a run on another machine appears. Last, a session started as a notebook
# starts one, then `models list`, then whether that session still works.
SCRIPT = """
import contextlib, io, json, sys
from insiders_spark.cli import main

output, lock = sys.argv[1], sys.argv[2]
results = []
for step in json.loads(sys.argv[3]):
    if step == "lock":
        with open(lock, "w") as handle:
            holder = {"token": "t", "purpose": "insiders-spark run (score)", "host": "another-machine", "pid": 1}
            json.dump(holder, handle)
        continue
    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        status = main([*step, "--output", output, "--env", "test"])
    results.append({"status": status, "stdout": out.getvalue(), "stderr": err.getvalue()})

from insiders_spark.core.config import load_config
from insiders_spark.spark.session import build_spark_session

notebook = build_spark_session("a notebook", load_config(env="test").spark)
with contextlib.redirect_stdout(io.StringIO()):
    main(["models", "list", "--output", output, "--env", "test"])
try:
    results.append({"notebook_session": notebook.range(3).count() == 3})
except Exception as error:
    results.append({"notebook_session": f"{type(error).__name__}: {str(error).splitlines()[0]}"})
print(json.dumps(results))
"""


@background.job("models command", wanted=background.in_module(__name__), after="nightly")
def _run_the_commands(folder: Path, nightly):
    output = folder / "out"
    shutil.copytree(nightly.output, output)
    first = nightly.manifests["train"]["model_version"]
    second = nightly.manifests["retrain"]["model_version"]
    steps = [["models", "list"], ["models", "use", first], ["models", "use", "no-such-version"], ["models", "use"],
             "lock", ["models", "use", second], ["models", "list"]]  # fmt: skip
    done = subprocess.run(
        [sys.executable, "-c", SCRIPT, str(output), str(output / "_RUNNING.json"), json.dumps(steps)],
        capture_output=True, text=True, timeout=600,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr[-4000:]
    return json.loads(done.stdout.strip().splitlines()[-1]), first, second


@pytest.fixture(scope="module")
def commands(nightly):
    """Started in the background when the nightly runs were done (tests/background.py)."""
    return background.result("models command")


def test_models_are_listed_the_current_one_marked(commands):
    results, first, second = commands
    listed = results[0]
    assert listed["status"] == 0, listed["stderr"]
    lines = listed["stdout"].splitlines()
    assert [line[:2] for line in lines] == ["  ", "* "]  # oldest first; the retrained model is current
    assert lines[0].startswith(f"  {first}  trained as of 2011-09-09  run 2011-09-09  config ")
    assert lines[1].startswith(f"* {second}  trained as of 2011-11-09  run 2011-11-09  config ")


def test_a_rollback_makes_an_older_model_current(commands):
    results, first, _ = commands
    assert (results[1]["status"], results[1]["stdout"].strip()) == (0, f"current model: {first}")
    assert [line[:2] for line in results[5]["stdout"].splitlines()] == ["* ", "  "]  # after the refused switch


def test_an_unknown_version_and_a_missing_one_are_refused(commands):
    results, first, second = commands
    unknown, missing = results[2], results[3]
    assert unknown["status"] == 1
    assert (
        "model version 'no-such-version' not found" in unknown["stderr"]
        and f"known: {first}, {second}" in unknown["stderr"]
    )
    assert "Traceback" not in unknown["stderr"]
    assert missing["status"] == 2 and "'models use' needs a VERSION" in missing["stderr"]


def test_a_switch_waits_for_the_run_holding_the_output(commands):
    results, _, _ = commands
    busy = results[4]
    assert busy["status"] == 1
    assert "the output is in use by insiders-spark run (score) on another-machine (pid 1)" in busy["stderr"]
    assert "Traceback" not in busy["stderr"]


def test_the_models_command_leaves_a_running_session_running(commands):
    results, _, _ = commands
    assert results[-1] == {"notebook_session": True}
