"""What the real-log studies (quality_real_log, quality_over_dates, embedding_study,
kmeans_solver_check, stability_alternatives, offline_alternatives) share: where the real log is, and how a study starts."""

from __future__ import annotations

import logging
import os
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
DEFAULT_INPUT = ROOT.parent / "shared" / "data" / "online_retail" / "online_retail.parquet"


def start_study() -> None:
    """Log to stderr with timestamps; Spark on the loopback, its workers on this Python."""
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(message)s")
    os.environ.setdefault("SPARK_LOCAL_IP", "127.0.0.1")
    os.environ.setdefault("PYSPARK_PYTHON", sys.executable)
