"""The job on a real Spark standalone cluster: a master and two workers on 127.0.0.1.

``scripts/local_cluster.sh`` starts the cluster once for this module (with authentication on, the
secret in the environment) and every job goes through ``scripts/submit.sh``, as a user submits it:
packaged as a zip for ``--py-files``, run by executor JVMs that the workers launch. The metrics
record which executors ran the tasks (the driver excluded), so these tests cannot pass in local
mode by accident. One submission of the real log does the heavy lifting: one worker's JVM is killed
while it runs, and its segments must still be those of the suite's own (local) run of the real log.

The cluster and its submissions are a background job (tests/background.py): they run in processes
of their own from the session's start, beside the other tests; these tests assert on what they left.
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

from tests import background, support
from tests.conftest import REAL_LOG_PARQUET, require_shared

pytestmark = [pytest.mark.cluster, pytest.mark.spark]

ROOT = Path(__file__).resolve().parents[2]
SUBMIT = ROOT / "scripts" / "submit.sh"
LOCAL_CLUSTER = ROOT / "scripts" / "local_cluster.sh"
WORKERS = 2
RUN_DATE = "2011-12-09"
SEGMENT_COLUMNS = ["customer_id", "cluster", "segment", "is_insider"]
JOB_TIMEOUT_S = 900  # a generous ceiling for a shared, busy CI machine; a run takes about a minute idle
AGGREGATION_STARTED = "stage read and aggregate: started"
TASK_ASSIGNED = "Got assigned task"  # the executor backend's INFO line, in the executor's stderr file
TASKS_BEFORE_KILL = 2  # the victim has finished work (its shuffle output and cache are lost with it)
VICTIM = 1  # the worker killed during the real log's run
SYNTHETIC_LINES = 10_000  # the log the executors generate from the shipped zip


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
        return subprocess.run([str(LOCAL_CLUSTER), command], env=self.env, capture_output=True, text=True, timeout=300)

    def worker_pid(self, worker: int) -> int:
        return int((self.directory / "pids" / f"worker-{worker}.pid").read_text())

    def executor_on(self, worker: int, app_id: str) -> str | None:
        """The id of the application's executor that this worker runs, if any."""
        executors = _json(f"http://127.0.0.1:{self.worker_ui_ports[worker - 1]}/json/")["executors"]
        return next((str(e["id"]) for e in executors if e["appid"] == app_id), None)

    def executor_log(self, worker: int, app_id: str, executor_id: str) -> Path:
        return self.directory / "work" / f"worker-{worker}" / app_id / executor_id / "stderr"

    def latest_app(self) -> str:
        """The application the master started last, finished or not."""
        state = _json(f"http://127.0.0.1:{self.env['SPARK_MASTER_WEBUI_PORT']}/json/")
        return max(state["activeapps"] + state["completedapps"], key=lambda app: app["starttime"])["id"]

    def running_app(self) -> str | None:
        apps = _json(f"http://127.0.0.1:{self.env['SPARK_MASTER_WEBUI_PORT']}/json/")["activeapps"]
        return apps[0]["id"] if apps else None


def _java_available() -> bool:
    java_home = os.environ.get("JAVA_HOME")
    return bool((java_home and Path(java_home, "bin", "java").exists()) or shutil.which("java"))


def _submit_env() -> dict[str, str]:
    """The environment a user's shell gives the scripts: the test's Python, loopback, no overrides."""
    env = {**os.environ, "PYTHON": sys.executable, "SPARK_LOCAL_IP": "127.0.0.1"}
    # PYTHONPATH too: the suite puts this checkout on it, and executors must import the shipped zip
    for name in (
        "SPARK_HOME",
        "SPARK_MASTER",
        "INSIDERS_ENV",
        "SPARK_SUBMIT_ARGS",
        "PYSPARK_DRIVER_PYTHON",
        "PYTHONPATH",
    ):
        env.pop(name, None)
    env["PYSPARK_PYTHON"] = sys.executable
    return env


