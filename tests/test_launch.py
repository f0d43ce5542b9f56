"""The driver JVM's start (insiders_spark.launch): input sizes, the options chosen, and a class
archive made by the command and taken by a real JVM."""

import logging
import os
import shutil
import subprocess
import sys

import pytest

from insiders_spark.core.config import default_conf_dir, load_config
from insiders_spark.core.errors import ConfigError
from insiders_spark.core.paths import local_input_bytes
from insiders_spark.spark.launch import (
    QUICK_JIT_CODE_CACHE,
    QUICK_JIT_OPTION,
    QUICK_JIT_OPTIONS,
    import_in_background,
    plan_launch,
)


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

    assert local_input_bytes(str(drop)) == 350
    assert local_input_bytes(str(drop / "*.csv")) == 100
    assert local_input_bytes(first.as_uri()) == 100
    assert local_input_bytes(str(tmp_path / "missing")) is None
    assert local_input_bytes("s3a://lake/transactions/") is None


def _config(**overrides):
    return load_config(env="test", environ={}, overrides=overrides)


def test_the_quick_jit_is_chosen_up_to_the_limit_only(tmp_path):
    log = str(_write(tmp_path / "log.parquet", 1000))
    for limit, quick in ((999, False), (1000, True), (0, False)):
        plan = plan_launch(_config(**{"input.path": log, "launch.quick_jit_max_bytes": limit}))
        assert plan.input_bytes == 1000
        assert plan.quick_jit is quick
        assert (QUICK_JIT_OPTION in plan.java_options) is quick
        # with it, the code cache the full JIT would have (C1 alone reserves 48 MB, which a run filled)
        assert (QUICK_JIT_CODE_CACHE in plan.java_options) is quick
    # the synthetic log counts 16 bytes a line; a remote input's size is unknown: never quick
    synthetic = {"input.path": "", "synthetic.lines": 1000}
    assert plan_launch(_config(**synthetic, **{"launch.quick_jit_max_bytes": 16_000})).quick_jit
    assert not plan_launch(_config(**synthetic, **{"launch.quick_jit_max_bytes": 15_999})).quick_jit
    remote = plan_launch(_config(**{"input.path": "s3a://lake/log/", "launch.quick_jit_max_bytes": 10**12}))
    assert remote.input_bytes is None and not remote.quick_jit


def test_planning_the_start_imports_nothing_the_background_thread_imports(tmp_path):
    """The plan runs before the JVM starts: what it imports holds the start back (pandas, through
    pyarrow and the synthetic log, cost 0.7 s there). A fresh interpreter shows what it pulls in."""
    log = _write(tmp_path / "log.parquet", 1000)
    probe = (
        "import sys\n"
        "from insiders_spark import launch\n"
        "from insiders_spark.config import load_config\n"
        f"plan = plan_launch(load_config(env='test', environ={{}}, overrides={{'input.path': {str(log)!r}}}))\n"
        "assert plan.input_bytes == 1000, plan\n"
        "print(' '.join(sorted(m for m in ('pandas', 'pyarrow', 'numpy', 'insiders_spark.io', 'insiders_spark.synthetic')"
        " if m in sys.modules)))\n"
    )
    done = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, check=True)
    assert done.stdout.strip() == ""


def test_a_class_archive_is_passed_only_when_it_exists(tmp_path, caplog):
    archive = tmp_path / "classes.jsa"
    settings = {
        "launch.class_archive": str(archive), "launch.quick_jit_max_bytes": 0, "launch.garbage_collector": "",
        "jit_threshold_scaling": 1.0, "jit_freq_inline_size": 0, "jit_inline_small_code": 0,
    }
    with caplog.at_level(logging.WARNING, logger="insiders_spark.launch"):
        missing = plan_launch(_config(**settings))
    assert missing.class_archive is None and missing.java_options == ()
    assert "does not exist" in caplog.text and "class-archive" in caplog.text

    _write(archive, 10)
    present = plan_launch(_config(**settings))
    assert present.java_options == (f"-XX:SharedArchiveFile={archive.resolve()}",)
    assert str(archive.resolve()) in present.describe()


def test_the_garbage_collector_is_chosen_unless_the_profile_chooses_one(caplog):
    assert load_config(env="local", environ={}).launch.garbage_collector == "parallel"  # base.toml
    full_jit = {"launch.quick_jit_max_bytes": 0, "jit_threshold_scaling": 1.0, "jit_freq_inline_size": 0, "jit_inline_small_code": 0}
    for name, option in (("parallel", "-XX:+UseParallelGC"), ("g1", "-XX:+UseG1GC"), ("serial", "-XX:+UseSerialGC")):
        plan = plan_launch(_config(**{"launch.garbage_collector": name, **full_jit}))
        assert plan.java_options == (option,) and plan.garbage_collector == name
        assert f"garbage collector {name}" in plan.describe()
    default = plan_launch(_config(**{"launch.garbage_collector": "", **full_jit}))
    assert default.java_options == () and default.garbage_collector is None

    # the profile's own choice wins: two collectors and the JVM would refuse to start
    own = {"launch.garbage_collector": "parallel", "spark.spark.driver.extraJavaOptions": "-Xss4m -XX:+UseZGC"}
    with caplog.at_level(logging.INFO, logger="insiders_spark.launch"):
        kept = plan_launch(_config(**own))
    assert not any("GC" in option for option in kept.java_options) and kept.garbage_collector is None
    assert "-XX:+UseZGC" in caplog.text and "not applied" in caplog.text
    # an option that merely mentions GC is not a choice of collector
    logging_only = {"launch.garbage_collector": "serial", "spark.spark.driver.extraJavaOptions": "-Xlog:gc:file=gc.log"}
    assert plan_launch(_config(**logging_only)).garbage_collector == "serial"

    with pytest.raises(ConfigError, match="garbage_collector = 'zgc'"):
        _config(**{"launch.garbage_collector": "zgc"})


