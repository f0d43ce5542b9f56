"""What the real-log studies (quality_real_log, quality_over_dates, embedding_study,
kmeans_solver_check, stability_alternatives, offline_alternatives, backtest_alternatives) share:
where the real log is, how a study starts and writes its page, and the off-line backtest's truth."""

from __future__ import annotations

import json
import logging
import os
import sys
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pandas as pd

ROOT = Path(__file__).resolve().parents[1]
DEFAULT_INPUT = ROOT.parent / "shared" / "data" / "online_retail" / "online_retail.parquet"


def start_study() -> None:
    """Log to stderr with timestamps; Spark on the loopback, its workers on this Python."""
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(message)s")
    os.environ.setdefault("SPARK_LOCAL_IP", "127.0.0.1")
    os.environ.setdefault("PYSPARK_PYTHON", sys.executable)


def write_study(out: str, result: dict, render: Callable[[dict], str]) -> None:
    """``<out>.json`` with the numbers, ``<out>.md`` with the page, and the page on stdout."""
    page = render(result)
    Path(out + ".json").write_text(json.dumps(result, indent=2) + "\n")
    Path(out + ".md").write_text(page)
    print(page)


def window_revenue(now: pd.DataFrame, later: pd.DataFrame) -> tuple[np.ndarray, float]:
    """The backtest's truth from the pandas reference's features at a cut-off (``now``, the
    eligible customers) and at the window's end (``later``): each eligible customer's revenue in
    the window (a guest invoice never buys again: 0), and all the window's revenue, new customers
    included."""
    total = float(later["gross_revenue"].sum() - now["gross_revenue"].sum())
    registered_later = later[~later["is_guest"]].set_index("customer_id")["gross_revenue"]
    past = now["gross_revenue"].to_numpy()
    future = np.where(now["is_guest"].to_numpy(), 0.0, now["customer_id"].map(registered_later).fillna(0.0).to_numpy() - past)
    return future, total
