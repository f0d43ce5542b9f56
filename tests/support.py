"""Helpers the test files share: configurations, hand-written logs, a pandas oracle, folder digests.

Nothing here starts Spark: the functions that need a session take it as an argument.
"""

from __future__ import annotations

import contextlib
import csv
import datetime as dt
import hashlib
import io
import logging
import os
import signal
import subprocess
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pandas as pd
import pytest

from insiders_spark.core.config import CleaningConfig, Config, dataset_columns, load_config, with_dataset
from insiders_spark.storage.synthetic import ONLINE_RETAIL_COLUMNS, SyntheticLogSpec, generate_chunk

PROJECT_ROOT = Path(__file__).resolve().parents[1]
STUDY = "online_retail"  # the dataset profile of the study's export (and of the synthetic log)
HEADER = ",".join(ONLINE_RETAIL_COLUMNS)
RAW_TO_CANONICAL = {source: canonical for canonical, source in dataset_columns(STUDY).items()}
CANONICAL_OF_EXPORT = tuple(RAW_TO_CANONICAL[name] for name in ONLINE_RETAIL_COLUMNS)  # as the job names them
ISO = "%Y-%m-%d %H:%M:%S"


def config(overrides: Mapping[str, Any] | None = None, *, env: str = "test") -> Config:
    """The ``test`` profile with dotted overrides, blind to the caller's INSIDERS_SPARK__* variables."""
    return load_config(env=env, overrides=dict(overrides or {}), environ={})


def study_config(overrides: Mapping[str, Any] | None = None) -> Config:
    """``config`` with the study's dataset profile: what the job runs with on the synthetic log or
    the real one (their header brings it)."""
    return with_dataset(config(overrides), STUDY)


# --- hand-written CSV logs ------------------------------------------------------------------


def csv_line(
    invoice: str,
    code: str = "85123A",
    description: str = "WHITE HANGING HEART",
    quantity: str = "6",
    when: str = "2011-03-01 10:00:00",
    price: str = "2.55",
    customer: str = "17850.0",
    country: str = "United Kingdom",
) -> str:
    return ",".join([invoice, code, description, quantity, when, price, customer, country])


def write_csv(path: Path, lines: Sequence[str], *, header: str = HEADER, encoding: str = "utf-8") -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(("\n".join([header, *lines]) + "\n").encode(encoding))
    return path


# A price past the exact revenue range: ``amount_out_of_range``, but today it stops the whole run with
# Spark's ARITHMETIC_OVERFLOW (``floor`` of 1e19 in ``cleaning.parsing.round_half_up``). The shared
# logs leave it out so they test the rest; the xfail tests in tests/cleaning/test_rules.py and
# tests/features/test_table.py hold it.
OVERFLOWING_PRICE = "1e15"


def bad_lines(when: str, bad_when: str, *, overflowing_price: bool = False) -> list[tuple[str, str, str]]:
    """(marker, raw CSV line, expected reason): every kind of bad line the job must recognise in an
    export of the study's columns (no line amount, so no ``non_numeric_amount``).

    ``when`` is a timestamp in the log's own format, ``bad_when`` one that does not parse in it;
    ``overflowing_price`` adds the line with ``OVERFLOWING_PRICE`` (see there).
    """

    def line(invoice: str, **fields: str) -> str:
        return csv_line(invoice, when=fields.pop("when", when), **fields)

    return [
        ("BAD01", "BAD01,85123A,SHORT LINE,6", "malformed_line"),
        ("BAD02", line("BAD02") + ",extra,fields", "malformed_line"),
        (
            "BAD03",
            f'BAD03,85123A,"UNTERMINATED QUOTE,6,{when},2.55,17850.0,United Kingdom',
            "malformed_line",
        ),
        ("BAD04", line("BAD04", price='"1,25"'), "non_numeric_price"),
        ("BAD05", line("BAD05", price="n/a"), "non_numeric_price"),
        ("BAD06", line("BAD06", when=bad_when), "unparsable_timestamp"),
        ("BAD07", line("BAD07", when=""), "unparsable_timestamp"),
        ("BAD08", line("BAD08", quantity="6.5"), "non_numeric_quantity"),
        ("BAD09", line("BAD09", quantity="six"), "non_numeric_quantity"),
        ("BAD10", line("BAD10", customer="A17850"), "invalid_customer_id"),
        ("BAD11", line("BAD11", customer="-5"), "invalid_customer_id"),
        # 1/10,000 units of these overflow a 64-bit integer
        *([("BAD18", line("BAD18", price=OVERFLOWING_PRICE), "amount_out_of_range")] if overflowing_price else []),
        ("BAD19", line("BAD19", quantity="9000000000000000000"), "amount_out_of_range"),
        ("BAD12", line("", description="BAD12 NO INVOICE"), "missing_invoice"),
        ("BAD13", line("BAD13", code=""), "missing_product"),
        ("BAD14", line("BAD14", price="0.0"), "price_below_minimum"),
        ("BAD15", line("BAD15", code="POST"), "non_product_code"),
        ("BAD16", line("BAD16", country="Unspecified"), "excluded_country"),
        ("BAD17", line("BAD17", customer="16446.0"), "excluded_customer"),
        # drops joined with their headers (cat day1.csv day2.csv): the header again, mid-file
        ("InvoiceNo", HEADER, "repeated_header"),
    ]


