"""One Spark session for the whole suite, and the paths of the shared real data."""

from __future__ import annotations

import os
import sys
from pathlib import Path

import pytest

# Python workers must run the interpreter that runs the tests (it has the package and pyarrow),
# and this host's name does not resolve to a usable address: stay on loopback.
os.environ.setdefault("PYSPARK_PYTHON", sys.executable)
os.environ.setdefault("PYSPARK_DRIVER_PYTHON", sys.executable)
os.environ.setdefault("SPARK_LOCAL_IP", "127.0.0.1")

PROJECT_ROOT = Path(__file__).resolve().parents[1]
SHARED = Path(os.environ.get("INSIDERS_SHARED_DIR", PROJECT_ROOT.parent / "shared"))
REAL_LOG_PARQUET = SHARED / "data" / "online_retail" / "online_retail.parquet"
REAL_LOG_BY_DAY = SHARED / "data" / "online_retail" / "by-day"
REFERENCE_FEATURES = SHARED / "data" / "reference_features.csv"


@pytest.fixture(scope="session")
def spark():
    from insiders_spark.core.config import load_config
    from insiders_spark.spark.session import build_spark_session

    config = load_config(env="test")
    session = build_spark_session("insiders-spark-tests", config.spark)
    yield session
    session.stop()


@pytest.fixture(scope="session")
def test_config():
    from insiders_spark.core.config import load_config

    return load_config(env="test")


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
