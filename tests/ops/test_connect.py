"""The job over Spark Connect gives what a local run gives, on the same input.

A Spark Connect server (the pyspark wheel's jar, local[2] and the test profile's settings) is started
for this module, bound to 127.0.0.1 on a free port, and stopped by its pid. The job runs against it
through the command line (``SPARK_REMOTE``), on the real log (the synthetic one without ../shared)
with a backtest, and must give what the suite's classic run of the same log gives (``real_log_run``
or ``connect_twin_run``, tests/jobs.py): every customer's cluster and Insider flag, the segments,
profiles, rules and quarantine, and the manifest's figures. The server and its runs are a
background job (tests/background.py): they run in processes of their own beside the other tests.

The error checks need no server: an endpoint nothing listens on, and a bad URL.
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import socket
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import pandas as pd
import pytest

from tests import background
from tests.conftest import PROJECT_ROOT, REAL_LOG_PARQUET
from tests.jobs import CONNECT_LINES as LINES
from tests.jobs import HORIZON_DAYS

SERVER_CLASS = "org.apache.spark.sql.connect.service.SparkConnectServer"
START_SECONDS = 180  # a loaded two-core machine takes a minute to start a JVM with Connect's service
# the manifest's figures: what the run measured, not where or when it ran
FIGURES = (
    "run_date", "as_of", "as_of_source", "rows", "customers", "features", "embedding", "clustering",
    "insiders", "clusters", "quality", "mode", "churn",
)  # fmt: skip
TABLES = ("segments", "profiles", "rules", "quarantine", "backtest")


def _connect_client_missing() -> str | None:
    try:
        import google.rpc  # noqa: F401
        import grpc  # noqa: F401
        import grpc_status  # noqa: F401
        import zstandard  # noqa: F401
    except ImportError as error:
        return f"the Spark Connect client needs the connect extra (pip install -e '.[connect]'): {error}"
    return None


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def _listening(port: int) -> bool:
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=1):
            return True
    except OSError:
        return False


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    return True


@contextlib.contextmanager
def connect_server(folder: Path, settings: dict):
    """``sc://127.0.0.1:PORT`` of a Connect server with the test profile's ``settings``, stopped by its
    pid at the end."""
    import pyspark

    missing = _connect_client_missing()
    if missing:
        pytest.skip(missing)
    home = Path(pyspark.__file__).parent
    if not list((home / "jars").glob("spark-connect_*.jar")):
        pytest.skip(f"no Spark Connect jar in {home / 'jars'}")
    port = _free_port()
    settings = {
        **settings,
        "spark.connect.grpc.binding.address": "127.0.0.1",
        "spark.connect.grpc.binding.port": str(port),
        "spark.sql.warehouse.dir": str(folder / "warehouse"),
    }
    master = settings.pop("spark.master")
    # what sbin/start-connect-server.sh --wait runs (the wheel leaves out the spark-daemon.sh it calls)
    command = [str(home / "bin" / "spark-submit"), "--class", SERVER_CLASS, "--name", "insiders-connect-tests"]
    command += ["--master", master, *[f"--conf={key}={value}" for key, value in settings.items()]]
    environ = {**os.environ, "SPARK_HOME": str(home), "PYSPARK_PYTHON": sys.executable, "SPARK_LOCAL_IP": "127.0.0.1"}
    log = folder / "server.log"
    with log.open("wb") as sink:
        server = subprocess.Popen(command, cwd=folder, env=environ, stdout=sink, stderr=subprocess.STDOUT)
    try:
        deadline = time.monotonic() + START_SECONDS
        while not _listening(port):
            if server.poll() is not None or time.monotonic() > deadline:
                tail = " | ".join(log.read_text(errors="replace").strip().splitlines()[-3:])
                pytest.skip(f"the Spark Connect server did not start (status {server.poll()}): {tail}")
            time.sleep(1)
        yield f"sc://127.0.0.1:{port}"
    finally:
        server.send_signal(signal.SIGTERM)  # its shutdown hook stops the service and the SparkContext
        try:
            server.wait(timeout=60)
        except subprocess.TimeoutExpired:
            server.kill()
            server.wait(timeout=30)
        assert not _pid_alive(server.pid), f"the Connect server (pid {server.pid}) is still running"
        assert not _listening(port), f"something still listens on {port}"


def run_cli(args: list[str], **environ: str) -> subprocess.CompletedProcess:
    """``insiders-spark ARGS`` in a process of its own (a Connect client cannot share this one's JVM)."""
    env = {**os.environ, "PYTHONPATH": str(PROJECT_ROOT), **environ}
    command = [sys.executable, "-m", "insiders_spark.cli", *args]
    return subprocess.run(command, capture_output=True, text=True, env=env, timeout=1800, cwd=PROJECT_ROOT)


def published(output: Path) -> dict:
    """The run's tables (pandas, rows in a fixed order) and its manifest."""
    [manifest_path] = output.glob("runs/run_date=*/manifest.json")
    folder = manifest_path.parent.name
    tables = {}
    for name in TABLES:
        if not (output / name / folder).exists():
            continue
        frame = pd.read_parquet(output / name / folder)
        order = frame.astype(str).agg("|".join, axis=1).argsort(kind="stable")  # every column: a total order
        tables[name] = frame.iloc[order].reset_index(drop=True)
    return {"tables": tables, "manifest": json.loads(manifest_path.read_text())}


def assert_same_outputs(local: dict, remote: dict) -> None:
    mine, theirs = local["tables"]["segments"], remote["tables"]["segments"]
    assert len(mine) == len(theirs) > 0
    joined = mine.merge(theirs, on="customer_id", how="outer", suffixes=("_local", "_connect"), indicator=True)
    assert (joined["_merge"] == "both").all(), "the two runs segmented different customers"
    for column in ("cluster", "is_insider", "segment", "leaf"):
        differ = joined[joined[f"{column}_local"] != joined[f"{column}_connect"]]
        assert differ.empty, f"{len(differ)} customers' {column} differ, e.g. {differ.head(3).to_dict('records')}"
    assert local["tables"].keys() == remote["tables"].keys()
    for name in local["tables"]:
        pd.testing.assert_frame_equal(local["tables"][name], remote["tables"][name], check_exact=False, rtol=1e-12)
    for key in FIGURES:
        assert local["manifest"].get(key) == remote["manifest"].get(key), key


def skip_while_storage_needs_the_jvm() -> None:
    """A Connect client cannot do the driver's file operations through a JVM it does not have."""
    from tests.spark.test_py4j_guard import package_internals

    on_the_jvm = sorted(name for name in package_internals() if name.startswith("storage/"))
    if on_the_jvm:
        pytest.skip(
            f"{', '.join(on_the_jvm)} still do the driver's file operations through the JVM (until the "
            "pyarrow.fs rewrite of storage/ lands): a run over Spark Connect cannot take the lock or publish"
        )


@dataclass(frozen=True)
class OverConnect:
    server: str  # the server's URL, dead by the time the tests read this
    remote: dict  # the run's published tables and manifest
    missing_module: str  # what connect_session said of a module the server cannot import


MISSING_MODULE_CHECK = """
import sys
from insiders_spark.spark.connect import SparkConnectError, connect_session
try:
    connect_session(sys.argv[1], {{}}, modules={modules!r})
except SparkConnectError as error:
    print(error)
"""


def _wants_the_server(item) -> bool:
    return background.in_module(__name__)(item) and bool({"over_connect"} & set(getattr(item, "fixturenames", ())))


@background.job("connect", wanted=_wants_the_server)
def _over_connect(folder: Path) -> OverConnect:
    """Start a server, run the job against it (the real log where ../shared has it, else the synthetic
    one, generated on the server's Python), ask it for a module it does not have, stop it."""
    skip_while_storage_needs_the_jvm()
    from insiders_spark.core.config import load_config

    args = ["--input", str(REAL_LOG_PARQUET)] if REAL_LOG_PARQUET.exists() else ["--synthetic-lines", str(LINES)]
    with connect_server(folder, load_config(env="test", environ={}).spark) as server:
        args += ["--backtest-horizon", str(HORIZON_DAYS)]
        done = run_cli(["run", "--env", "test", "--output", str(folder / "connect"), *args], SPARK_REMOTE=server)
        assert done.returncode == 0, done.stderr[-3000:]
        modules = ("insiders_spark.storage.synthetic", "no_such_module")
        check = subprocess.run(
            [sys.executable, "-c", MISSING_MODULE_CHECK.format(modules=modules), server], capture_output=True,
            text=True, timeout=600, cwd=PROJECT_ROOT, env={**os.environ, "PYTHONPATH": str(PROJECT_ROOT)},
        )  # fmt: skip
    return OverConnect(server, published(folder / "connect"), check.stdout)


@pytest.fixture(scope="module")
def over_connect() -> OverConnect:
    return background.result("connect")


@pytest.fixture(scope="module")
def both_runs(request, over_connect) -> tuple[dict, dict]:
    """The suite's classic run of the same log with the same backtest, and the run over Connect."""
    twin = request.getfixturevalue("real_log_run" if REAL_LOG_PARQUET.exists() else "connect_twin_run")
    return published(twin.output), over_connect.remote


@pytest.mark.spark
def test_a_run_over_spark_connect_publishes_what_a_local_run_does(both_runs):
    local, remote = both_runs
    assert_same_outputs(local, remote)
    assert local["manifest"]["backtest"] == remote["manifest"]["backtest"]
    assert remote["manifest"]["backtest"]["measured"] and "backtest" in remote["tables"]
    assert local["manifest"]["insiders"]["customers"] > 0


@pytest.mark.spark
def test_the_manifest_says_where_a_connect_run_ran(both_runs, over_connect):
    local, remote = both_runs
    where = remote["manifest"]["spark"]
    assert where["connect"] == over_connect.server and where["master"] == "local[2]" and where["executors"] is None
    assert local["manifest"]["spark"]["executors"]  # classic: from the status store
    assert remote["manifest"]["versions"]["java"] == local["manifest"]["versions"]["java"]


def test_a_server_without_what_the_run_imports_is_named_in_one_line(over_connect):
    [message] = over_connect.missing_module.strip().splitlines()
    server = over_connect.server
    assert message.startswith(f"Spark Connect server {server}: its Python cannot import what the run needs: ")
    assert "no_such_module (ModuleNotFoundError" in message and "insiders_spark.storage.synthetic" not in message


def test_an_unreachable_server_ends_the_run_in_one_line_naming_it():
    if _connect_client_missing():
        pytest.skip(_connect_client_missing())
    port = _free_port()  # nothing listens there
    started = time.monotonic()
    remote = f"sc://127.0.0.1:{port}/;token=secret"
    done = run_cli(["run", "--env", "test", "--remote", remote, "--output", "/nonexistent"])
    errors = [line for line in done.stderr.splitlines() if "error" in line]
    assert done.returncode == 1, done.stderr
    refused = f"Spark Connect server sc://127.0.0.1:{port}: unreachable (Connection refused)"
    assert errors == [f"insiders-spark: error: {refused}"]
    assert "secret" not in done.stderr and time.monotonic() - started < 60


def test_a_port_that_is_not_spark_connect_ends_the_run_in_one_line_naming_it():
    if _connect_client_missing():
        pytest.skip(_connect_client_missing())
    with socket.socket() as silent:  # accepts connections (the kernel's backlog) and never answers
        silent.bind(("127.0.0.1", 0))
        silent.listen()
        port = silent.getsockname()[1]
        started = time.monotonic()
        done = run_cli(["run", "--env", "test", "--remote", f"sc://127.0.0.1:{port}", "--output", "/nonexistent"])
    assert done.returncode == 1, done.stderr
    assert done.stderr.strip().splitlines()[-1] == (
        f"insiders-spark: error: Spark Connect server sc://127.0.0.1:{port}: no gRPC answer in 10 s "
        "(not a Spark Connect port, or TLS expected: use_ssl=true?)"
    )
    assert time.monotonic() - started < 60  # the client alone would wait without end


def test_a_remote_that_is_not_a_connect_url_is_a_usage_error():
    done = run_cli(["run", "--env", "test", "--output", "/nonexistent"], SPARK_REMOTE="http://127.0.0.1:15002")
    assert done.returncode == 2
    assert "SPARK_REMOTE 'http://127.0.0.1:15002': expected a Spark Connect URL, sc://HOST:PORT" in done.stderr
