"""The suite's one Spark session, its markers, and where the shared real data is.

* ``spark``: one session for the whole run, from the ``test`` profile (local[2], two shuffle
  partitions, no UI, UTC, loopback). Every test that uses it, directly or through a fixture, is
  marked ``spark`` here; tests that start a JVM in a subprocess carry the mark themselves.
* ``make test-fast`` (``-m "not spark"``) must not start a JVM: under that selection SPARK_HOME
  points at a folder that does not exist, so a test that starts one anyway fails loudly.
* The whole-job runs many tests share are in ``tests/jobs.py``; small helpers in ``tests/support.py``;
  work in processes of their own (a local cluster, a class archive), started when the session
  starts and run beside the other tests, in ``tests/background.py``.
"""

from __future__ import annotations

import os
import sys
from importlib import resources
from pathlib import Path

import pytest

pytest_plugins = ("tests.jobs",)

# Python workers must run the interpreter that runs the tests (it has the package and pyarrow),
# and this host's name does not resolve to a usable address: stay on loopback. Subprocesses the
# tests start import the package of this checkout, whatever else is installed.
PROJECT_ROOT = Path(__file__).resolve().parents[1]
os.environ.setdefault("PYSPARK_PYTHON", sys.executable)
os.environ.setdefault("PYSPARK_DRIVER_PYTHON", sys.executable)
os.environ.setdefault("SPARK_LOCAL_IP", "127.0.0.1")
os.environ["PYTHONPATH"] = os.pathsep.join(p for p in (str(PROJECT_ROOT), os.environ.get("PYTHONPATH")) if p)

SHARED = Path(os.environ.get("INSIDERS_SHARED_DIR", PROJECT_ROOT.parent / "shared"))
REAL_LOG_PARQUET = SHARED / "data" / "online_retail" / "online_retail.parquet"
REAL_LOG_BY_DAY = SHARED / "data" / "online_retail" / "by-day"
REFERENCE_FEATURES = SHARED / "data" / "reference_features.csv"
REAL_DATA_FIXTURES = frozenset({"real_log_parquet", "real_log_by_day", "reference_features"})
NO_JVM_HOME = PROJECT_ROOT / "tests" / "no-jvm-under-test-fast"


def _leaves_out_spark(config: pytest.Config) -> bool:
    return "not spark" in " ".join((config.option.markexpr or "").split())


def _check_checkout() -> None:
    """The package and its profiles must be this checkout's: an editable install of another
    checkout (a second worktree) would otherwise lend the tests its conf/ folder."""
    import insiders_spark

    package = Path(insiders_spark.__file__).resolve().parent
    profiles = Path(str(resources.files("insiders_spark.conf"))).resolve()
    expected = {"insiders_spark": PROJECT_ROOT / "insiders_spark", "insiders_spark.conf": PROJECT_ROOT / "conf"}
    found = {"insiders_spark": package, "insiders_spark.conf": profiles}
    wrong = [f"{name} from {found[name]} (expected {path})" for name, path in expected.items() if found[name] != path]
    if wrong:
        raise pytest.UsageError(
            "the tests would run another checkout's code: "
            + "; ".join(wrong)
            + ". Install this checkout in the virtualenv (pip install -e .), or run `make test` here"
        )


def pytest_configure(config: pytest.Config) -> None:
    _check_checkout()
    if _leaves_out_spark(config):
        os.environ["SPARK_HOME"] = str(NO_JVM_HOME)  # any JVM start fails: spark-submit is not there


@pytest.hookimpl(tryfirst=True)  # before -m deselects: the marks added here count
def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    from tests import background

    for item in items:
        fixtures = set(getattr(item, "fixturenames", ()))
        if "spark" in fixtures:
            item.add_marker(pytest.mark.spark)
        if fixtures & REAL_DATA_FIXTURES:
            item.add_marker(pytest.mark.real_data)
    # the tests that take a background job's result last, in their order: the jobs run meanwhile
    items.sort(key=background.wanted)


@pytest.fixture(scope="session", autouse=True)
def background_jobs(request, tmp_path_factory):
    """Start the background jobs the selected tests want (tests/background.py), at the first test."""
    from tests import background

    background.start_wanted(request.session.items, tmp_path_factory)
    yield
    for job in background.running():  # nothing may outlive the session: each job ends its own processes
        job.thread.join(background.TIMEOUT_S)


@pytest.fixture(scope="session")
def test_config():
    from insiders_spark.core.config import load_config

    return load_config(env="test", environ={})


@pytest.fixture(scope="session")
def spark(test_config):
    from insiders_spark.spark.session import build_spark_session

    session = build_spark_session("insiders-spark-tests", test_config.spark)
    yield session
    session.stop()


def require_shared(path: Path) -> Path:
    """Skip (with the reason) where ../shared is not beside the project, e.g. on a fresh clone."""
    if not path.exists():
        pytest.skip(f"real data not available: {path} is missing (../shared is only in CI and dev)")
    return path


@pytest.fixture(scope="session")
def real_log_parquet() -> Path:
    return require_shared(REAL_LOG_PARQUET)


@pytest.fixture(scope="session")
def real_log_by_day() -> Path:
    return require_shared(REAL_LOG_BY_DAY)


@pytest.fixture(scope="session")
def reference_features() -> Path:
    return require_shared(REFERENCE_FEATURES)