# --- the synthetic log as pandas ------------------------------------------------------------


def synthetic_frame(lines: int, seed: int) -> pd.DataFrame:
    """The log the job generates itself for ``synthetic.lines``/``synthetic.seed`` (up to 100,000
    lines it is one chunk of the generator's Spark chunking), as pandas."""
    spec = SyntheticLogSpec(lines=lines, seed=seed)
    return generate_chunk(spec, 0, chunk_lines=max(lines, 100_000)).to_pandas()


def to_csv_text(frame: pd.DataFrame, *, timestamp_format: str = ISO) -> str:
    """A raw frame as a CSV export: CustomerID as the published ``17850.0`` or empty, the
    timestamps in ``timestamp_format`` (a strftime pattern)."""
    out = frame.copy()
    out["CustomerID"] = out["CustomerID"].map(lambda v: "" if pd.isna(v) else f"{v:.1f}")
    if timestamp_format != ISO:
        stamps = pd.to_datetime(out["InvoiceDate"], format=ISO)
        out["InvoiceDate"] = [_strftime(t, timestamp_format) for t in stamps]
    buffer = io.StringIO()
    out.to_csv(buffer, index=False, quoting=csv.QUOTE_MINIMAL, lineterminator="\n")
    return buffer.getvalue()


def _strftime(stamp: pd.Timestamp, pattern: str) -> str:
    """strftime plus ``%-m``/``%-d``/``%-H`` (no leading zero) on every platform."""
    return (
        pattern.replace("%-m", str(stamp.month))
        .replace("%-d", str(stamp.day))
        .replace("%-H", str(stamp.hour))
        .replace("%M", f"{stamp.minute:02d}")
        .replace("%Y", str(stamp.year))
    )


@dataclass(frozen=True)
class Outcomes:
    """What the study's rules make of a log, computed with pandas, line by line."""

    input: int
    kept: int
    after_as_of: int
    quarantined: dict[str, int]
    customers_with_kept_lines: int
    segmented: int
    returns_only: int
    guests: int
    revenue: float
    last_kept_date: dt.date


def expected_outcomes(raw: pd.DataFrame, rules: CleaningConfig, *, as_of: dt.date | None = None) -> Outcomes:
    """An independent oracle for a *clean-typed* raw log (the synthetic generator's: every field
    parses): the rules in their documented order, then customers as the study counts them (a
    registered id, or one guest invoice)."""
    stamps = pd.to_datetime(raw["InvoiceDate"], format=ISO)
    reason = pd.Series([None] * len(raw), index=raw.index, dtype=object)

    def set_reason(mask: pd.Series, name: str) -> None:
        reason[mask & reason.isna()] = name

    if as_of is not None:
        set_reason(stamps.dt.date > as_of, "after_as_of")
    set_reason(raw["UnitPrice"] < rules.min_unit_price, "price_below_minimum")
    set_reason(raw["StockCode"].isin(rules.non_product_codes), "non_product_code")
    set_reason(raw["Country"].isin(rules.excluded_countries), "excluded_country")
    set_reason(raw["CustomerID"].isin([float(c) for c in rules.excluded_customers]), "excluded_customer")
    kept = reason.isna()
    owner = raw["CustomerID"].map(lambda v: None if pd.isna(v) else f"id:{int(v)}")
    owner = owner.where(owner.notna(), "guest:" + raw["InvoiceNo"])
    lines = pd.DataFrame({"owner": owner, "kept": kept, "purchase": kept & (raw["Quantity"] >= 0)})
    per_owner = lines.groupby("owner").agg(kept=("kept", "any"), purchase=("purchase", "any"))
    with_kept = per_owner[per_owner["kept"]]
    counted = reason.value_counts().to_dict()
    purchases = raw[lines["purchase"]]
    return Outcomes(
        input=len(raw),
        kept=int(kept.sum()),
        after_as_of=int(counted.pop("after_as_of", 0)),
        quarantined={name: int(count) for name, count in counted.items()},
        customers_with_kept_lines=len(with_kept),
        segmented=int(with_kept["purchase"].sum()),
        returns_only=int((~with_kept["purchase"]).sum()),
        guests=int(with_kept.index.str.startswith("guest:").sum()),
        revenue=float((purchases["Quantity"] * purchases["UnitPrice"]).sum()),
        last_kept_date=stamps[kept].max().date(),
    )


# --- customers in groups a revenue tree separates without doubt -----------------------------


