"""The job on a real Spark standalone cluster: a master and two workers on 127.0.0.1.

``scripts/local_cluster.sh`` starts the cluster once for this module (with authentication on, the
secret in the environment) and every job goes through ``scripts/submit.sh``, as a user submits it:
packaged as a zip for ``--py-files``, run by executor JVMs that the workers launch. The metrics
record which executors ran the tasks (the driver excluded), so these tests cannot pass in local
mode by accident. Needs Java 17+ and the real log (../shared/data; skips with the reason without).
"""

from __future__ import annotations

import json
import os
import re
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import sysconfig
import time
import urllib.request
from dataclasses import dataclass
from pathlib import Path

import pandas as pd
import pytest

pytestmark = [pytest.mark.cluster, pytest.mark.real_data]

ROOT = Path(__file__).resolve().parents[1]
SUBMIT = ROOT / "scripts" / "submit.sh"
LOCAL_CLUSTER = ROOT / "scripts" / "local_cluster.sh"
WORKERS = 2
RUN_DATE = "2011-12-09"
SEGMENT_COLUMNS = ["customer_id", "cluster", "segment", "is_insider"]
JOB_TIMEOUT_S = 900  # a generous ceiling for a shared, busy CI machine; a run takes about a minute idle
AGGREGATION_STARTED = "stage read and aggregate: started"
TASK_ASSIGNED = "Got assigned task"  # the executor backend's INFO line, in the executor's stderr file
TASKS_BEFORE_KILL = 2  # the victim has finished work (its shuffle output and cache are lost with it)


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def _json(url: str) -> dict:
    with urllib.request.urlopen(url, timeout=5) as response:
        return json.load(response)


@dataclass
class Cluster:
    directory: Path
    env: dict[str, str]
    master_url: str
    worker_ui_ports: list[int]

    def script(self, command: str) -> subprocess.CompletedProcess:
        return subprocess.run(
            [str(LOCAL_CLUSTER), command], env=self.env, capture_output=True, text=True, timeout=300
        )

    def worker_pid(self, worker: int) -> int:
        return int((self.directory / "pids" / f"worker-{worker}.pid").read_text())

    def executor_on(self, worker: int, app_id: str) -> str | None:
        """The id of the application's executor that this worker runs, if any."""
        executors = _json(f"http://127.0.0.1:{self.worker_ui_ports[worker - 1]}/json/")["executors"]
        return next((str(e["id"]) for e in executors if e["appid"] == app_id), None)

    def executor_log(self, worker: int, app_id: str, executor_id: str) -> Path:
        return self.directory / "work" / f"worker-{worker}" / app_id / executor_id / "stderr"

    def running_app(self) -> str | None:
        apps = _json(f"http://127.0.0.1:{self.env['SPARK_MASTER_WEBUI_PORT']}/json/")["activeapps"]
        return apps[0]["id"] if apps else None


def _java_available() -> bool:
    java_home = os.environ.get("JAVA_HOME")
    return bool((java_home and Path(java_home, "bin", "java").exists()) or shutil.which("java"))


@pytest.fixture(scope="module")
def submit_env() -> dict[str, str]:
    """The environment a user's shell gives the scripts: the test's Python, loopback, no overrides."""
    env = {**os.environ, "PYTHON": sys.executable, "SPARK_LOCAL_IP": "127.0.0.1"}
    for name in ("SPARK_HOME", "SPARK_MASTER", "INSIDERS_ENV", "SPARK_SUBMIT_ARGS", "PYSPARK_DRIVER_PYTHON"):
        env.pop(name, None)
    env["PYSPARK_PYTHON"] = sys.executable
    return env


@pytest.fixture(scope="module")
def cluster(submit_env, tmp_path_factory):
    if not _java_available():
        pytest.skip("no Java runtime: the standalone cluster needs Java 17+ (JAVA_HOME or java on PATH)")
    directory = tmp_path_factory.mktemp("cluster")
    ui_ports = [_free_port() for _ in range(WORKERS + 1)]
    master_port = _free_port()
    env = {
        **submit_env,
        "CLUSTER_DIR": str(directory),
        "SPARK_MASTER_PORT": str(master_port),
        "SPARK_MASTER_WEBUI_PORT": str(ui_ports[0]),
        "SPARK_WORKER_WEBUI_PORT": str(ui_ports[1]),
        "SPARK_WORKER_INSTANCES": str(WORKERS),
        "SPARK_AUTH_SECRET": secrets.token_hex(16),  # the cluster and its drivers authenticate
    }
    handle = Cluster(directory, env, f"spark://127.0.0.1:{master_port}", ui_ports[1:])
    started = handle.script("start")
    try:
        assert started.returncode == 0, f"local_cluster.sh start failed:\n{started.stdout}\n{started.stderr}"
        assert handle.script("url").stdout.strip() == handle.master_url
        yield handle
    finally:
        stopped = handle.script("stop")
        assert stopped.returncode == 0, stopped.stderr


