"""The driver JVM's start (``spark.launch``): the options chosen for an input, what the plan imports
before the JVM starts, and a class archive made in a real JVM and taken by the next one."""

from __future__ import annotations

import json
import logging
import os
import shutil
import subprocess
import sys
import tomllib
from dataclasses import dataclass
from pathlib import Path

import pytest

from insiders_spark.core.config import default_conf_dir
from insiders_spark.spark.launch import (
    QUICK_JIT_CODE_CACHE,
    QUICK_JIT_OPTION,
    QUICK_JIT_OPTIONS,
    import_in_background,
    plan_launch,
)
from tests import background, support


def _write(path, size):
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(b"x" * size)
    return path


def test_the_quick_jit_is_chosen_up_to_the_limit_only(tmp_path):
    log = str(_write(tmp_path / "log.parquet", 1000))
    for limit, quick in ((999, False), (1000, True), (0, False)):
        plan = plan_launch(support.config({"input.path": log, "launch.quick_jit_max_bytes": limit}))
        assert plan.input_bytes == 1000
        assert plan.quick_jit is quick
        # with it, the code cache the full JIT would have (C1 alone reserves 48 MB, which a run filled)
        assert plan.java_options == (QUICK_JIT_OPTIONS if quick else ())
        assert (QUICK_JIT_OPTION in plan.java_options) is (QUICK_JIT_CODE_CACHE in plan.java_options) is quick
        assert ("quick JIT on" if quick else "quick JIT off") in plan.describe()
    # the synthetic log counts 16 bytes a line; a remote input's size is unknown: never quick
    synthetic = {"input.path": "", "synthetic.lines": 1000}
    assert plan_launch(support.config({**synthetic, "launch.quick_jit_max_bytes": 16_000})).quick_jit
    assert not plan_launch(support.config({**synthetic, "launch.quick_jit_max_bytes": 15_999})).quick_jit
    remote = plan_launch(support.config({"input.path": "s3a://lake/log/", "launch.quick_jit_max_bytes": 10**12}))
    assert remote.input_bytes is None and not remote.quick_jit and "input unknown" in remote.describe()


def test_a_class_archive_is_passed_only_when_it_exists(tmp_path, caplog):
    archive = tmp_path / "classes.jsa"
    settings = {"launch.class_archive": str(archive), "launch.quick_jit_max_bytes": 0}
    with caplog.at_level(logging.WARNING, logger="insiders_spark.spark.launch"):
        missing = plan_launch(support.config(settings))
    assert missing.class_archive is None and missing.java_options == ()
    assert "does not exist" in caplog.text and "class-archive" in caplog.text

    _write(archive, 10)
    present = plan_launch(support.config(settings))
    assert present.java_options == (f"-XX:SharedArchiveFile={archive.resolve()}",)
    assert str(archive.resolve()) in present.describe()


def test_planning_the_start_imports_nothing_the_background_thread_imports(tmp_path):
    """The command line plans the JVM's start before starting it: what it imports first holds the
    start back (pandas, through pyarrow and the synthetic log, cost 0.7 s there). A fresh
    interpreter shows what the CLI and the plan pull in."""
    log = _write(tmp_path / "log.parquet", 1000)
    probe = (
        "import sys\n"
        "import insiders_spark.cli\n"
        "from insiders_spark.core.config import load_config\n"
        "from insiders_spark.spark.launch import plan_launch\n"
        f"plan = plan_launch(load_config(env='test', environ={{}}, overrides={{'input.path': {str(log)!r}}}))\n"
        "assert plan.input_bytes == 1000, plan\n"
        "heavy = ('pandas', 'pyarrow', 'numpy', 'pyspark.ml', 'insiders_spark.storage', 'insiders_spark.runs')\n"
        "print(' '.join(sorted(m for m in heavy if m in sys.modules)))\n"
    )
    done = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, check=True)
    assert done.stdout.strip() == ""