def _start_cluster(directory: Path) -> Cluster:
    ui_ports = [_free_port() for _ in range(WORKERS + 1)]
    master_port = _free_port()
    env = {
        **_submit_env(),
        "CLUSTER_DIR": str(directory),
        "SPARK_MASTER_PORT": str(master_port),
        "SPARK_MASTER_WEBUI_PORT": str(ui_ports[0]),
        "SPARK_WORKER_WEBUI_PORT": str(ui_ports[1]),
        "SPARK_WORKER_INSTANCES": str(WORKERS),
        "SPARK_AUTH_SECRET": secrets.token_hex(16),  # the cluster and its drivers authenticate
    }
    handle = Cluster(directory, env, f"spark://127.0.0.1:{master_port}", ui_ports[1:])
    started = handle.script("start")
    assert started.returncode == 0, f"local_cluster.sh start failed:\n{started.stdout}\n{started.stderr}"
    assert handle.script("url").stdout.strip() == handle.master_url
    return handle


@dataclass(frozen=True)
class OnTheCluster:
    cluster: Cluster
    loss: Loss | None  # None: no real log here
    zip_run: subprocess.CompletedProcess
    zip_output: Path
    zip_app: str
    failing: Run  # an input whose second file has another header: its task fails on every attempt
    failing_app: str


@background.job("cluster", wanted=background.in_module(__name__))
def _on_the_cluster(folder: Path) -> OnTheCluster:
    if not _java_available():
        pytest.skip("no Java runtime: the standalone cluster needs Java 17+ (JAVA_HOME or java on PATH)")
    cluster = _start_cluster(folder / "cluster")
    try:
        loss = _real_log_with_a_lost_worker(cluster, folder) if REAL_LOG_PARQUET.exists() else None
        zip_output = folder / "synthetic output"
        zip_run = _synthetic_log_from_the_zip(cluster, folder, zip_output)
        zip_app = cluster.latest_app()
        failing = _a_task_failing_on_every_attempt(cluster, folder)
        return OnTheCluster(cluster, loss, zip_run, zip_output, zip_app, failing, cluster.latest_app())
    finally:
        stopped = cluster.script("stop")
        assert stopped.returncode == 0, stopped.stderr


@pytest.fixture(scope="module")
def on_the_cluster() -> OnTheCluster:
    return background.result("cluster")


@dataclass(frozen=True)
class Run:
    returncode: int
    log: str
    output: Path

    @property
    def metrics(self) -> dict:
        return json.loads((self.output / "runs" / f"run_date={RUN_DATE}" / "metrics.json").read_text())

    def segments(self) -> pd.DataFrame:
        return _segments(self.output)


def _segments(output: Path) -> pd.DataFrame:
    frame = pd.read_parquet(support.partition(output, "segments", RUN_DATE), columns=SEGMENT_COLUMNS)
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


@dataclass(frozen=True)
class Loss:
    run: Run
    app_id: str
    lost_executor: str


def _real_log_with_a_lost_worker(cluster: Cluster, folder: Path) -> Loss:
    """The real log on the cluster; once the aggregation has started and one worker's executor
    has finished tasks, that worker's JVM is killed (SIGKILL): Spark loses its executor and reruns
    its tasks on the other."""
    output = folder / "standalone" / "out"
    output.parent.mkdir()
    process, log = _submit(cluster.env, output, "--input", str(REAL_LOG_PARQUET), master=cluster.master_url)
    try:
        app_id = _wait_for(cluster.running_app, "the application registered with the master", process, log)
        executor_id = _wait_for(
            lambda: cluster.executor_on(VICTIM, app_id), f"an executor on worker-{VICTIM}", process, log
        )
        executor_log = cluster.executor_log(VICTIM, app_id, executor_id)
        _wait_for(lambda: AGGREGATION_STARTED in log.read_text(), "the aggregation stage", process, log)
        _wait_for(
            lambda: executor_log.exists() and executor_log.read_text().count(TASK_ASSIGNED) >= TASKS_BEFORE_KILL,
            f"executor {executor_id} on worker-{VICTIM} to run {TASKS_BEFORE_KILL} tasks",
            process,
            log,
        )
        assert process.poll() is None, "the job finished before the worker could be killed"
        os.kill(cluster.worker_pid(VICTIM), signal.SIGKILL)
        run = _finish(process, log, output)
    finally:
        if process.poll() is None:
            os.killpg(process.pid, signal.SIGKILL)
        restarted = cluster.script("start")  # the next submission finds two workers again
        assert restarted.returncode == 0, restarted.stderr
    assert run.returncode == 0, run.log[-4000:]
    return Loss(run, app_id, executor_id)


def _loss(on_the_cluster: OnTheCluster) -> Loss:
    if on_the_cluster.loss is None:
        require_shared(REAL_LOG_PARQUET)  # skips, with the reason
    return on_the_cluster.loss


