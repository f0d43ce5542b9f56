"""The job's read + aggregation step alone, in DuckDB: the single-machine yardstick for that step.

The same parsing and rules as ``insiders_spark.cleaning`` (the rule values come from the package's
``conf/base.toml``), the same per-customer aggregates as ``insiders_spark.features`` (conditional aggregates
over valid lines; guest invoices numbered from 19000 in order of first timestamp, then invoice
number; customers with returns only left out), written to ``<output>/features.parquet``. DuckDB is
a benchmark dependency only (the ``bench`` extra).

Usage: ``python benchmarks/aggregate_duckdb.py --input DIR --output DIR [--threads 2]``.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import sys
import time
from pathlib import Path

import duckdb

from insiders_spark.cleaning.parsing import MAX_CUSTOMER_ID
from insiders_spark.cleaning.rules import MAX_LINE_AMOUNT, MAX_LINE_QUANTITY
from insiders_spark.core.config import CleaningConfig, load_config

DEFAULT_TIMESTAMP_FORMAT = "%Y-%m-%d %H:%M:%S"  # the job's "yyyy-MM-dd HH:mm:ss"
FEATURES_FILE = "features.parquet"


def _sql_list(values) -> str:
    """A SQL list literal: strings quoted (quotes doubled), numbers as they are."""

    def literal(value) -> str:
        return "'" + value.replace("'", "''") + "'" if isinstance(value, str) else repr(value)

    return "(" + ", ".join(literal(v) for v in values) + ")" if values else "(NULL)"


def activity_sql(files: list[str], rules: CleaningConfig, *, timestamp_format: str, as_of: dt.date | None) -> str:
    """One row per registered customer or guest invoice with the features' ingredients."""
    after = f"invoice_ts >= TIMESTAMP '{as_of + dt.timedelta(days=1)} 00:00:00'" if as_of else "false"
    file_list = "[" + ", ".join("'" + f.replace("'", "''") + "'" for f in files) + "]"
    fmt = timestamp_format.replace("'", "''")
    return f"""
    WITH parsed AS (
        SELECT
            nullif(trim(CAST(InvoiceNo AS VARCHAR)), '') AS invoice_no,
            nullif(trim(CAST(StockCode AS VARCHAR)), '') AS stock_code,
            CAST(Quantity AS BIGINT) AS quantity,
            try_strptime(nullif(trim(CAST(InvoiceDate AS VARCHAR)), ''), '{fmt}') AS invoice_ts,
            CASE WHEN isfinite(CAST(UnitPrice AS DOUBLE)) THEN CAST(UnitPrice AS DOUBLE) END AS unit_price,
            CASE WHEN CustomerID > 0 AND CustomerID < {MAX_CUSTOMER_ID!r} AND CustomerID = floor(CustomerID)
                THEN CAST(CustomerID AS BIGINT) END AS customer_id,
            CustomerID IS NOT NULL AS has_customer,
            trim(CAST(Country AS VARCHAR)) AS country
        FROM read_parquet({file_list})
    ),
    classified AS (
        SELECT *,
            CASE
                WHEN invoice_no IS NULL THEN 'missing_invoice'
                WHEN stock_code IS NULL THEN 'missing_product'
                WHEN invoice_ts IS NULL THEN 'unparsable_timestamp'
                WHEN quantity IS NULL THEN 'non_numeric_quantity'
                WHEN unit_price IS NULL THEN 'non_numeric_price'
                WHEN has_customer AND customer_id IS NULL THEN 'invalid_customer_id'
                WHEN abs(CAST(quantity AS DOUBLE)) > {MAX_LINE_QUANTITY!r} OR abs(unit_price) > {MAX_LINE_AMOUNT!r}
                    OR abs(CAST(quantity AS DOUBLE)) * abs(unit_price) > {MAX_LINE_AMOUNT!r} THEN 'amount_out_of_range'
                WHEN {after} THEN 'after_as_of'
                WHEN unit_price < {rules.min_unit_price!r} THEN 'price_below_minimum'
                WHEN stock_code IN {_sql_list(rules.non_product_codes)} THEN 'non_product_code'
                WHEN country IN {_sql_list(rules.excluded_countries)} THEN 'excluded_country'
                WHEN customer_id IN {_sql_list(rules.excluded_customers)} THEN 'excluded_customer'
            END AS reason
        FROM parsed
    ),
    valid AS (
        SELECT *,
            reason IS NULL AS kept,
            reason IS NULL AND quantity >= 0 AS kept_purchase,
            reason IS NULL AND quantity < 0 AS kept_return,
            CAST(invoice_ts AS DATE) AS day
        FROM classified
        WHERE reason IS NULL
           OR reason IN ('price_below_minimum', 'non_product_code', 'excluded_country', 'excluded_customer')
    )
    SELECT
        customer_id,
        CASE WHEN customer_id IS NULL THEN invoice_no END AS guest_invoice_no,
        min(invoice_ts) AS first_seen_ts,
        count(*) FILTER (WHERE kept) AS kept_lines,
        max(day) FILTER (WHERE kept) AS last_kept_date,
        sum(quantity * unit_price) FILTER (WHERE kept_purchase) AS gross_revenue,
        count(DISTINCT invoice_no) FILTER (WHERE kept_purchase) AS qty_invoices,
        sum(quantity) FILTER (WHERE kept_purchase) AS qty_items,
        count(DISTINCT stock_code) FILTER (WHERE kept_purchase) AS qty_products,
        min(day) FILTER (WHERE kept_purchase) AS first_purchase_date,
        max(day) FILTER (WHERE kept_purchase) AS last_purchase_date,
        sum(-quantity) FILTER (WHERE kept_return) AS qty_returns,
        avg(quantity * unit_price) FILTER (WHERE kept_purchase) AS avg_ticket
    FROM valid
    GROUP BY ALL
    """


