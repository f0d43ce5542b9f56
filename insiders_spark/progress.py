"""Stage timing and the driver's log: one line when a stage starts, one when it ends."""

from __future__ import annotations

import logging
import time
from collections.abc import Iterator
from contextlib import contextmanager

LOG_FORMAT = "%(asctime)s %(levelname)s %(name)s: %(message)s"


def configure_logging(level: str) -> None:
    """Configure the driver's Python logging once, from the entry point."""
    logging.basicConfig(level=level.upper(), format=LOG_FORMAT, datefmt="%H:%M:%S", force=True)
    logging.getLogger("py4j").setLevel(logging.WARNING)


class StageTimer:
    """Wall-clock durations of the job's stages, in the order they ran."""

    def __init__(self, logger: logging.Logger) -> None:
        self._log = logger
        self.durations: dict[str, float] = {}

    @contextmanager
    def stage(self, name: str) -> Iterator[None]:
        self._log.info("stage %s: started", name)
        started = time.perf_counter()
        try:
            yield
        except BaseException:
            self._log.error("stage %s: failed after %.1f s", name, time.perf_counter() - started)
            raise
        elapsed = time.perf_counter() - started
        self.durations[name] = round(self.durations.get(name, 0.0) + elapsed, 3)
        self._log.info("stage %s: finished in %.1f s", name, elapsed)
