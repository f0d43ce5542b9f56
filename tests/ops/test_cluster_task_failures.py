"""A task that fails on a standalone cluster: its error and every retry stay in the logs, and the
job still explains the failure once.

``scripts/local_cluster.sh`` starts a master and two workers on 127.0.0.1 for this module, the way
the other cluster tests (test_cluster.py) start theirs, and the job goes through
``scripts/submit.sh``. Its input's second file has another header than the first, which Spark only
finds in the task that reads it: that task fails on every attempt, on the executors, until
``spark.task.maxFailures`` (4 in conf/standalone.toml) stops the job. Needs Java 17+; no real data.
"""

from __future__ import annotations

import os
import re
import secrets
import shutil
import socket
import subprocess
import sys
from pathlib import Path

import pytest

pytestmark = [pytest.mark.cluster, pytest.mark.spark]

ROOT = Path(__file__).resolve().parents[2]
SUBMIT = ROOT / "scripts" / "submit.sh"
LOCAL_CLUSTER = ROOT / "scripts" / "local_cluster.sh"
MAX_FAILURES = 4  # conf/standalone.toml's spark.task.maxFailures
HEADER = "InvoiceNo,StockCode,Description,Quantity,InvoiceDate,UnitPrice,CustomerID,Country"
LINE = "536365,85123A,WHITE MUG,6,2011-03-01 10:00:00,2.55,17850.0,United Kingdom"
ATTEMPT = re.compile(r"ERROR Executor: Exception in task (\d+)\.(\d+) in stage (\d+)\.\d+ \(TID \d+\)")


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


@pytest.fixture(scope="module")
def cluster(tmp_path_factory):
    java_home = os.environ.get("JAVA_HOME")
    if not ((java_home and Path(java_home, "bin", "java").exists()) or shutil.which("java")):
        pytest.skip("no Java runtime: the standalone cluster needs Java 17+ (JAVA_HOME or java on PATH)")
    directory = tmp_path_factory.mktemp("cluster")
    env = {k: v for k, v in os.environ.items() if not k.startswith(("INSIDERS_", "SPARK_"))}
    env.update(
        PYTHON=sys.executable,
        PYSPARK_PYTHON=sys.executable,
        SPARK_LOCAL_IP="127.0.0.1",
        CLUSTER_DIR=str(directory),
        SPARK_MASTER_PORT=str(_free_port()),
        SPARK_MASTER_WEBUI_PORT=str(_free_port()),
        SPARK_WORKER_WEBUI_PORT=str(_free_port()),
        SPARK_WORKER_INSTANCES="2",
        SPARK_AUTH_SECRET=secrets.token_hex(16),
    )
    started = subprocess.run([str(LOCAL_CLUSTER), "start"], env=env, capture_output=True, text=True, timeout=300)
    try:
        assert started.returncode == 0, f"{started.stdout}\n{started.stderr}"
        yield directory, env, f"spark://127.0.0.1:{env['SPARK_MASTER_PORT']}"
    finally:
        stopped = subprocess.run([str(LOCAL_CLUSTER), "stop"], env=env, capture_output=True, text=True, timeout=300)
        assert stopped.returncode == 0, stopped.stderr


def test_a_failing_task_and_its_retries_are_logged_and_the_job_explains_it_once(cluster, tmp_path):
    directory, env, master = cluster
    drops = tmp_path / "drops"
    drops.mkdir()
    (drops / "2011-03-01.csv").write_text(f"{HEADER}\n{LINE}\n")
    (drops / "2011-03-02.csv").write_text(f"{HEADER.replace('Country', 'Land')}\n{LINE}\n")
    result = subprocess.run(
        [str(SUBMIT), "--input", str(drops), "--output", str(tmp_path / "out"), "--no-stability"],
        env={**env, "SPARK_MASTER": master, "INSIDERS_ENV": "standalone"},
        capture_output=True,
        text=True,
        timeout=900,
    )
    driver = result.stdout + result.stderr
    assert result.returncode == 1, driver[-4000:]

    # the driver: the first failure with the executor it ran on, and the abort after the last retry,
    # one line each; then the job's own message, once
    lost = [line for line in driver.splitlines() if "WARN TaskSetManager: Lost task" in line]
    assert lost and re.search(r"\(127\.0\.0\.1 executor \d+\): .*FAILED_READ_FILE", lost[0]), lost
    assert re.search(rf"ERROR TaskSetManager: Task \d+ in stage \S+ failed {MAX_FAILURES} times; aborting job", driver)
    assert driver.count("insiders-spark: error:") == 1
    assert "expected column 'Country' but found 'Land'" in driver and "2011-03-02.csv" in driver
    assert "at org.apache" not in driver

    # the executors (stderr under the cluster's work folder): every attempt's error, with its stack trace
    stderr = "\n".join(path.read_text() for path in sorted((directory / "work").glob("worker-*/app-*/*/stderr")))
    attempts = {(task, stage): set() for task, _, stage in ATTEMPT.findall(stderr)}
    for task, attempt, stage in ATTEMPT.findall(stderr):
        attempts[(task, stage)].add(int(attempt))
    assert set(range(MAX_FAILURES)) in attempts.values(), attempts  # the first try and its three retries
    assert "at org.apache.spark" in stderr and "2011-03-02.csv" in stderr
