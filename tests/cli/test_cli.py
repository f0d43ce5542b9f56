"""The command line as a user runs it: options, exit statuses and one-paragraph messages.

Most commands run through ``insiders_spark.cli.main`` in this process (the suite's session is
reused). A run seen as a user sees it, the JVM's own output included, is in tests/ops/test_launch.py
(a Spark-side failure, from a JVM started with a class archive).
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys

import pytest

from insiders_spark.cli import build_parser, overrides_from
from tests import support

JOB = support.PROJECT_ROOT / "jobs" / "segment_customers.py"


def _subprocess(*args: str, env=None, timeout=300) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, *args], capture_output=True, text=True, env={**os.environ, **(env or {})}, timeout=timeout
    )


def _options(text: str) -> set[str]:
    return set(re.findall(r"(?<![\w-])--[a-z][a-z-]*", text))


def test_help_lists_the_run_options():
    result = _subprocess("-m", "insiders_spark.cli", "run", "--help")
    assert result.returncode == 0
    assert _options(result.stdout) >= {
        "--input", "--format", "--timestamp-format", "--encoding", "--output", "--as-of", "--run-date", "--mode",
        "--model-version", "--k", "--seed", "--stability", "--no-stability", "--backtest-horizon",
        "--backtest-cutoff", "--synthetic-lines", "--env", "--conf-dir", "--log-level", "--verbose",
        "--table", "--columns", "--dataset", "--customer-ids", "--catalog-database", "--mlflow-uri", "--log-format",
    }  # fmt: skip
    assert "--launched-by-spark-submit" not in result.stdout  # internal


def test_the_spark_submit_entry_point_takes_the_same_options_as_run():
    submitted = _subprocess(str(JOB), "--help", timeout=120)
    direct = support.run_cli(["run", "--help"])
    assert submitted.returncode == direct.status == 0
    assert "--input" in _options(submitted.stdout)
    assert _options(submitted.stdout) == _options(direct.stdout)


def test_every_run_flag_becomes_its_configuration_key():
    args = build_parser().parse_args(
        ["run", "--input", "drops/", "--format", "csv", "--timestamp-format", "M/d/yyyy H:mm",
         "--encoding", "ISO-8859-1", "--output", "out", "--k", "7", "--no-stability", "--backtest-horizon", "90",
         "--backtest-cutoff", "2011-09-09", "--seed", "3", "--log-level", "DEBUG", "--synthetic-lines", "1000",
         "--as-of", "2011-12-09", "--run-date", "2011-12-10", "--mode", "score", "--model-version", "v1",
         "--columns", "customer_id=client, invoice_date=ordered_at", "--dataset", "none", "--customer-ids", "text",
         "--catalog-database", "shop", "--log-format", "json", "--mlflow-uri", "file:/tmp/mlruns"]
    )  # fmt: skip
    assert overrides_from(args) == {
        "input.path": "drops/",
        "input.table": None,  # --table and --input exclude each other
        "input.format": "csv",
        "input.columns": {"customer_id": "client", "invoice_date": "ordered_at"},
        "input.dataset": "none",
        "input.customer_ids": "text",
        "input.timestamp_format": "M/d/yyyy H:mm",
        "input.encoding": "ISO-8859-1",
        "output.path": "out",
        "output.catalog_database": "shop",
        "clustering.k": 7,
        "clustering.select_k": False,
        "quality.stability": False,
        "backtest.horizon_days": 90,
        "backtest.cutoff": "2011-09-09",
        "job.seed": 3,
        "job.log_level": "DEBUG",
        "job.log_format": "json",
        "synthetic.lines": 1000,
        "tracking.mlflow_uri": "file:/tmp/mlruns",
    }
    table = overrides_from(build_parser().parse_args(["run", "--table", "shop.orders"]))
    assert (table["input.table"], table["input.path"]) == ("shop.orders", None)
    # dates, the mode and the model version are the run's arguments, not settings
    assert (args.as_of.isoformat(), args.run_date.isoformat(), args.mode, args.model_version) == (
        "2011-12-09", "2011-12-10", "score", "v1",
    )  # fmt: skip
    auto = overrides_from(build_parser().parse_args(["run", "--k", "auto"]))
    assert (auto["clustering.k"], auto["clustering.select_k"]) == (None, True)
    unset = overrides_from(build_parser().parse_args(["run"]))
    assert set(unset.values()) == {None}  # an unset flag shadows nothing in the profiles


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["run", "--as-of", "09/12/2011"], "expected a date as YYYY-MM-DD, got '09/12/2011'"),
        (["run", "--k", "nine"], "expected a number of clusters or 'auto', got 'nine'"),
        (["run", "--mode", "retrain"], "invalid choice: 'retrain'"),
        (["run", "--format", "xlsx"], "invalid choice: 'xlsx'"),
        (["run", "--input", "a.csv", "--table", "db.t"], "argument --table: not allowed with argument --input"),
        (["run", "--columns", "customer_id"], "expected canonical=source pairs separated by commas"),
        (["run", "--columns", "customer_id=a,customer_id=b"], "customer_id is mapped twice"),
        (["run", "--customer-ids", "uuid"], "invalid choice: 'uuid'"),
        (["models", "undo"], "invalid choice: 'undo'"),
    ],
)
def test_a_wrong_command_line_is_a_usage_error(args, message):
    done = support.run_cli(args)
    assert done.status == 2 and message in done.stderr


def test_configuration_errors_exit_2_naming_the_key(tmp_path):
    done = support.run_cli(["run", "--output", str(tmp_path)], environ={"INSIDERS_SPARK__CLUSTERING__KK": "3"})
    assert done.status == 2
    assert done.stderr.startswith("insiders-spark: configuration error: environment: unknown key clustering.kk")
    done = support.run_cli(["run", "--env", "nosuchprofile"])
    assert done.status == 2 and "nosuchprofile.toml" in done.stderr
    done = support.run_cli(["run", "--env", "test", "--seed", "1", "--k", "1"])
    assert done.status == 2 and "clustering.k = 1: at least 2 clusters are needed" in done.stderr
    assert not list(tmp_path.iterdir())  # nothing started, nothing written


def test_the_config_command_prints_the_merged_profile():
    done = support.run_cli(["config", "--env", "test"], environ={"INSIDERS_SPARK__CLUSTERING__K": "7"})
    assert done.status == 0
    merged = json.loads(done.stdout)
    assert merged["job"]["log_level"] == "WARNING"  # test.toml over base.toml's INFO
    assert merged["cleaning"]["min_unit_price"] == 0.0  # base.toml names no store's rules; test.toml none either
    assert merged["clustering"]["k"] == 7  # the environment over both
    assert merged["spark"]["spark.sql.shuffle.partitions"] == "2"


def test_models_use_needs_a_version():
    done = support.run_cli(["models", "use", "--env", "test"])
    assert done.status == 2 and "'models use' needs a VERSION" in done.stderr


@pytest.mark.parametrize(
    ("make", "message"),
    [
        ("missing", "input {path!r} does not exist (no file or folder matches it)"),
        ("no column", "{path}: no customer_id, no invoice_date, no unit_price or line_amount column; map the input's"),
        ("header only", "no customer has a kept purchase: 0 lines read"),
        ("broken parquet", "log.parquet: not a readable parquet file"),
    ],
)
def test_a_bad_input_stops_the_run_with_one_paragraph_and_no_output(spark, tmp_path, make, message):
    path = {
        "missing": tmp_path / "no-such-drop",
        "no column": support.write_csv(
            tmp_path / "drop.csv",
            ["1,A,B,1,2011-01-01 10:00:00,1.0,UK"],
            header=support.HEADER.replace(",CustomerID", ""),
        ),
        "header only": support.write_csv(tmp_path / "header.csv", []),
        "broken parquet": tmp_path / "log.parquet",
    }[make]
    if make == "broken parquet":
        path.write_bytes(b"PAR1 this is not really parquet")
    done = support.run_cli(["run", "--env", "test", "--input", str(path), "--output", str(tmp_path / "out")])
    assert done.status == 1
    (error,) = [line for line in done.stderr.splitlines() if line.startswith("insiders-spark: error: ")]
    assert message.format(path=str(path)) in error  # one line says it all
    assert "Traceback" not in done.stderr and "at org.apache" not in done.stderr
    support.assert_nothing_published(tmp_path / "out")
