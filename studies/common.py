"""What the studies share: where the real log is, where a study writes, how it starts, the
off-line backtest's truth.

Every study reads ``--input`` (the real log by default) or ``--synthetic LINES`` (a synthetic log
of that many lines, written once under ``studies/output/synthetic/``: a quick run of the study's
code, not of its findings), and writes ``<out>.json`` (the raw numbers) and ``<out>.md`` (the
page) with ``<out>`` = ``studies/output/<study>`` by default (not committed). The findings worth
keeping are committed by hand as ``docs/studies/<study>.md``.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import sys
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pandas as pd

from insiders_spark.storage.synthetic import SyntheticLogSpec, write_parquet

ROOT = Path(__file__).resolve().parents[1]
OUTPUT = ROOT / "studies" / "output"
DEFAULT_INPUT = ROOT.parent / "shared" / "data" / "online_retail" / "online_retail.parquet"
SYNTHETIC_SEED = 42


def study_parser(name: str, doc: str) -> argparse.ArgumentParser:
    """A study's command line: ``--input`` or ``--synthetic``, and ``--out``."""
    parser = argparse.ArgumentParser(
        prog=f"python -m studies.{name}", description=doc, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    source = parser.add_mutually_exclusive_group()
    source.add_argument("--input", default=str(DEFAULT_INPUT), help="the log (default: the real log, %(default)s)")
    source.add_argument(
        "--synthetic", type=int, metavar="LINES", help="a synthetic log of LINES lines instead (a smoke run)"
    )
    parser.add_argument("--out", default=str(OUTPUT / name), help="writes OUT.json and OUT.md (default: %(default)s)")
    return parser


def input_path(args: argparse.Namespace) -> str:
    """The log a study reads: ``--input``, or the synthetic log of ``--synthetic`` lines (written once)."""
    if args.synthetic is None:
        return args.input
    folder = OUTPUT / "synthetic" / str(args.synthetic)
    if not any(folder.glob("part-*.parquet")):
        write_parquet(SyntheticLogSpec(lines=args.synthetic, seed=SYNTHETIC_SEED), folder, overwrite=True)
    return str(folder)


def start_study() -> None:
    """Log to stderr with timestamps; Spark on the loopback, its workers on this Python."""
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(message)s")
    os.environ.setdefault("SPARK_LOCAL_IP", "127.0.0.1")
    os.environ.setdefault("PYSPARK_PYTHON", sys.executable)


def write_study(out: str, result: dict, render: Callable[[dict], str]) -> None:
    """``<out>.json`` with the numbers, ``<out>.md`` with the page, and the page on stdout."""
    page = render(result)
    Path(out).parent.mkdir(parents=True, exist_ok=True)
    Path(out + ".json").write_text(json.dumps(result, indent=1, default=str) + "\n")
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
    bought_later = now["customer_id"].map(registered_later).fillna(0.0).to_numpy() - past
    return np.where(now["is_guest"].to_numpy(), 0.0, bought_later), total
