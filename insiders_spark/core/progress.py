"""The driver's log and stage timing: one line when a stage starts, one when it ends.

The log is text (``LOG_FORMAT``) or JSON lines (``job.log_format``): one object per line with the
keys and order of Spark's structured logging (``ts, level, msg, context, exception, logger``), so
the driver's Python log and the JVM's log (``conf/log4j2-json.properties``) parse alike.
"""

from __future__ import annotations

import datetime as dt
import json
import logging
import time
import traceback
from collections.abc import Callable, Iterator, Mapping
from concurrent.futures import Future, ThreadPoolExecutor
from contextlib import AbstractContextManager, contextmanager, nullcontext
from dataclasses import dataclass, field
from typing import TypeVar

T = TypeVar("T")

LOG_FORMAT = "%(asctime)s %(levelname)s %(name)s: %(message)s"
TEXT_LOGS = "text"
JSON_LOGS = "json"
LOG_FORMATS = (TEXT_LOGS, JSON_LOGS)
# Python's level names as log4j writes them, so one filter (level == "WARN") finds both logs' lines
LOG4J_LEVELS = {"WARNING": "WARN", "CRITICAL": "FATAL"}


@dataclass(frozen=True)
class JvmLogging:
    """How Spark's JVMs log in one of the ``LOG_FORMATS``: the log4j2 file (in ``conf/``) and the
    Spark settings that go with it. The command line and scripts/submit.sh both read it here."""

    file: str
    settings: Mapping[str, str] = field(default_factory=dict)


JVM_LOGGING = {
    TEXT_LOGS: JvmLogging("log4j2.properties"),
    JSON_LOGS: JvmLogging("log4j2-json.properties", {"spark.log.structuredLogging.enabled": "true"}),
}
# The drivers the job starts itself write each task failure and retry on one line (the job explains
# the failure once, in its own words); any other JVM (a cluster's executors) writes stack traces too.
# The property chooses the appender of log4j2.properties' task loggers.
DRIVER_TASK_LOG = "-Dinsiders_spark.task_log=tasks"


class JsonLogFormatter(logging.Formatter):
    """A log record as one JSON object on one line, in the shape of Spark's structured logging."""

    def format(self, record: logging.LogRecord) -> str:
        stamp = dt.datetime.fromtimestamp(record.created, dt.UTC)
        entry: dict[str, object] = {
            "ts": f"{stamp:%Y-%m-%dT%H:%M:%S}.{int(record.msecs):03d}Z",
            "level": LOG4J_LEVELS.get(record.levelname, record.levelname),
            "msg": record.getMessage(),
            "context": {"thread": record.threadName},
        }
        if record.exc_info and record.exc_info[1] is not None:
            error = record.exc_info[1]
            entry["exception"] = {
                "class": f"{type(error).__module__}.{type(error).__qualname__}",
                "msg": str(error),
                "stacktrace": [
                    {"method": frame.name, "file": frame.filename, "line": frame.lineno}
                    for frame in traceback.extract_tb(error.__traceback__)
                ],
            }
        entry["logger"] = record.name
        return json.dumps(entry, ensure_ascii=False, separators=(",", ":"), default=str)


def configure_logging(level: str, log_format: str = TEXT_LOGS) -> None:
    """Configure the driver's Python logging once, from the entry point."""
    handler = logging.StreamHandler()
    if log_format == JSON_LOGS:
        handler.setFormatter(JsonLogFormatter())
    else:
        handler.setFormatter(logging.Formatter(LOG_FORMAT, datefmt="%H:%M:%S"))
    logging.basicConfig(level=level.upper(), handlers=[handler], force=True)
    logging.captureWarnings(log_format == JSON_LOGS)  # Python's warnings as records, not loose text
    logging.getLogger("py4j").setLevel(logging.WARNING)


# Names the Spark jobs started inside a stage (``spark.jobs.named_jobs``): a context manager per stage
JobLabel = Callable[[str], AbstractContextManager[object]]


class StageTimer:
    """Wall-clock durations of the job's stages, in the order they ran.

    ``label_jobs`` names the Spark jobs each stage starts after the stage, so the Spark UI, the
    event log and the history server tell which part of the run a job belongs to.
    """

    def __init__(self, logger: logging.Logger, *, label_jobs: JobLabel | None = None) -> None:
        self._log = logger
        self._label_jobs = label_jobs
        self.durations: dict[str, float] = {}

    @contextmanager
    def stage(self, name: str) -> Iterator[None]:
        self._log.info("stage %s: started", name)
        started = time.perf_counter()
        try:
            with self._label_jobs(name) if self._label_jobs else nullcontext():
                yield
        except BaseException:
            self._log.error("stage %s: failed after %.1f s", name, time.perf_counter() - started)
            raise
        elapsed = time.perf_counter() - started
        self.durations[name] = round(self.durations.get(name, 0.0) + elapsed, 3)
        self._log.info("stage %s: finished in %.1f s", name, elapsed)


class BackgroundStages:
    """Stages that only stage outputs, run one after another on a second thread beside the run's
    main line (``enabled``), or at once on the caller's thread (not enabled).

    Spark runs the jobs of both threads side by side: on a small input the main line's many short
    jobs leave a core idle between them, and a background stage (the quarantine's pass, the model's
    files, the small tables) fills it. Leaving the ``with`` block waits for every stage, so nothing
    is still writing when the run commits or fails; :meth:`wait` also re-raises the first failure.
    """

    def __init__(self, timer: StageTimer, *, enabled: bool, prepare_thread: Callable[[], None] | None = None) -> None:
        """``prepare_thread`` runs first on the second thread (e.g. to give it the Spark session)."""
        self._timer = timer
        self._pool = (
            ThreadPoolExecutor(max_workers=1, thread_name_prefix="insiders-spark-stage", initializer=prepare_thread)
            if enabled
            else None
        )
        self._pending: list[Future] = []

    def run(self, name: str, work: Callable[[], T]) -> Future:
        """Run ``work`` as the stage ``name``; its result (or error) comes with the future's ``result``.
        Not enabled: it runs now and an error is raised here, as any stage's."""

        def timed() -> T:
            with self._timer.stage(name):
                return work()

        if self._pool is None:
            done: Future = Future()
            done.set_result(timed())
            return done
        future = self._pool.submit(timed)
        self._pending.append(future)
        return future

    def wait(self) -> None:
        """Wait for every stage started so far; then raise the first one's error, if any failed."""
        pending, self._pending = self._pending, []
        errors = [f.exception() for f in pending]  # waits for each
        failed = [e for e in errors if e is not None]
        if failed:
            raise failed[0]

    def __enter__(self) -> BackgroundStages:
        return self

    def __exit__(self, *exc_info) -> None:
        if self._pool is not None:
            self._pool.shutdown(wait=True)  # a failed main line still waits: the run's outputs are then moved
