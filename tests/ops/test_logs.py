"""The logs a person (or a log shipper) reads: task failures and retries stay visible, the job
explains a failure once, and ``--log-format json`` makes the driver's Python log and Spark's JVM log
JSON lines of one shape.

The runs are separate processes on a tiny input whose second file's header differs from the
first's: Spark finds that in a task, so the task fails and the job stops with its own message.
"""

from __future__ import annotations

import json
import logging
import os
import subprocess
import sys
from pathlib import Path

import pytest

from insiders_spark.core.progress import JVM_LOGGING, JsonLogFormatter

ROOT = Path(__file__).resolve().parents[2]
HEADER = "InvoiceNo,StockCode,Description,Quantity,InvoiceDate,UnitPrice,CustomerID,Country"
LINE = "536365,85123A,WHITE MUG,6,2011-03-01 10:00:00,2.55,17850.0,United Kingdom"
JSON_KEYS = ("ts", "level", "msg", "logger")
JVM_NOTICES = ("WARNING: Using incubator modules",)  # printed by the java launcher itself, not a logger


def _properties(path: Path) -> dict[str, str]:
    entries = {}
    for line in path.read_text().splitlines():
        if line.strip() and not line.lstrip().startswith("#"):
            key, _, value = line.partition("=")
            entries[key.strip()] = value.strip()
    return entries


def test_both_log4j_files_set_the_same_loggers_and_keep_task_failures_visible():
    text, as_json = (_properties(ROOT / "conf" / JVM_LOGGING[f].file) for f in ("text", "json"))
    loggers = {k: v for k, v in text.items() if k.startswith(("logger.", "rootLogger."))}
    assert loggers == {k: v for k, v in as_json.items() if k.startswith(("logger.", "rootLogger."))}
    assert text["logger.executor.level"] == "error" and text["logger.tasksetmanager.level"] == "warn"
    assert "fatal" not in {text["logger.executor.level"], text["logger.tasksetmanager.level"]}
    assert as_json["appender.console.layout.type"] == as_json["appender.tasks.layout.type"] == "JsonTemplateLayout"


def test_a_python_record_has_the_shape_of_sparks_structured_log():
    try:
        raise ValueError("the cause")
    except ValueError:
        record = logging.LogRecord("insiders_spark.x", logging.WARNING, __file__, 1, "%s lines", ("3",), sys.exc_info())
    entry = json.loads(JsonLogFormatter().format(record))
    assert list(entry) == ["ts", "level", "msg", "context", "exception", "logger"]  # Spark's order
    assert entry["level"] == "WARN" and entry["msg"] == "3 lines" and entry["logger"] == "insiders_spark.x"
    assert entry["ts"].endswith("Z") and len(entry["ts"]) == len("2011-12-09T10:00:00.000Z")
    assert entry["exception"]["class"] == "builtins.ValueError" and entry["exception"]["msg"] == "the cause"
    frame = entry["exception"]["stacktrace"][-1]
    assert frame["method"] == test_a_python_record_has_the_shape_of_sparks_structured_log.__name__


def _run_failing_job(tmp_path: Path, *options: str) -> subprocess.CompletedProcess:
    drops = tmp_path / "drops"
    drops.mkdir()
    (drops / "2011-03-01.csv").write_text(f"{HEADER}\n{LINE}\n")
    (drops / "2011-03-02.csv").write_text(f"{HEADER.replace('Country', 'Land')}\n{LINE}\n")
    command = [sys.executable, "-m", "insiders_spark.cli", "run", "--env", "test", "--log-level", "INFO",
               "--input", str(drops), "--output", str(tmp_path / "out"), *options]
    env = {k: v for k, v in os.environ.items() if not k.startswith("INSIDERS_SPARK__")}
    return subprocess.run(command, capture_output=True, text=True, timeout=600, env=env, cwd=tmp_path)


@pytest.mark.spark
def test_a_failed_task_is_one_line_each_and_the_job_explains_it_once(tmp_path):
    result = _run_failing_job(tmp_path)
    assert result.returncode == 1
    err = result.stderr
    lost = [line for line in err.splitlines() if "WARN TaskSetManager: Lost task" in line]
    assert lost and "2011-03-02.csv" in lost[0]  # which task, on which executor, and why (its first line)
    assert any("ERROR Executor: Exception in task" in line for line in err.splitlines())
    assert any("ERROR TaskSetManager: Task" in line and "aborting job" in line for line in err.splitlines())
    assert "at org.apache" not in err and "Traceback" not in err  # no stack trace on the driver's console
    assert err.count("insiders-spark: error:") == 1
    assert "expected column 'Country' but found 'Land'" in err


@pytest.mark.spark
def test_json_logs_are_json_lines_from_python_and_from_the_jvm(tmp_path):
    result = _run_failing_job(tmp_path, "--log-format", "json")
    assert result.returncode == 1
    entries = []
    for line in result.stderr.splitlines():
        if line.strip() and not line.startswith(JVM_NOTICES):
            entries.append(json.loads(line))  # every other line parses
    assert entries and all(all(key in entry for key in JSON_KEYS) for entry in entries)
    python = [e for e in entries if e["logger"].startswith("insiders_spark")]
    jvm = [e for e in entries if e["logger"] in ("Executor", "TaskSetManager")]
    assert any(e["msg"] == "stage read and aggregate: started" for e in python)
    errors = [e for e in python if e["msg"].startswith("insiders-spark: error:")]
    assert len(errors) == 1 and errors[0]["level"] == "ERROR"  # the job's one message, as a JSON line too
    failed_task = next(e for e in jvm if e["logger"] == "Executor")
    assert failed_task["level"] == "ERROR" and failed_task["exception"]["class"].startswith("org.apache.spark")
    assert "task_name" in failed_task["context"]  # Spark's structured logging is on: its keys are fields
    assert any(e["level"] == "WARN" and e["msg"].startswith("Lost task") for e in jvm)