def test_the_cluster_run_gives_the_local_segments(on_the_cluster, real_log_run):
    """The same customers, clusters and names as the suite's local run of the real log (another
    profile: two executors, four shuffle partitions, a lost worker), and the same profiles."""
    run = _loss(on_the_cluster).run
    local = real_log_run.manifest()
    pd.testing.assert_frame_equal(run.segments(), _segments(real_log_run.output))
    assert len(run.segments()) == run.metrics["customers"]["segmented"] == 5_695
    assert run.metrics["clusters"] == local["clusters"]
    assert run.metrics["clustering"]["silhouette"] == local["clustering"]["silhouette"]


def test_executors_on_both_workers_ran_the_tasks(on_the_cluster, real_log_run):
    loss, cluster = _loss(on_the_cluster), on_the_cluster.cluster
    spark = loss.run.metrics["spark"]
    assert spark["master"] == cluster.master_url and spark["app_id"] == loss.app_id
    assert spark["executor_ids"] == ["0", "1"], spark  # one executor per worker, none replaced
    assert all(spark["tasks_by_executor"][executor] > 0 for executor in spark["executor_ids"]), spark
    for worker in range(1, WORKERS + 1):  # each worker launched one of them for this application
        assert list((cluster.directory / "work" / f"worker-{worker}" / spark["app_id"]).iterdir())
    # the local run really ran in local mode: the driver did every task, no executor joined
    local = real_log_run.manifest()["spark"]
    assert local["master"] == "local[2]" and local["executor_ids"] == []


def test_the_job_survives_the_loss_of_a_worker(on_the_cluster):
    loss = _loss(on_the_cluster)
    run, lost = loss.run, loss.lost_executor
    spark = run.metrics["spark"]
    assert [executor["id"] for executor in spark["lost_executors"]] == [lost], spark
    assert "worker lost" in spark["lost_executors"][0]["reason"]
    assert spark["tasks_by_executor"][lost] >= 1, spark  # it had finished work, which was lost
    survivors = [e for e in spark["executor_ids"] if e != lost]
    assert survivors and all(spark["tasks_by_executor"][e] > 0 for e in survivors), spark
    assert re.search(rf"Lost executor {lost} on 127\.0\.0\.1", run.log), run.log[-4000:]
    assert "Traceback" not in run.log


def _library_folders() -> list[str]:
    """The folders that hold the job's libraries (pyspark, pandas, ...), not the package itself."""
    import numpy
    import pyarrow
    import pyspark

    folders = {str(Path(module.__file__).resolve().parents[1]) for module in (pyspark, pyarrow, numpy)}
    return sorted(folders | {sysconfig.get_paths()["purelib"]})


def _synthetic_log_from_the_zip(cluster: Cluster, folder: Path, output: Path) -> subprocess.CompletedProcess:
    """The project copied under a folder with spaces, submitted with executors whose Python is the
    test's started with -S and its libraries added to the path Spark gives it (pyspark's and the
    --py-files zip): they can import the package only from the zip that submit.sh built."""
    project = folder / "a project with spaces"
    for part in ("insiders_spark", "conf", "jobs", "scripts"):
        shutil.copytree(ROOT / part, project / part, ignore=shutil.ignore_patterns("__pycache__"))
    shutil.copy2(ROOT / "pyproject.toml", project / "pyproject.toml")  # the zip's BUILD.json takes its version
    bare_python = folder / "python without site"
    bare_python.write_text(
        "#!/bin/sh\n"
        f'PYTHONPATH="${{PYTHONPATH:+$PYTHONPATH:}}{os.pathsep.join(_library_folders())}"\n'
        "export PYTHONPATH\n"
        f'exec "{sys.executable}" -S "$@"\n'
    )
    bare_python.chmod(0o755)
    check = subprocess.run(  # from a folder without the package, as an executor's working folder
        [str(bare_python), "-c", "import pyspark, pandas; import insiders_spark"],
        cwd=folder,
        env={name: value for name, value in os.environ.items() if name != "PYTHONPATH"},
        capture_output=True,
        text=True,
    )
    assert check.returncode != 0 and "No module named 'insiders_spark'" in check.stderr, check.stderr
    env = {
        **cluster.env,
        "PYSPARK_PYTHON": str(bare_python),
        "SPARK_MASTER": cluster.master_url,
        "INSIDERS_ENV": "standalone",
    }
    done = subprocess.run(
        [str(project / "scripts" / "submit.sh"), "--output", str(output), "--synthetic-lines", str(SYNTHETIC_LINES),
         "--mode", "score", "--run-date", RUN_DATE],
        env=env, capture_output=True, text=True, timeout=JOB_TIMEOUT_S,
    )  # fmt: skip
    assert (project / "dist" / "insiders_spark.zip").is_file(), done.stdout[-2000:] + done.stderr[-2000:]
    return done