def test_the_jit_thresholds_are_scaled_for_full_jit_runs_only(tmp_path, caplog):
    assert load_config(env="local", environ={}).launch.jit_threshold_scaling == 3.0  # base.toml
    log = str(_write(tmp_path / "log.parquet", 1000))
    no_collector = {"input.path": log, "launch.garbage_collector": "", "jit_freq_inline_size": 0, "jit_inline_small_code": 0}
    option = "-XX:CompileThresholdScaling=3"

    full = plan_launch(_config(**no_collector, **{"launch.quick_jit_max_bytes": 999}))
    assert full.java_options == (option,) and full.jit_threshold_scaling == 3.0
    assert "quick JIT off (JIT thresholds x3)" in full.describe()
    # the quick JIT is the short runs' choice: its thresholds are the JVM's
    quick = plan_launch(_config(**no_collector, **{"launch.quick_jit_max_bytes": 1000}))
    assert quick.java_options == QUICK_JIT_OPTIONS and quick.jit_threshold_scaling is None
    unscaled = plan_launch(_config(**no_collector, **{"launch.quick_jit_max_bytes": 0, "jit_threshold_scaling": 1.0}))
    assert unscaled.java_options == () and "quick JIT off," in unscaled.describe()
    halved = plan_launch(_config(**no_collector, **{"launch.quick_jit_max_bytes": 0, "jit_threshold_scaling": 0.5}))
    assert halved.java_options == ("-XX:CompileThresholdScaling=0.5",)

    # the profile's own setting wins (the JVM would take the last one silently)
    own = {**no_collector, "launch.quick_jit_max_bytes": 0, "spark.spark.driver.extraJavaOptions": "-XX:CompileThresholdScaling=2"}
    with caplog.at_level(logging.INFO, logger="insiders_spark.launch"):
        kept = plan_launch(_config(**own))
    assert kept.java_options == () and kept.jit_threshold_scaling is None
    assert "not applied" in caplog.text

    for wrong in (0, -1.0):
        with pytest.raises(ConfigError, match="jit_threshold_scaling"):
            _config(**{"jit_threshold_scaling": wrong})


def test_the_jit_inlines_less_in_full_jit_runs_only(tmp_path, caplog):
    base = load_config(env="local", environ={}).launch
    assert (base.jit_freq_inline_size, base.jit_inline_small_code) == (150, 1000)  # base.toml
    log = str(_write(tmp_path / "log.parquet", 1000))
    plain = {"input.path": log, "launch.garbage_collector": "", "jit_threshold_scaling": 1.0}
    limits = ("-XX:FreqInlineSize=150", "-XX:InlineSmallCode=1000")

    full = plan_launch(_config(**plain, **{"launch.quick_jit_max_bytes": 999}))
    assert full.java_options == limits and full.jit_inlining == limits
    assert "quick JIT off (-XX:FreqInlineSize=150, -XX:InlineSmallCode=1000)" in full.describe()
    quick = plan_launch(_config(**plain, **{"launch.quick_jit_max_bytes": 1000}))
    assert quick.java_options == QUICK_JIT_OPTIONS and quick.jit_inlining == ()
    one = plan_launch(_config(**plain, **{"launch.quick_jit_max_bytes": 0, "jit_inline_small_code": 0}))
    assert one.java_options == ("-XX:FreqInlineSize=150",)

    # the profile's own limit wins, the other one still applies
    own = {**plain, "launch.quick_jit_max_bytes": 0, "spark.spark.driver.extraJavaOptions": "-XX:InlineSmallCode=2000"}
    with caplog.at_level(logging.INFO, logger="insiders_spark.launch"):
        kept = plan_launch(_config(**own))
    assert kept.java_options == ("-XX:FreqInlineSize=150",)
    assert "-XX:InlineSmallCode=2000" in caplog.text and "jit_inline_small_code = 1000 is not applied" in caplog.text

    for key in ("jit_freq_inline_size", "jit_inline_small_code"):
        with pytest.raises(ConfigError, match=key):
            _config(**{key: -1})


def _cli(*args, cwd, env=None):
    return _python("-m", "insiders_spark.cli", *args, cwd=cwd, env=env)