@dataclass(frozen=True)
class Run:
    returncode: int
    log: str
    output: Path

    @property
    def metrics(self) -> dict:
        return json.loads((self.output / "runs" / f"run_date={RUN_DATE}" / "metrics.json").read_text())

    def segments(self) -> pd.DataFrame:
        frame = pd.read_parquet(self.output / "segments" / f"run_date={RUN_DATE}", columns=SEGMENT_COLUMNS)
        return frame.sort_values("customer_id").reset_index(drop=True)


def _submit(env: dict[str, str], output: Path, *job_args: str, master: str, profile: str = "standalone"):
    """Start scripts/submit.sh; the driver's console (stdout and stderr) goes to <output>.log."""
    log = output.with_name(output.name + ".log")
    submit_env = {**env, "SPARK_MASTER": master, "INSIDERS_ENV": profile}
    with log.open("w") as console:
        process = subprocess.Popen(
            # --no-stability: these tests are about the cluster path, not the quality runs
            [str(SUBMIT), "--output", str(output), "--no-stability", *job_args],
            env=submit_env,
            stdout=console,
            stderr=subprocess.STDOUT,
            start_new_session=True,  # its own process group, so a timeout can stop the driver and its Python
        )
    return process, log


def _finish(process: subprocess.Popen, log: Path, output: Path) -> Run:
    try:
        returncode = process.wait(timeout=JOB_TIMEOUT_S)
    except subprocess.TimeoutExpired:
        os.killpg(process.pid, signal.SIGKILL)
        process.wait()
        pytest.fail(f"the job did not finish in {JOB_TIMEOUT_S} s; its log:\n{log.read_text()[-4000:]}")
    return Run(returncode, log.read_text(), output)


@pytest.fixture(scope="module")
def local_run(submit_env, real_log_parquet, tmp_path_factory) -> Run:
    """The reference: the same submission and profile, in local mode (local[2])."""
    output = tmp_path_factory.mktemp("local") / "out"
    process, log = _submit(submit_env, output, "--input", str(real_log_parquet), master="local[2]")
    run = _finish(process, log, output)
    assert run.returncode == 0, run.log[-4000:]
    return run


@pytest.fixture(scope="module")
def cluster_run(cluster, real_log_parquet, tmp_path_factory) -> Run:
    output = tmp_path_factory.mktemp("standalone") / "out"
    process, log = _submit(cluster.env, output, "--input", str(real_log_parquet), master=cluster.master_url)
    run = _finish(process, log, output)
    assert run.returncode == 0, run.log[-4000:]
    return run


def test_the_cluster_run_gives_the_local_segments(local_run, cluster_run):
    pd.testing.assert_frame_equal(cluster_run.segments(), local_run.segments())
    assert len(cluster_run.segments()) == cluster_run.metrics["customers"]["segmented"] == 5_695
    assert cluster_run.metrics["clusters"] == local_run.metrics["clusters"]
    assert cluster_run.metrics["clustering"]["silhouette"] == local_run.metrics["clustering"]["silhouette"]


def test_executors_on_both_workers_ran_the_tasks(cluster, local_run, cluster_run):
    spark = cluster_run.metrics["spark"]
    assert spark["master"] == cluster.master_url
    assert spark["executor_ids"] == ["0", "1"], spark  # one executor per worker, none replaced
    assert all(spark["tasks_by_executor"][executor] > 0 for executor in spark["executor_ids"]), spark
    assert spark["lost_executors"] == []
    for worker in range(1, WORKERS + 1):  # each worker launched one of them for this application
        assert list((cluster.directory / "work" / f"worker-{worker}" / spark["app_id"]).iterdir())
    # the reference really ran in local mode: the driver did every task, no executor joined
    assert local_run.metrics["spark"]["master"] == "local[2]" and local_run.metrics["spark"]["executor_ids"] == []
    assert "Traceback" not in cluster_run.log


def _wait_for(condition, what: str, process: subprocess.Popen, log: Path, timeout: float = JOB_TIMEOUT_S):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = condition()
        if value:
            return value
        if process.poll() is not None:
            pytest.fail(f"the job ended (status {process.returncode}) before {what}:\n{log.read_text()[-4000:]}")
        time.sleep(0.5)
    pytest.fail(f"timed out waiting for {what}")