def test_run_modules_are_imported_in_a_thread_and_a_failing_one_is_left_to_the_caller(tmp_path, monkeypatch):
    # two modules made for the test: each records the thread that imported it; one is broken
    (tmp_path / "launch_probe_ok.py").write_text("import threading\nIMPORTED_BY = threading.current_thread().name\n")
    (tmp_path / "launch_probe_broken.py").write_text("raise ImportError('broken on purpose')\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    for name in ("launch_probe_ok", "launch_probe_broken"):
        monkeypatch.delitem(sys.modules, name, raising=False)

    thread = import_in_background(("launch_probe_broken", "launch_probe_ok"))
    thread.join(timeout=30)

    assert not thread.is_alive()
    assert sys.modules["launch_probe_ok"].IMPORTED_BY == thread.name != "MainThread"
    assert "launch_probe_broken" not in sys.modules
    with pytest.raises(ImportError, match="broken on purpose"):  # the caller's own import says why
        __import__("launch_probe_broken")


def test_the_class_archive_command_needs_a_path():
    done = support.run_cli(["class-archive", "--env", "test"])
    assert done.status == 2
    assert "--archive PATH" in done.stderr and "class_archive" in done.stderr


# --- a real JVM: the archive written, taken, refused -----------------------------------------

# One fresh process (the suite's JVM is already running) makes two archives with write_class_archive,
# the same dump, wait and rename as the `class-archive` command: one whose workload fails, then one
# whose workload reports the JVM it ran in. Its session takes the profile's JVM options too: the
# benchmark profile's collector and JIT settings are given to it, and the JVM says what it runs with.
ARCHIVE_SCRIPT = """
import json, sys
from insiders_spark.core.config import load_config
from insiders_spark.spark.launch import write_class_archive

failed_target, target, java_options = sys.argv[1:4]
seen = {}

def failing(spark):
    spark.range(10).count()
    raise RuntimeError("the workload failed")

def reporting(spark):
    spark.range(10_000).selectExpr("id % 7 AS k").groupBy("k").count().collect()
    jvm = spark._jvm
    beans = jvm.java.lang.management.ManagementFactory.getGarbageCollectorMXBeans()
    seen["collectors"] = sorted(beans.get(i).getName() for i in range(beans.size()))
    diagnostics = jvm.java.lang.management.ManagementFactory.getPlatformMXBean(
        jvm.java.lang.Class.forName("com.sun.management.HotSpotDiagnosticMXBean")
    )
    for name in ("CompileThresholdScaling", "FreqInlineSize", "InlineSmallCode"):
        seen[name] = str(diagnostics.getVMOption(name).getValue())

config = load_config(env="test", environ={}, overrides={"spark.spark.driver.extraJavaOptions": java_options})
try:
    write_class_archive(config, failed_target, failing)
except RuntimeError as error:
    seen["failure"] = str(error)
made = write_class_archive(config, target, reporting)
seen["bytes"] = made.bytes
print(json.dumps(seen))
"""


@dataclass(frozen=True)
class Archives:
    folder: Path
    seen: dict  # what the script's JVMs reported
    bench: str  # conf/bench.toml's spark.driver.extraJavaOptions
    used: subprocess.CompletedProcess  # a CLI run started from the archive
    refused: subprocess.CompletedProcess  # a CLI run given a file that is no archive
    out: Path


@background.job("class archive", wanted=lambda item: "archives" in getattr(item, "fixturenames", ()))
def _make_and_use_archives(folder: Path) -> Archives:
    """The archive script in a fresh process, then two runs through the CLI with -Xshare:on (a JVM
    that cannot map the archive fails to start instead of ignoring it); their input is a user's bad
    night: a later file's header does not match the first one's, which Spark finds while it reads."""
    bench = tomllib.loads((default_conf_dir() / "bench.toml").read_text())["spark"]["spark.driver.extraJavaOptions"]
    made = subprocess.run(
        [sys.executable, "-c", ARCHIVE_SCRIPT,
         str(folder / "failed" / "classes.jsa"), str(folder / "ok" / "classes.jsa"), bench],
        capture_output=True, text=True, cwd=folder, timeout=600,  # a JVM that fails to start writes hs_err there
    )  # fmt: skip
    assert made.returncode == 0, made.stderr[-4000:]
    conf = folder / "conf"
    shutil.copytree(str(default_conf_dir()), conf)
    with open(conf / "test.toml", "a", encoding="utf-8") as profile:  # [spark] is its last table
        profile.write('\n"spark.driver.extraJavaOptions" = "-Xshare:on"\n')
    drops = folder / "drops"
    support.write_csv(drops / "2011-01-01.csv", [support.csv_line("536365")])
    support.write_csv(
        drops / "2011-01-02.csv", [support.csv_line("X1")], header=support.HEADER.replace("Country", "Land")
    )
    not_an_archive = folder / "other.jsa"
    not_an_archive.write_bytes(b"not a class archive\n" * 1000)

    def run_with(candidate):
        return subprocess.run(
            [sys.executable, "-m", "insiders_spark.cli", "run", "--env", "test", "--conf-dir", str(conf),
             "--input", str(drops), "--log-level", "INFO", "--output", str(folder / "out")],
            capture_output=True, text=True, cwd=folder, timeout=600,
            env={**os.environ, "INSIDERS_SPARK__LAUNCH__CLASS_ARCHIVE": str(candidate)},
        )  # fmt: skip

    used = run_with(folder / "ok" / "classes.jsa")
    refused = run_with(not_an_archive)
    return Archives(folder, json.loads(made.stdout.strip().splitlines()[-1]), bench, used, refused, folder / "out")


@pytest.fixture(scope="module")
def archives() -> Archives:
    return background.result("class archive")


@pytest.mark.spark
def test_a_class_archive_is_written_whole_and_a_failed_run_leaves_none(archives):
    archive = archives.folder / "ok" / "classes.jsa"
    assert archives.seen["bytes"] == archive.stat().st_size > 10 * 2**20  # thousands of classes
    assert sorted(p.name for p in archive.parent.iterdir()) == ["classes.jsa"]  # no partial file left
    assert archives.seen["failure"] == "the workload failed"
    assert list((archives.folder / "failed").iterdir()) == []  # a failed run leaves no archive, whole or partial


@pytest.mark.spark
def test_the_profiles_jvm_options_are_the_driver_jvms(archives):
    """conf/bench.toml's collector and JIT settings, as the JVM itself reports them."""
    seen = archives.seen
    assert archives.bench.split() == [
        "-XX:+UseParallelGC", "-XX:CompileThresholdScaling=3", "-XX:FreqInlineSize=150", "-XX:InlineSmallCode=1000",
    ]  # fmt: skip
    assert seen["collectors"] == ["PS MarkSweep", "PS Scavenge"]  # the parallel collector's
    assert float(seen["CompileThresholdScaling"]) == 3.0
    assert (int(seen["FreqInlineSize"]), int(seen["InlineSmallCode"])) == (150, 1000)


@pytest.mark.spark
def test_a_run_starts_its_jvm_from_the_archive_and_a_bad_archive_is_refused(archives):
    """The run from the archive ends, as a user sees it (the JVM's own output included), with one
    paragraph naming the file, no Java stack trace and no output; the JVM given a file that is no
    archive does not start at all."""
    used, refused = archives.used, archives.refused
    assert f"class archive {archives.folder / 'ok' / 'classes.jsa'}" in used.stderr
    assert used.returncode == 1, used.stderr[-4000:]
    (error,) = [line for line in used.stderr.splitlines() if line.startswith("insiders-spark: error: ")]
    assert "2011-01-02.csv" in error and "expected column 'Country' but found 'Land'" in error
    assert "Traceback" not in used.stderr and "at org.apache" not in used.stderr
    support.assert_nothing_published(archives.out)
    assert refused.returncode == 1 and "2011-01-02.csv" not in refused.stderr  # it never read the input
    assert "shared archive" in refused.stdout + refused.stderr
