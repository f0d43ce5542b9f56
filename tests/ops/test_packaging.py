"""What a scheduler deploys and submits: ``make dist`` (a versioned wheel and the zip), the one zip
builder that scripts/submit.sh shares with it, and ``submit.sh --print-spec``.

No JVM: ``--print-spec`` never starts spark-submit (a stand-in that fails loudly proves it).
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import tomllib
import zipfile
from pathlib import Path

import pytest

from insiders_spark.core.config import load_config

ROOT = Path(__file__).resolve().parents[2]
SUBMIT = ROOT / "scripts" / "submit.sh"
BUILD_ZIP = ROOT / "scripts" / "build_zip.py"
VERSION = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["version"]
JOB = str(ROOT / "jobs" / "segment_customers.py")


def _git(*args: str) -> str | None:
    done = subprocess.run(["git", "-C", str(ROOT), *args], capture_output=True, text=True)
    return done.stdout.strip() if done.returncode == 0 else None


def test_the_zip_records_version_and_commit_and_runs_from_itself(tmp_path):
    target = tmp_path / "pkg.zip"
    built = subprocess.run([sys.executable, str(BUILD_ZIP), str(target)], capture_output=True, text=True, timeout=120)
    assert built.returncode == 0 and built.stdout.strip() == str(target), built.stderr
    with zipfile.ZipFile(target) as archive:
        names = set(archive.namelist())
        build = json.loads(archive.read("insiders_spark/BUILD.json"))
    assert {"insiders_spark/cli.py", "insiders_spark/conf/base.toml", "insiders_spark/conf/log4j2.properties",
            "insiders_spark/conf/log4j2-json.properties", "insiders_spark/conf/datasets/online_retail.toml"} <= names
    assert build["version"] == VERSION
    head = _git("rev-parse", "HEAD")
    assert build["git_commit"] == head
    assert build["git_dirty"] is None if head is None else isinstance(build["git_dirty"], bool)
    # imported from the zip alone, as executors and a cluster-mode driver do: the profiles, the dataset
    # profiles and the commit come from inside it
    code = (
        "import json, insiders_spark; from insiders_spark.core.config import load_config, dataset_names; "
        "from insiders_spark.runs.manifest import code_version; load_config(env='standalone'); "
        "print(json.dumps({'file': insiders_spark.__file__, 'datasets': dataset_names(), **code_version()}))"
    )
    env = {**os.environ, "PYTHONPATH": str(target)}
    shown = subprocess.run([sys.executable, "-c", code], env=env, cwd=tmp_path, capture_output=True, text=True,
                           timeout=120)
    assert shown.returncode == 0, shown.stderr
    reported = json.loads(shown.stdout.strip().splitlines()[-1])
    assert reported["file"].startswith(str(target)) and reported["datasets"] == ["online_retail"]
    assert reported["package"] == VERSION and reported["git_commit"] == head


@pytest.fixture
def print_spec(tmp_path):
    """Run ``submit.sh --print-spec`` with a spark-submit that must not be started; returns the spec."""
    spark_home = tmp_path / "spark"
    (spark_home / "bin").mkdir(parents=True)
    (spark_home / "bin" / "spark-submit").write_text("#!/bin/sh\necho 'spark-submit was started' >&2\nexit 99\n")
    (spark_home / "bin" / "spark-submit").chmod(0o755)

    def spec(*args: str, **variables: str) -> dict:
        env = {k: v for k, v in os.environ.items() if not k.startswith(("INSIDERS_", "SPARK_"))}
        env.update(PYTHON=sys.executable, SPARK_HOME=str(spark_home), **variables)
        done = subprocess.run([str(SUBMIT), "--print-spec", *args], env=env, capture_output=True, text=True,
                              timeout=120)
        assert done.returncode == 0, done.stderr
        return json.loads(done.stdout)

    return spec


def test_print_spec_holds_the_profiles_conf_and_the_jobs_arguments(print_spec):
    spec = print_spec("--driver-memory", "3g", "--conf", "spark.executor.memory=2g", "--",
                      "--input", "a log with spaces.csv", "--output", "out", SPARK_MASTER="spark://127.0.0.1:7077")
    assert spec["master"] == "spark://127.0.0.1:7077" and spec["deploy_mode"] == "client"
    profile = dict(load_config(env="standalone", environ={}).spark)
    given = {"spark.executor.memory": "2g"}  # a spark-submit option given before `--` wins over the profile
    for key, value in profile.items():
        if key != "spark.driver.extraJavaOptions":
            assert spec["conf"][key] == given.get(key, value), key
    options = spec["conf"]["spark.driver.extraJavaOptions"]
    assert f'-Dlog4j2.configurationFile="{ROOT}/conf/log4j2.properties"' in options
    assert "-Dinsiders_spark.task_log=tasks" in options
    assert spec["conf"]["spark.pyspark.python"] == sys.executable
    assert spec["options"] == ["--driver-memory", "3g"]
    assert spec["py_files"] == [str(ROOT / "dist" / "insiders_spark.zip")]
    assert {str(ROOT / "conf" / name) for name in ("base.toml", "standalone.toml", "log4j2.properties")} <= set(
        spec["files"]
    )
    assert spec["application"] == JOB
    assert spec["application_args"] == [
        "--env", "standalone", "--conf-dir", str(ROOT / "conf"), "--input", "a log with spaces.csv", "--output", "out"
    ]
    assert spec["env"] == {"SPARK_LOCAL_IP": "127.0.0.1"}


def test_print_spec_follows_the_log_format_and_the_deploy_mode(print_spec):
    spec = print_spec("--output", "hdfs:///insiders", "--log-format", "json", SPARK_MASTER="yarn",
                      SPARK_DEPLOY_MODE="cluster")
    assert spec["deploy_mode"] == "cluster" and spec["conf"]["spark.log.structuredLogging.enabled"] == "true"
    assert '-Dlog4j2.configurationFile="log4j2-json.properties"' in spec["conf"]["spark.driver.extraJavaOptions"]
    assert spec["conf"]["spark.executor.instances"] == "4"  # conf/yarn.toml
    assert spec["application_args"][:4] == ["--env", "yarn", "--conf-dir", "."]
    assert spec["env"] == {}  # no loopback address: a YARN driver must announce one the cluster reaches


def test_submit_ships_the_zip_make_dist_builds(print_spec, tmp_path):
    """One builder: submit.sh's zip holds exactly what scripts/build_zip.py puts in one."""
    print_spec("--output", "out")
    direct = tmp_path / "direct.zip"
    subprocess.run([sys.executable, str(BUILD_ZIP), str(direct)], check=True, capture_output=True, timeout=120)
    with zipfile.ZipFile(ROOT / "dist" / "insiders_spark.zip") as shipped, zipfile.ZipFile(direct) as built:
        assert shipped.namelist() == built.namelist()
    makefile = (ROOT / "Makefile").read_text()
    assert "scripts/build_zip.py" in makefile and "scripts/build_zip.py" in SUBMIT.read_text()