def grouped_features(spark, spec, *, noise: bool = False, seed: int = 0, day: dt.date = dt.date(2011, 12, 9)):
    """One row per customer (``CUSTOMER_FEATURES_SCHEMA``), cached; ``spec``: (customers, items,
    log revenue) per group. Each group has its own number of items and its own revenue level, so
    a resample of the customers finds the same split thresholds (between the groups' values)."""
    import math
    import random

    from insiders_spark.core.schemas import CUSTOMER_FEATURES_SCHEMA

    rng = random.Random(seed)
    rows, customer = [], 0
    for group, (size, items, log_revenue) in enumerate(spec):
        for _ in range(size):
            revenue = math.exp(log_revenue + (rng.uniform(-0.3, 0.3) if noise else 0.0))
            ticket = rng.uniform(0, 100) if noise else 1.0  # noise the tree may split on
            features = (revenue, 10, group + 1, items, 5 * (group + 1), 0.5, 0, ticket, day, day)
            rows.append((customer, str(customer), False, *features))
            customer += 1
    return spark.createDataFrame(rows, CUSTOMER_FEATURES_SCHEMA).cache()


def small_tree_config(base: Config, **embedding: Any) -> Config:
    """``base`` with a small tree (depth 2, leaves of at least 5% of the customers) for grouped
    customers; ``embedding`` overrides those."""
    import dataclasses

    settings = {"max_depth": 2, "min_leaf_share": 0.05, **embedding}
    return dataclasses.replace(base, embedding=dataclasses.replace(base.embedding, **settings))


# --- outputs --------------------------------------------------------------------------------


def partition(output: Path, table: str, run_date: str | dt.date) -> Path:
    return Path(output) / table / f"run_date={run_date}"


def assert_nothing_published(output: Path) -> None:
    """A failed run published nothing: ``output`` holds at most ``failed_runs/``, each failed run's
    folder with its ``failure.json`` (no table, no lock, no staging)."""
    output = Path(output)
    if not output.exists():
        return
    assert sorted(p.name for p in output.iterdir()) == ["failed_runs"], sorted(output.iterdir())
    runs = list(output.glob("failed_runs/run_date=*/*"))
    assert runs and all((run / "failure.json").is_file() for run in runs), runs


def read_json(path: Path) -> Any:
    import json

    return json.loads(Path(path).read_text())


def tree_digest(folder: Path) -> dict[str, str]:
    """Every file under ``folder`` (relative path -> sha256): a byte-for-byte snapshot."""
    folder = Path(folder)
    return {
        str(p.relative_to(folder)): hashlib.sha256(p.read_bytes()).hexdigest()
        for p in sorted(folder.rglob("*"))
        if p.is_file()
    }


def spark_jobs(spark, *, after: int = -1) -> list[tuple[int, str | None, str]]:
    """(job id, description, tags) of every job the session ran after job ``after``, from Spark's
    status store (filled by the listener bus, asynchronously: waited for here)."""
    context = spark.sparkContext._jsc.sc()
    context.listenerBus().waitUntilEmpty(30_000)
    jobs = context.statusStore().jobsList(None)
    found = []
    for i in range(jobs.size()):
        job = jobs.apply(i)
        description = job.description().get() if job.description().isDefined() else None
        found.append((job.jobId(), description, job.jobTags().mkString(",")))
    return sorted(job for job in found if job[0] > after)


def persistent_rdds(spark) -> int:
    """RDDs and DataFrames cached in the session's JVM right now."""
    return spark.sparkContext._jsc.getPersistentRDDs().size()


# --- the command line, in this process ------------------------------------------------------


@dataclass(frozen=True)
class CliRun:
    status: int
    stdout: str
    stderr: str


@contextlib.contextmanager
def _kept_logging() -> Iterator[None]:
    """``main`` configures the root logger for a run (``force=True``); give the suite its own back."""
    root = logging.getLogger()
    handlers, level = root.handlers[:], root.level
    try:
        yield
    finally:
        root.handlers[:] = handlers
        root.setLevel(level)


def run_cli(args: Sequence[str], *, environ: Mapping[str, str] | None = None) -> CliRun:
    """``insiders-spark ARGS`` through ``insiders_spark.cli.main`` in this process (the suite's
    session is reused and left running), with extra environment variables; stdout and stderr kept.
    The variables reach only this command (``main``'s ``environ``): the process's environment,
    which the background jobs' subprocesses inherit, is left as it is."""
    from insiders_spark.cli import main

    out, err = io.StringIO(), io.StringIO()
    with _kept_logging(), contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        try:
            status = main(list(args), environ={**os.environ, **(environ or {})})
        except SystemExit as exit_:  # argparse refuses the command line: usage error
            status = exit_.code
    return CliRun(status, out.getvalue(), err.getvalue())


def kill_once_writing(process: subprocess.Popen, writing: Callable[[], bool], *, deadline: float) -> None:
    """Wait (until the monotonic ``deadline``) for ``writing()`` to say the run has begun to write
    its outputs, then kill the run's whole process group and wait for it."""
    while time.monotonic() < deadline:
        if writing():
            break
        assert process.poll() is None, "the run finished before it could be killed"
        time.sleep(0.2)
    else:
        pytest.fail("the run never started writing")
    os.killpg(process.pid, signal.SIGKILL)
    process.wait(timeout=60)