def test_the_job_survives_the_loss_of_a_worker(cluster, real_log_parquet, local_run, tmp_path):
    """SIGKILL one worker's JVM mid-job: Spark loses its executor, reruns its tasks on the other."""
    output = tmp_path / "out"
    process, log = _submit(cluster.env, output, "--input", str(real_log_parquet), master=cluster.master_url)
    victim = 1
    try:
        app_id = _wait_for(cluster.running_app, "the application registered with the master", process, log)
        executor_id = _wait_for(
            lambda: cluster.executor_on(victim, app_id), f"an executor on worker-{victim}", process, log
        )
        executor_log = cluster.executor_log(victim, app_id, executor_id)
        _wait_for(lambda: AGGREGATION_STARTED in log.read_text(), "the aggregation stage", process, log)
        _wait_for(
            lambda: executor_log.exists() and executor_log.read_text().count(TASK_ASSIGNED) >= TASKS_BEFORE_KILL,
            f"executor {executor_id} on worker-{victim} to run {TASKS_BEFORE_KILL} tasks",
            process,
            log,
        )
        assert process.poll() is None, "the job finished before the worker could be killed"
        os.kill(cluster.worker_pid(victim), signal.SIGKILL)
        run = _finish(process, log, output)
    finally:
        if process.poll() is None:
            os.killpg(process.pid, signal.SIGKILL)
        restarted = cluster.script("start")  # the following tests find two workers again
        assert restarted.returncode == 0, restarted.stderr

    assert run.returncode == 0, run.log[-4000:]
    spark = run.metrics["spark"]
    assert spark["app_id"] == app_id and spark["master"] == cluster.master_url
    assert [lost["id"] for lost in spark["lost_executors"]] == [executor_id], spark
    assert "worker lost" in spark["lost_executors"][0]["reason"]
    assert spark["tasks_by_executor"][executor_id] >= 1, spark  # it had finished work, which was lost
    survivors = [e for e in spark["executor_ids"] if e != executor_id]
    assert survivors and all(spark["tasks_by_executor"][e] > 0 for e in survivors), spark
    assert re.search(rf"Lost executor {executor_id} on 127\.0\.0\.1", run.log), run.log[-4000:]
    pd.testing.assert_frame_equal(run.segments(), local_run.segments())


def test_executors_import_the_shipped_package_from_a_path_with_spaces(cluster, tmp_path):
    """The synthetic log is generated in the executors (mapInArrow), by code from --py-files only.

    The executors' Python is the test's, started with -S: its libraries are on the path but not the
    editable install of insiders_spark, so the executors can import the package only from the zip
    that submit.sh built. The project is copied under a folder with spaces first.
    """
    project = tmp_path / "a project with spaces"
    for part in ("insiders_spark", "conf", "jobs", "scripts"):
        shutil.copytree(ROOT / part, project / part, ignore=shutil.ignore_patterns("__pycache__"))
    site_packages = sysconfig.get_paths()["purelib"]
    bare_python = tmp_path / "python without site"
    bare_python.write_text(
        "#!/bin/sh\n"
        f'PYTHONPATH="${{PYTHONPATH:+$PYTHONPATH:}}{site_packages}"\n'
        "export PYTHONPATH\n"
        f'exec "{sys.executable}" -S "$@"\n'
    )
    bare_python.chmod(0o755)
    check = subprocess.run(  # from a folder without the package, as an executor's working folder
        [str(bare_python), "-c", "import insiders_spark"], cwd=tmp_path, capture_output=True, text=True
    )
    assert check.returncode != 0 and "No module named 'insiders_spark'" in check.stderr

    output = tmp_path / "synthetic output"
    env = {**cluster.env, "PYSPARK_PYTHON": str(bare_python), "SPARK_MASTER": cluster.master_url, "INSIDERS_ENV": "standalone"}
    result = subprocess.run(
        [str(project / "scripts" / "submit.sh"), "--output", str(output), "--no-stability", "--synthetic-lines", "40000"],
        env=env,
        capture_output=True,
        text=True,
        timeout=JOB_TIMEOUT_S,
    )
    assert result.returncode == 0, result.stderr[-4000:]
    assert (project / "dist" / "insiders_spark.zip").is_file()
    metrics = json.loads(next(output.glob("runs/run_date=*/metrics.json")).read_text())
    assert metrics["spark"]["master"] == cluster.master_url
    assert metrics["input"]["format"] == "synthetic"
    assert sum(metrics["spark"]["tasks_by_executor"].values()) > 0


def test_submit_help_names_the_environment_it_reads():
    result = subprocess.run([str(SUBMIT), "--help"], capture_output=True, text=True, timeout=60)
    assert result.returncode == 0
    for variable in ("SPARK_HOME", "SPARK_MASTER", "INSIDERS_ENV", "PYSPARK_PYTHON", "SPARK_AUTH_SECRET"):
        assert variable in result.stdout
    result = subprocess.run([str(LOCAL_CLUSTER), "--help"], capture_output=True, text=True, timeout=60)
    assert result.returncode == 0 and "start|stop|status" in result.stdout


def test_submit_refuses_a_profile_that_overrides_the_master(submit_env, tmp_path):
    env = {**submit_env, "SPARK_MASTER": "spark://127.0.0.1:7077", "INSIDERS_ENV": "local"}
    result = subprocess.run([str(SUBMIT), "--output", str(tmp_path)], env=env, capture_output=True, text=True, timeout=120)
    assert result.returncode == 2
    assert "sets spark.master" in result.stderr and "override" in result.stderr