@pytest.mark.skipif(shutil.which("make") is None, reason="no make")
def test_make_dist_builds_a_versioned_wheel_and_the_zip(tmp_path):
    project = tmp_path / "project"
    for part in ("insiders_spark", "conf", "jobs", "scripts"):
        shutil.copytree(ROOT / part, project / part, ignore=shutil.ignore_patterns("__pycache__"))
    for name in ("Makefile", "pyproject.toml", "README.md"):
        shutil.copy2(ROOT / name, project / name)
    venv = Path(sys.prefix)
    done = subprocess.run(["make", "-o", str(venv / ".installed"), "dist", f"VENV={venv}"], cwd=project,
                          capture_output=True, text=True, timeout=600)
    if done.returncode != 0 and "setuptools" in done.stderr and "No matching distribution" in done.stderr:
        pytest.skip("pip cannot fetch the build backend (setuptools) here: no package index")
    assert done.returncode == 0, done.stderr[-3000:]
    (wheel,) = (project / "dist").glob("*.whl")
    assert wheel.name == f"insiders_spark-{VERSION}-py3-none-any.whl"
    with zipfile.ZipFile(wheel) as archive:
        assert {"insiders_spark/cli.py", "insiders_spark/conf/log4j2-json.properties"} <= set(archive.namelist())
    with zipfile.ZipFile(project / "dist" / "insiders_spark.zip") as archive:
        build = json.loads(archive.read("insiders_spark/BUILD.json"))
    assert build == {"version": VERSION, "git_commit": None, "git_dirty": None}  # the copy is no checkout
