"""Work that runs in processes of its own (a local cluster, a class archive, a second run of the
job) started when the session starts, beside the tests that use the suite's Spark session.

A job only starts subprocesses and reads files, never the suite's session. A test module declares
one with :func:`job` (``wanted`` says which collected tests need it); the session starts every job
that a selected test wants at its first test, or, for a job that works on another's outputs
(``after``), as soon as those exist (:func:`start_after`). Tests take a job's result with
:func:`result`, waiting for it if it is not done, and run last (tests/conftest.py orders them), so
the jobs have the whole session to run in. A job that raises (a failed assertion, ``pytest.skip``)
raises the same in every test that takes its result. On a two-core machine the session's own tests
leave a core mostly idle between their small Spark jobs: the JVMs of these jobs use it, one job
at a time (``SLOTS``).
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

TIMEOUT_S = 1_800
# One job at a time beside the session's own tests: each starts JVMs, and on two cores several at
# once only make every one of them (and the session) slower.
SLOTS = threading.Semaphore(1)


@dataclass
class Job:
    name: str
    wanted: Callable[[pytest.Item], bool]
    work: Callable[..., Any]  # gets a fresh folder of its own, and with ``after`` what that gave
    after: str | None = None  # the name of what it works on (see start_after)
    thread: threading.Thread | None = None
    value: Any = None
    error: BaseException | None = None
    seconds: float | None = None
    started: float = field(default=0.0)

    def start(self, folder: Path, *given: Any) -> None:
        def run() -> None:
            with SLOTS:
                self.started = time.monotonic()
                try:
                    self.value = self.work(folder, *given)
                except BaseException as error:  # re-raised in the tests that take the result
                    self.error = error
                finally:
                    self.seconds = time.monotonic() - self.started

        self.thread = threading.Thread(target=run, name=f"background-{self.name}", daemon=True)
        self.thread.start()


JOBS: dict[str, Job] = {}
SESSION: dict[str, Any] = {}  # the session's selected items and its temporary folders


def job(name: str, *, wanted: Callable[[pytest.Item], bool], after: str | None = None):
    """Declare ``work(folder)`` (``work(folder, given)`` with ``after``) as the background job
    ``name``, for the tests ``wanted`` picks."""

    def register(work: Callable[..., Any]) -> Callable[..., Any]:
        JOBS[name] = Job(name, wanted, work, after)
        return work

    return register


def wanted(item: pytest.Item) -> bool:
    return any(declared.wanted(item) for declared in JOBS.values())


def _start(declared: Job, *given: Any) -> bool:
    items, folders = SESSION.get("items", []), SESSION.get("folders")
    if declared.thread is not None or folders is None or not any(declared.wanted(item) for item in items):
        return False
    declared.start(folders.mktemp(f"background-{declared.name.replace(' ', '-')}"), *given)
    return True


def start_wanted(items: list[pytest.Item], tmp_path_factory: pytest.TempPathFactory) -> list[Job]:
    """At the session's first test: every job without ``after`` that a selected test wants."""
    SESSION.update(items=items, folders=tmp_path_factory)
    return [declared for declared in JOBS.values() if declared.after is None and _start(declared)]


def start_after(name: str, given: Any) -> None:
    """``name`` is done (e.g. a shared run of the job): start the jobs that work on it."""
    for declared in JOBS.values():
        if declared.after == name:
            _start(declared, given)


def running() -> list[Job]:
    return [declared for declared in JOBS.values() if declared.thread is not None]


def result(name: str) -> Any:
    """The job's result once it is done; its error, if it failed, raised here."""
    declared = JOBS[name]
    if declared.thread is None:  # not wanted by any selected test: this test was picked some other way
        pytest.fail(f"background job {name!r} was not started for this test")
    declared.thread.join(TIMEOUT_S)
    if declared.thread.is_alive():
        pytest.fail(f"background job {name!r} did not finish in {TIMEOUT_S} s")
    if declared.error is not None:
        raise declared.error
    return declared.value


def in_module(module: str) -> Callable[[pytest.Item], bool]:
    """``wanted``: the tests of a module (its ``__name__``)."""
    return lambda item: getattr(item, "module", None) is not None and item.module.__name__ == module