def test_executors_import_the_shipped_package_from_a_path_with_spaces(on_the_cluster):
    """The synthetic log is generated in the executors (mapInArrow), by code from --py-files only.

    The run scores without a model, so it stops once the executors have generated, classified and
    counted the log, and written its quarantine: those lines must be the generator's.
    """
    done, output = on_the_cluster.zip_run, on_the_cluster.zip_output
    console = done.stdout + done.stderr  # spark-submit passes the driver's stderr on as its stdout
    assert done.returncode == 1, console[-4000:]
    assert f"insiders-spark: error: no trained model under {output}/models" in console, console[-4000:]
    assert "ModuleNotFoundError" not in console
    (failed,) = (output / "failed_runs" / f"run_date={RUN_DATE}").iterdir()
    quarantine = pd.read_parquet(failed / "quarantine")
    expected = support.expected_outcomes(support.synthetic_frame(SYNTHETIC_LINES, 42), support.study_config().cleaning)
    assert quarantine["reason"].value_counts().to_dict() == expected.quarantined
    assert set(quarantine["source_file"]) == {f"synthetic(lines={SYNTHETIC_LINES},seed=42)"}
    work = on_the_cluster.cluster.directory / "work"
    ran = [p for p in work.glob(f"worker-*/{on_the_cluster.zip_app}/*/stderr") if TASK_ASSIGNED in p.read_text()]
    assert ran, f"no executor of {on_the_cluster.zip_app} ran a task"


# --- a task that fails on every attempt -------------------------------------------------------

MAX_FAILURES = 4  # conf/standalone.toml's spark.task.maxFailures
ATTEMPT = re.compile(r"ERROR Executor: Exception in task (\d+)\.(\d+) in stage (\d+)\.\d+ \(TID \d+\)")


def _a_task_failing_on_every_attempt(cluster: Cluster, folder: Path) -> Run:
    """An input whose second file has another header than the first, which Spark only finds in the
    task that reads it: that task fails on every attempt, on the executors, until
    ``spark.task.maxFailures`` stops the job."""
    drops = folder / "failing" / "drops"
    support.write_csv(drops / "2011-03-01.csv", [support.csv_line("536365")])
    support.write_csv(
        drops / "2011-03-02.csv", [support.csv_line("536366")], header=support.HEADER.replace("Country", "Land")
    )
    process, log = _submit(cluster.env, folder / "failing" / "out", "--input", str(drops), master=cluster.master_url)
    return _finish(process, log, folder / "failing" / "out")


def test_a_failing_task_and_its_retries_are_logged_and_the_job_explains_it_once(on_the_cluster):
    driver = on_the_cluster.failing.log
    assert on_the_cluster.failing.returncode == 1, driver[-4000:]

    # the driver: the first failure with the executor it ran on, and the abort after the last retry,
    # one line each; then the job's own message, once
    lost = [line for line in driver.splitlines() if "WARN TaskSetManager: Lost task" in line]
    assert lost and re.search(r"\(127\.0\.0\.1 executor \d+\): .*FAILED_READ_FILE", lost[0]), lost
    assert re.search(rf"ERROR TaskSetManager: Task \d+ in stage \S+ failed {MAX_FAILURES} times; aborting job", driver)
    assert driver.count("insiders-spark: error:") == 1
    assert "expected column 'Country' but found 'Land'" in driver and "2011-03-02.csv" in driver
    assert "at org.apache" not in driver

    # the executors (stderr under the cluster's work folder): every attempt's error, with its stack trace
    work = on_the_cluster.cluster.directory / "work"
    stderr = "\n".join(p.read_text() for p in sorted(work.glob(f"worker-*/{on_the_cluster.failing_app}/*/stderr")))
    attempts = {(task, stage): set() for task, _, stage in ATTEMPT.findall(stderr)}
    for task, attempt, stage in ATTEMPT.findall(stderr):
        attempts[(task, stage)].add(int(attempt))
    assert set(range(MAX_FAILURES)) in attempts.values(), attempts  # the first try and its three retries
    assert "at org.apache.spark" in stderr and "2011-03-02.csv" in stderr
