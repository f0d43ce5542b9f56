"""Stage timing and the driver's log: one line when a stage starts, one when it ends."""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from contextlib import AbstractContextManager, contextmanager, nullcontext
from typing import TypeVar

T = TypeVar("T")

LOG_FORMAT = "%(asctime)s %(levelname)s %(name)s: %(message)s"


def configure_logging(level: str) -> None:
    """Configure the driver's Python logging once, from the entry point."""
    logging.basicConfig(level=level.upper(), format=LOG_FORMAT, datefmt="%H:%M:%S", force=True)
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
