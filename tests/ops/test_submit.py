"""scripts/submit.sh's command line, for the clusters this machine does not have (YARN, Kubernetes).

``SPARK_HOME`` points at a stand-in ``bin/spark-submit`` that records the arguments and environment
it was started with, so these tests check what submit.sh would hand a real cluster's spark-submit,
without one (no JVM starts here). The real submission to a standalone cluster is in test_cluster.py.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
SUBMIT = ROOT / "scripts" / "submit.sh"
LOCAL_CLUSTER = ROOT / "scripts" / "local_cluster.sh"
RECORDER = """#!/usr/bin/env bash
{ echo "SPARK_LOCAL_IP=${SPARK_LOCAL_IP-<unset>}"; printf '%s\\n' "$@"; } > "$SUBMIT_RECORD"
"""


@pytest.fixture
def recorded(tmp_path):
    """Run submit.sh against the recording spark-submit; returns (exit status, stderr, env, args)."""
    spark_home = tmp_path / "spark"
    (spark_home / "bin").mkdir(parents=True)
    (spark_home / "bin" / "spark-submit").write_text(RECORDER)
    (spark_home / "bin" / "spark-submit").chmod(0o755)
    record = tmp_path / "record.txt"

    def submit(*args: str, **variables: str):
        env = {k: v for k, v in os.environ.items() if not k.startswith(("INSIDERS_", "SPARK_"))}
        env.update(PYTHON=sys.executable, SPARK_HOME=str(spark_home), SUBMIT_RECORD=str(record), **variables)
        result = subprocess.run([str(SUBMIT), *args], env=env, capture_output=True, text=True, timeout=120)
        lines = record.read_text().splitlines() if record.exists() else []
        record.unlink(missing_ok=True)
        return result.returncode, result.stderr, (lines[0] if lines else None), lines[1:]

    return submit


def _confs(args: list[str]) -> list[str]:
    return [args[i + 1] for i, arg in enumerate(args) if arg == "--conf"]


def test_a_yarn_cluster_driver_gets_the_job_overrides_and_no_loopback_address(recorded):
    status, err, local_ip, args = recorded(
        "--output",
        "hdfs:///insiders",
        SPARK_MASTER="yarn",
        SPARK_DEPLOY_MODE="cluster",
        INSIDERS_SPARK__CLUSTERING__K="12",
        INSIDERS_SPARK__CONTROL__SALT="a salt with spaces",
    )
    assert status == 0, err
    assert args[args.index("--master") + 1] == "yarn" and args[args.index("--deploy-mode") + 1] == "cluster"
    confs = _confs(args)
    assert "spark.yarn.appMasterEnv.INSIDERS_SPARK__CLUSTERING__K=12" in confs
    assert "spark.yarn.appMasterEnv.INSIDERS_SPARK__CONTROL__SALT=a salt with spaces" in confs
    assert local_ip == "SPARK_LOCAL_IP=<unset>"  # the driver must announce an address the cluster reaches
    job = args[args.index(str(ROOT / "jobs" / "segment_customers.py")) + 1 :]
    assert job == ["--env", "yarn", "--conf-dir", ".", "--output", "hdfs:///insiders"]


def test_kubernetes_cluster_mode_forwards_the_overrides_as_driver_environment(recorded):
    status, err, _, args = recorded(
        "--output",
        "s3a://bucket/out",
        SPARK_MASTER="k8s://https://api:6443",
        SPARK_DEPLOY_MODE="cluster",
        INSIDERS_SPARK__CLUSTERING__K="12",
    )
    assert status == 0, err
    assert "spark.kubernetes.driverEnv.INSIDERS_SPARK__CLUSTERING__K=12" in _confs(args)


def test_overrides_a_cluster_driver_could_not_see_are_refused(recorded):
    status, err, _, args = recorded(
        "--output",
        "out",
        SPARK_MASTER="spark://10.0.0.5:7077",
        SPARK_DEPLOY_MODE="cluster",
        INSIDERS_SPARK__CLUSTERING__K="12",
    )
    assert status == 2 and args == []
    assert "INSIDERS_SPARK__CLUSTERING__K is set" in err and "pass the job option instead" in err


def test_a_local_master_of_any_width_runs_on_loopback(recorded):
    status, err, local_ip, args = recorded("--output", "out", SPARK_MASTER="local[4]")
    assert status == 0, err
    assert args[args.index("--master") + 1] == "local[4]" and local_ip == "SPARK_LOCAL_IP=127.0.0.1"
    assert args[args.index(str(ROOT / "jobs" / "segment_customers.py")) + 1 :][:2] == ["--env", "local"]


@pytest.mark.parametrize("option", ["--env", "--env=bench", "--conf-dir"])
def test_the_profile_options_are_refused_among_the_job_options(recorded, option):
    status, err, _, args = recorded("--output", "out", option, "bench")
    assert status == 2 and args == []
    assert f"{option} is set by submit.sh" in err and "INSIDERS_ENV" in err


def test_the_shipped_zip_records_the_commit_the_manifest_reports(recorded, tmp_path):
    head = subprocess.run(["git", "-C", str(ROOT), "rev-parse", "HEAD"], capture_output=True, text=True)
    if head.returncode != 0:
        pytest.skip("the project is not a git checkout here: there is no commit to record")
    status, err, _, _ = recorded("--output", "out", SPARK_MASTER="local[2]")
    assert status == 0, err
    package = ROOT / "dist" / "insiders_spark.zip"
    with zipfile.ZipFile(package) as archive:
        build = json.loads(archive.read("insiders_spark/BUILD.json"))
    assert build["git_commit"] == head.stdout.strip()
    # imported from the zip alone (as the executors and a cluster driver do), the package reports it
    code = (
        "import json, insiders_spark; from insiders_spark.runs.manifest import code_version; "
        "print(json.dumps({**code_version(), 'file': insiders_spark.__file__}))"
    )
    env = {**os.environ, "PYTHONPATH": str(package)}
    shown = subprocess.run(
        [sys.executable, "-c", code], env=env, cwd=tmp_path, capture_output=True, text=True, timeout=120
    )
    assert shown.returncode == 0, shown.stderr
    reported = json.loads(shown.stdout.strip().splitlines()[-1])
    assert reported["file"].startswith(str(package)) and reported["git_commit"] == head.stdout.strip()


def test_the_scripts_help_names_the_environment_they_read():
    result = subprocess.run([str(SUBMIT), "--help"], capture_output=True, text=True, timeout=60)
    assert result.returncode == 0
    for variable in ("SPARK_HOME", "SPARK_MASTER", "INSIDERS_ENV", "PYSPARK_PYTHON", "SPARK_AUTH_SECRET"):
        assert variable in result.stdout
    result = subprocess.run([str(LOCAL_CLUSTER), "--help"], capture_output=True, text=True, timeout=60)
    assert result.returncode == 0 and "start|stop|status" in result.stdout


def test_a_profile_that_overrides_the_master_is_refused(recorded):
    status, err, _, args = recorded("--output", "out", SPARK_MASTER="spark://127.0.0.1:7077", INSIDERS_ENV="local")
    assert status == 2 and args == []
    assert "sets spark.master" in err and "override" in err