def _python(*args, cwd, env=None):
    return subprocess.run(
        [sys.executable, *args],
        capture_output=True,
        text=True,
        env={**os.environ, **(env or {})},
        cwd=cwd,  # a JVM that fails to start writes its hs_err file there
        timeout=600,
    )


# A fresh process (the suite's JVM is already running): write_class_archive with a short workload,
# the same dump, wait and rename as the command, which runs the whole job (benchmarks/run.py makes
# the benchmark's archive with it).
ARCHIVE_SCRIPT = """
import sys
from insiders_spark import launch
from insiders_spark.config import load_config

def workload(spark):
    spark.range(10_000).selectExpr("id % 7 AS k").groupBy("k").count().collect()
    if sys.argv[2] == "fail":
        raise RuntimeError("the workload failed")

write_class_archive(load_config(env="test"), sys.argv[1], workload)
"""


def test_a_class_archive_is_written_whole_and_taken_by_the_jvm(tmp_path):
    archive = tmp_path / "archives" / "classes.jsa"
    made = _python("-c", ARCHIVE_SCRIPT, str(archive), "ok", cwd=tmp_path)
    assert made.returncode == 0, made.stderr
    assert archive.stat().st_size > 10 * 2**20  # thousands of classes
    assert sorted(p.name for p in archive.parent.iterdir()) == ["classes.jsa"]  # no partial file left

    failed = _python("-c", ARCHIVE_SCRIPT, str(tmp_path / "other" / "classes.jsa"), "fail", cwd=tmp_path)
    assert failed.returncode == 1 and "the workload failed" in failed.stderr
    assert list((tmp_path / "other").iterdir()) == []  # a failed run leaves no archive, whole or partial

    # a run through the CLI starts its JVM from the archive: -Xshare:on makes a JVM that cannot map
    # it fail to start instead of ignoring it. The input is missing, so a JVM that did start ends
    # the run at once with the input's message (whole runs from an archive: benchmarks/results/p4)
    conf = tmp_path / "conf"
    shutil.copytree(str(default_conf_dir()), conf)
    with open(conf / "test.toml", "a", encoding="utf-8") as profile:  # [spark] is its last table
        profile.write('\n"spark.driver.extraJavaOptions" = "-Xshare:on"\n')
    missing = tmp_path / "no-such-log"
    common = ("run", "--env", "test", "--conf-dir", str(conf), "--input", str(missing), "--log-level", "INFO")

    def run_with(candidate):
        variables = {"INSIDERS_SPARK__LAUNCH__CLASS_ARCHIVE": str(candidate)}
        return _cli(*common, "--output", str(tmp_path / "out"), env=variables, cwd=tmp_path)

    used = run_with(archive)
    assert f"class archive {archive}" in used.stderr
    assert used.returncode == 1 and f"input {str(missing)!r} does not exist" in used.stderr, used.stderr

    not_an_archive = tmp_path / "other.jsa"
    not_an_archive.write_bytes(b"not a class archive\n" * 1000)
    refused = run_with(not_an_archive)
    assert refused.returncode == 1 and "does not exist" not in refused.stderr
    assert "shared archive" in refused.stdout + refused.stderr


def test_the_class_archive_command_needs_a_path(tmp_path):
    result = _cli("class-archive", "--env", "test", cwd=tmp_path)
    assert result.returncode == 2
    assert "--archive PATH" in result.stderr and "class_archive" in result.stderr


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


# A fresh process: the session's JVM is started with the plan's options (the suite's JVM is already
# running), and the JVM itself names the collectors it runs, the JIT's threshold scaling and
# its inlining limits.
COLLECTOR_SCRIPT = """
from insiders_spark import launch
from insiders_spark.config import load_config
from insiders_spark.session import build_spark_session

config = load_config(env="test", overrides={"launch.garbage_collector": "parallel", "launch.quick_jit_max_bytes": 0})
spark = build_spark_session("collector", config.spark, java_options=plan_launch(config).java_options)
beans = spark._jvm.java.lang.management.ManagementFactory.getGarbageCollectorMXBeans()
print(sorted(beans.get(i).getName() for i in range(beans.size())))
jvm = spark._jvm
diagnostics = jvm.java.lang.management.ManagementFactory.getPlatformMXBean(
    jvm.java.lang.Class.forName("com.sun.management.HotSpotDiagnosticMXBean")
)
for name in ("CompileThresholdScaling", "FreqInlineSize", "InlineSmallCode"):
    print(diagnostics.getVMOption(name).getValue())
spark.stop()
"""


def test_the_chosen_collector_and_jit_thresholds_are_the_driver_jvms(tmp_path):
    ran = _python("-c", COLLECTOR_SCRIPT, cwd=tmp_path)
    assert ran.returncode == 0, ran.stderr
    collectors, scaling, freq_inline, small_code = ran.stdout.strip().splitlines()[-4:]
    assert collectors == "['PS MarkSweep', 'PS Scavenge']"  # the parallel collector's
    assert float(scaling) == 3.0  # base.toml's, for a run without the quick JIT
    assert (int(freq_inline), int(small_code)) == (150, 1000)