def features_sql(*, guest_start: int, as_of: dt.date | None) -> str:
    """Number the guests, then the features of customers with a kept purchase (from ``activity``)."""
    as_of_value = f"DATE '{as_of}'" if as_of else "(SELECT max(last_kept_date) FROM activity WHERE kept_lines > 0)"
    return f"""
    WITH numbered AS (
        SELECT *, customer_id AS id, false AS is_guest FROM activity WHERE guest_invoice_no IS NULL
        UNION ALL
        SELECT *, {guest_start} + row_number() OVER (ORDER BY first_seen_ts, guest_invoice_no) - 1 AS id,
               true AS is_guest
        FROM activity WHERE guest_invoice_no IS NOT NULL
    )
    SELECT
        CAST(id AS BIGINT) AS customer_id,
        is_guest,
        CAST(gross_revenue AS DOUBLE) AS gross_revenue,
        CAST({as_of_value} - last_purchase_date AS INTEGER) AS recency_days,
        CAST(qty_invoices AS BIGINT) AS qty_invoices,
        CAST(qty_items AS BIGINT) AS qty_items,
        CAST(qty_products AS BIGINT) AS qty_products,
        CAST(qty_invoices AS DOUBLE) / (last_purchase_date - first_purchase_date + 1) AS frequency,
        CAST(coalesce(qty_returns, 0) AS BIGINT) AS qty_returns,
        CAST(avg_ticket AS DOUBLE) AS avg_ticket,
        first_purchase_date,
        last_purchase_date
    FROM numbered
    WHERE kept_lines > 0 AND gross_revenue IS NOT NULL
    """


def input_files(path: str) -> list[str]:
    root = Path(path)
    if root.is_file():
        return [str(root)]
    files = sorted(
        str(p)
        for p in root.rglob("*.parquet")
        if not any(part.startswith(("_", ".")) for part in p.relative_to(root).parts)
    )
    if not files:
        raise FileNotFoundError(f"no parquet files under {root}")
    return files


def aggregate(
    input_path: str,
    output: str,
    *,
    threads: int = 2,
    memory_limit: str | None = None,
    as_of: dt.date | None = None,
    timestamp_format: str = DEFAULT_TIMESTAMP_FORMAT,
) -> dict:
    """Write ``<output>/features.parquet``; return stage durations and counts."""
    config = load_config(env="base", dataset="online_retail")  # the study's rules, as the job detects them
    out = Path(output)
    out.mkdir(parents=True, exist_ok=True)
    durations: dict[str, float] = {}
    started = time.perf_counter()
    connection = duckdb.connect()
    connection.execute(f"SET threads = {int(threads)}")
    connection.execute("SET preserve_insertion_order = false")
    if memory_limit:
        connection.execute(f"SET memory_limit = '{memory_limit}'")
    files = input_files(input_path)
    connection.execute(
        "CREATE TEMP TABLE activity AS "
        + activity_sql(files, config.cleaning, timestamp_format=timestamp_format, as_of=as_of)
    )
    durations["read and aggregate"] = round(time.perf_counter() - started, 3)
    mark = time.perf_counter()
    target = str(out / FEATURES_FILE).replace("'", "''")
    connection.execute(
        f"COPY ({features_sql(guest_start=config.cleaning.guest_customer_id_start, as_of=as_of)}) "
        f"TO '{target}' (FORMAT parquet)"
    )
    durations["number and write"] = round(time.perf_counter() - mark, 3)
    customers, guests = connection.execute(
        f"SELECT count(*), count(*) FILTER (WHERE is_guest) FROM read_parquet('{target}')"
    ).fetchone()
    connection.close()
    total = round(time.perf_counter() - started, 3)
    metrics = {
        "engine": "duckdb",
        "threads": threads,
        "duckdb": duckdb.__version__,
        "customers": {"segmented": customers, "guests": guests},
        "durations_s": durations,
        "read_aggregate_s": total,
        "total_s": total,
    }
    (out / "metrics.json").write_text(json.dumps(metrics, indent=2) + "\n")
    return metrics


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="The job's read + aggregation step in DuckDB.")
    parser.add_argument("--input", required=True, help="parquet file or folder of the raw log")
    parser.add_argument("--output", required=True, help="folder for features.parquet and metrics.json")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--memory-limit", help="DuckDB memory_limit, e.g. 4GB (default: DuckDB's own)")
    parser.add_argument("--as-of", type=dt.date.fromisoformat, help="default: the last kept invoice date")
    parser.add_argument("--timestamp-format", default=DEFAULT_TIMESTAMP_FORMAT, help="strptime pattern")
    args = parser.parse_args(argv)
    metrics = aggregate(
        args.input,
        args.output,
        threads=args.threads,
        memory_limit=args.memory_limit,
        as_of=args.as_of,
        timestamp_format=args.timestamp_format,
    )
    print(json.dumps(metrics))
    return 0


if __name__ == "__main__":
    sys.exit(main())
