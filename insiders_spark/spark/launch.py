"""How the driver JVM is started when Python starts it (local runs): a cold start costs less.

A run on a small input spends most of its time starting the JVM, loading classes and compiling
code it runs once; two standard JVM features cut that, chosen per run from ``[launch]``:

- a **class-data sharing archive** (AppCDS): the classes a run loads, parsed and verified once
  and mapped from one file at start-up. ``write_class_archive`` (``insiders-spark
  class-archive``) makes it by running the job on a small log in a JVM that dumps its classes on
  exit. The archive belongs to the Java build and the class path it was made with: after an
  upgrade of either, the JVM says it cannot use it and starts as before (make a new one).
- the **quick JIT** (``-XX:TieredStopAtLevel=1``, the client compiler only, with the full JIT's
  code cache) for inputs up to ``quick_jit_max_bytes``: it compiles far less, which a short run
  gains and a long one loses (measured in benchmarks/README.md).

Long runs take their JVM options (the garbage collector, the JIT's thresholds) from the
profile's ``spark.driver.extraJavaOptions``: docs/performance.md says which and why.

Under ``spark-submit`` the JVM is already running: none of this applies.

Independently of how the JVM starts, ``import_in_background`` imports the run's heavy Python
modules while the session starts (``cli.run_job``), so the two waits overlap.
"""

from __future__ import annotations

import importlib
import logging
import os
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from insiders_spark.core.paths import local_input_bytes

if TYPE_CHECKING:
    from pyspark.sql import SparkSession

log = logging.getLogger(__name__)

QUICK_JIT_OPTION = "-XX:TieredStopAtLevel=1"
# The client compiler alone reserves a code cache too small for a run with its stability re-fits
# (docs/performance.md, the quick JIT); the tiered default is reserved, not committed, space.
QUICK_JIT_CODE_CACHE = "-XX:ReservedCodeCacheSize=240m"
QUICK_JIT_OPTIONS = (QUICK_JIT_OPTION, QUICK_JIT_CODE_CACHE)
# What a run imports after its session starts, the slowest first: the pipeline (pyspark.ml, numpy,
# scipy, pandas), scikit-learn's metrics (the silhouette cross-check) and matplotlib (the report's
# charts; with the backend the report sets).
RUN_MODULES = ("insiders_spark.runs", "sklearn.metrics", "matplotlib", "matplotlib.pyplot")
# The embedded synthetic log has no file to measure: it counts as its lines times the parquet
# size of a line of the benchmark's logs.
SYNTHETIC_BYTES_PER_LINE = 16
# The lines of the synthetic log an archive is made from when no sample input is given: enough
# for every step of the job (tree, KMeans, stability runs, report) to run, so their classes load.
ARCHIVE_SYNTHETIC_LINES = 20_000


def import_in_background(modules: tuple[str, ...] = RUN_MODULES) -> threading.Thread:
    """Start importing ``modules`` in a thread, for the caller to ``join`` before it uses them.

    The main thread spends the session's start-up waiting for the JVM (process start, then py4j
    calls on a socket), which leaves the interpreter free for the imports. Joining before any use
    keeps each module to one importing thread. A module that fails to import here is left alone:
    the caller's own import raises its error where the run needs it.
    """

    def work() -> None:
        for name in modules:
            try:
                module = importlib.import_module(name)
                if name == "matplotlib":
                    module.use("Agg")  # before pyplot, as the report does
            except Exception as error:  # the caller's import reports it with its own traceback
                log.debug("background import of %s failed: %s", name, error)

    thread = threading.Thread(target=work, name="insiders-spark-imports", daemon=True)
    thread.start()
    return thread


@dataclass(frozen=True)
class LaunchPlan:
    """The JVM options of one run and why."""

    java_options: tuple[str, ...]
    input_bytes: int | None  # None: not a local input (or nothing matches; the read will say so)
    quick_jit: bool
    class_archive: str | None  # the archive passed to the JVM (it exists)

    def describe(self) -> str:
        size = "unknown" if self.input_bytes is None else f"{self.input_bytes / 2**20:,.1f} MiB"
        archive = self.class_archive or "none"
        jit = "quick JIT on" if self.quick_jit else "quick JIT off"
        return f"driver JVM: input {size}, {jit}, class archive {archive}"


def input_bytes(config) -> int | None:
    """The input's size for the launch decision: the files', or the synthetic log's estimate."""
    if not config.input.path:
        return config.synthetic.lines * SYNTHETIC_BYTES_PER_LINE
    return local_input_bytes(config.input.path)


def _quick_jit(config, size: int | None) -> bool:
    limit = config.launch.quick_jit_max_bytes
    return limit > 0 and size is not None and size <= limit


def run_options(quick: bool) -> list[str]:
    """The JVM options of a run besides its class archive (the archive's own run starts alike)."""
    return list(QUICK_JIT_OPTIONS) if quick else []


def plan_launch(config) -> LaunchPlan:
    """The driver JVM options for ``config`` (``[launch]``) and its input."""
    size = input_bytes(config)
    quick = _quick_jit(config, size)
    options: list[str] = []
    archive = None
    if config.launch.class_archive:
        candidate = Path(config.launch.class_archive).expanduser().resolve()
        if candidate.is_file():
            archive = str(candidate)
            options.append(f"-XX:SharedArchiveFile={archive}")
        else:
            log.warning(
                "launch.class_archive %s does not exist: starting without it (make it with "
                "'insiders-spark class-archive')",
                candidate,
            )
    options.extend(run_options(quick))
    return LaunchPlan(java_options=tuple(options), input_bytes=size, quick_jit=quick, class_archive=archive)


@dataclass(frozen=True)
class ArchiveResult:
    path: Path
    bytes: int
    seconds: float


def write_class_archive(config, archive: str | Path, workload: Callable[[SparkSession], object]) -> ArchiveResult:
    """Run ``workload`` (the CLI's: the job once, with ``config``'s input, output and profile) in
    a JVM that writes the classes it loaded to ``archive`` when it exits; wait for that exit, then
    move the file into place in one step, so a run starting meanwhile sees the old archive or the
    new one, never half of one. If the workload fails, nothing is kept.

    Call it in a process that has not started a JVM yet (the CLI command does).
    """
    from insiders_spark.spark import classic
    from insiders_spark.spark.session import build_spark_session

    if classic.jvm_is_running():
        raise RuntimeError("a JVM is already running in this process: the archive needs a fresh one")
    target = Path(archive).expanduser().resolve()
    target.parent.mkdir(parents=True, exist_ok=True)
    partial = target.with_name(f".{target.name}.{os.getpid()}.partial")
    started = time.monotonic()
    # -Xlog: the dump lists every class it skips (signed jars, generated classes) as a warning
    dump = [f"-XX:ArchiveClassesAtExit={partial}", "-Xlog:cds*=error"]
    quick = _quick_jit(config, input_bytes(config))
    dump.extend(run_options(quick))  # as runs start
    spark = build_spark_session(config.job.app_name, config.spark, java_options=dump)
    try:
        workload(spark)
    except BaseException:
        classic.stop_jvm(spark, write_archive=False)  # the classes of a failed run are no archive to keep
        partial.unlink(missing_ok=True)
        raise
    classic.stop_jvm(spark, write_archive=True)
    if not partial.is_file() or partial.stat().st_size == 0:
        partial.unlink(missing_ok=True)
        raise RuntimeError(f"the JVM wrote no class archive to {partial}")
    os.replace(partial, target)
    return ArchiveResult(path=target, bytes=target.stat().st_size, seconds=time.monotonic() - started)
