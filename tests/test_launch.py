"""The driver JVM's start (insiders_spark.launch): input sizes, the options chosen, and a class
archive made by the command and taken by a real JVM."""

import logging
import os
import shutil
import subprocess
import sys

from insiders_spark import launch, synthetic
from insiders_spark.config import default_conf_dir, load_config


def _write(path, size):
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(b"x" * size)
    return path


def test_a_local_input_counts_the_files_the_reader_reads(tmp_path):
    drop = tmp_path / "drop"
    first = _write(drop / "2011-12-01.csv", 100)
    _write(drop / "december" / "2011-12-02.csv", 250)
    _write(drop / "_SUCCESS", 7)  # markers, hidden files and underscore folders are not read
    _write(drop / ".2011-12-03.csv.crc", 9)
    _write(drop / "_temporary" / "part.csv", 50)

    assert launch.local_input_bytes(str(drop)) == 350
    assert launch.local_input_bytes(str(drop / "*.csv")) == 100
    assert launch.local_input_bytes(first.as_uri()) == 100
    assert launch.local_input_bytes(str(tmp_path / "missing")) is None
    assert launch.local_input_bytes("s3a://lake/transactions/") is None


def _config(**overrides):
    return load_config(env="test", environ={}, overrides=overrides)


def test_the_quick_jit_is_chosen_up_to_the_limit_only(tmp_path):
    log = str(_write(tmp_path / "log.parquet", 1000))
    for limit, quick in ((999, False), (1000, True), (0, False)):
        plan = launch.plan_launch(_config(**{"input.path": log, "launch.quick_jit_max_bytes": limit}))
        assert plan.input_bytes == 1000
        assert plan.quick_jit is quick
        assert (launch.QUICK_JIT_OPTION in plan.java_options) is quick
    # the synthetic log counts 16 bytes a line; a remote input's size is unknown: never quick
    synthetic = {"input.path": "", "synthetic.lines": 1000}
    assert launch.plan_launch(_config(**synthetic, **{"launch.quick_jit_max_bytes": 16_000})).quick_jit
    assert not launch.plan_launch(_config(**synthetic, **{"launch.quick_jit_max_bytes": 15_999})).quick_jit
    remote = launch.plan_launch(_config(**{"input.path": "s3a://lake/log/", "launch.quick_jit_max_bytes": 10**12}))
    assert remote.input_bytes is None and not remote.quick_jit


def test_a_class_archive_is_passed_only_when_it_exists(tmp_path, caplog):
    archive = tmp_path / "classes.jsa"
    settings = {"launch.class_archive": str(archive), "launch.quick_jit_max_bytes": 0}
    with caplog.at_level(logging.WARNING, logger="insiders_spark.launch"):
        missing = launch.plan_launch(_config(**settings))
    assert missing.class_archive is None and missing.java_options == ()
    assert "does not exist" in caplog.text and "class-archive" in caplog.text

    _write(archive, 10)
    present = launch.plan_launch(_config(**settings))
    assert present.java_options == (f"-XX:SharedArchiveFile={archive.resolve()}",)
    assert str(archive.resolve()) in present.describe()


def _cli(*args, cwd, env=None):
    return subprocess.run(
        [sys.executable, "-m", "insiders_spark.cli", *args],
        capture_output=True,
        text=True,
        env={**os.environ, **(env or {})},
        cwd=cwd,  # a JVM that fails to start writes its hs_err file there
        timeout=600,
    )


def test_the_class_archive_command_makes_an_archive_the_jvm_takes(spark, tmp_path):
    log = str(tmp_path / "log.parquet")  # a small log keeps the job's runs short
    synthetic.to_spark(spark, synthetic.SyntheticLogSpec(lines=3_000, seed=7)).write.parquet(log)
    archive = tmp_path / "archives" / "classes.jsa"
    made = _cli("class-archive", "--env", "test", "--archive", str(archive), "--input", log, cwd=tmp_path)
    assert made.returncode == 0, made.stderr
    assert archive.stat().st_size > 10 * 2**20  # thousands of classes
    assert sorted(p.name for p in archive.parent.iterdir()) == ["classes.jsa"]  # no partial file left

    # -Xshare:on makes a JVM that cannot map the archive fail to start instead of ignoring it
    conf = tmp_path / "conf"
    shutil.copytree(str(default_conf_dir()), conf)
    with open(conf / "test.toml", "a", encoding="utf-8") as profile:  # [spark] is its last table
        profile.write('\n"spark.driver.extraJavaOptions" = "-Xshare:on"\n')
    common = ("run", "--env", "test", "--conf-dir", str(conf), "--input", log, "--log-level", "INFO")

    def run_with(candidate, output):
        variables = {"INSIDERS_SPARK__LAUNCH__CLASS_ARCHIVE": str(candidate)}
        return _cli(*common, "--output", str(tmp_path / output), env=variables, cwd=tmp_path)

    used = run_with(archive, "out")
    assert used.returncode == 0, used.stderr
    assert f"class archive {archive}" in used.stderr

    not_an_archive = tmp_path / "other.jsa"
    not_an_archive.write_bytes(b"not a class archive\n" * 1000)
    refused = run_with(not_an_archive, "out2")
    assert refused.returncode == 1
    assert "shared archive" in refused.stdout + refused.stderr
