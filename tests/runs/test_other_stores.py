"""Another store's log, in another shape, run as a new user would: only --columns (and a pattern).

The synthetic log's ``orders`` layout is the same lines as its online-retail one under other names:
``order_ref, sku, units, ordered_at`` (a timestamp), ``amount`` (the line's amount) and ``client``
(a text id, "C-12346"), without description, unit price or country. The expectations come from
pandas on the same files.
"""

from __future__ import annotations

import json
from pathlib import Path

import pandas as pd
import pytest

from insiders_spark.cli import main
from insiders_spark.core.config import load_config
from insiders_spark.features.table import prepare_customers
from insiders_spark.storage.synthetic import ORDERS, ORDERS_COLUMNS, SyntheticLogSpec, write_parquet

COLUMNS = ",".join(f"{name}={source}" for name, source in ORDERS_COLUMNS.items())


@pytest.fixture(scope="module")
def orders(tmp_path_factory) -> Path:
    folder = tmp_path_factory.mktemp("orders") / "log"
    write_parquet(SyntheticLogSpec(lines=20_000, seed=11), folder, chunk_lines=10_000, layout=ORDERS)
    return folder


@pytest.fixture(scope="module")
def orders_frame(orders) -> pd.DataFrame:
    return pd.read_parquet(orders)


@pytest.fixture(scope="module")
def orders_run(spark, orders, tmp_path_factory) -> Path:
    output = tmp_path_factory.mktemp("orders-out")
    args = ["run", "--env", "test", "--input", str(orders), "--columns", COLUMNS, "--output", str(output)]
    assert main(args) == 0
    return output


def _manifest(output: Path) -> dict:
    return json.loads(next(output.glob("runs/run_date=*/manifest.json")).read_text())


def test_every_buying_customer_is_segmented_and_the_revenue_is_exact(spark, orders_run, orders_frame):
    bought = orders_frame[orders_frame.units >= 0]
    buyers = bought.client.dropna().nunique() + bought[bought.client.isna()].order_ref.nunique()
    segments = spark.read.parquet(str(next(orders_run.glob("segments/run_date=*"))))
    assert segments.count() == buyers
    manifest = _manifest(orders_run)
    assert manifest["customers"]["segmented"] == buyers
    assert manifest["features"]["gross_revenue_total"] == round(bought.amount.sum(), 2)
    texts = {r.source_customer_id for r in segments.where("not is_guest").select("source_customer_id").collect()}
    assert texts == set(bought.client.dropna())


def test_the_manifest_and_the_report_name_the_mapping_and_what_is_absent(orders_run):
    source = _manifest(orders_run)["input"]
    assert source["columns"] == dict(ORDERS_COLUMNS) and source["customer_ids"] == "text"
    assert set(source["absent"]) == {"description", "unit_price", "country"}
    assert source["dataset"] == {"name": None, "chosen": None} and source["unused_columns"] == []
    report = next(orders_run.glob("report/run_date=*/report.md")).read_text()
    assert "## The input" in report and "| line_amount | `amount` |" in report
    assert "| country | absent: no line is set aside by country |" in report


def test_json_lines_and_orc_of_the_same_lines_give_the_same_customers(spark, orders, orders_frame, tmp_path):
    frame = orders_frame.assign(ordered_at=orders_frame.ordered_at.dt.strftime("%Y-%m-%dT%H:%M:%SZ"))
    frame.to_json(tmp_path / "orders.jsonl", orient="records", lines=True)
    orders_frame.to_orc(tmp_path / "orders.orc", index=False)
    summaries = {}
    for name in ("orders.jsonl", "orders.orc"):
        config = load_config(
            env="test",
            environ={},
            overrides={"input.path": str(tmp_path / name), "input.columns": dict(ORDERS_COLUMNS)},
        )
        table = prepare_customers(spark, config)
        summaries[name] = (table.summary.with_purchases, table.accounting.kept, table.source.customer_ids)
        table.unpersist()
    bought = orders_frame[orders_frame.units >= 0]
    buyers = bought.client.dropna().nunique() + bought[bought.client.isna()].order_ref.nunique()
    assert summaries["orders.jsonl"] == summaries["orders.orc"] == (buyers, len(orders_frame), "text")


def test_a_log_of_amounts_and_dates_only(spark, orders_frame, tmp_path):
    """No invoice, quantity or product: one invoice per customer and day, one item a line, no
    qty_products; a date-only pattern."""
    frame = pd.DataFrame(
        {
            "Order Date": orders_frame.ordered_at.dt.strftime("%d/%m/%Y"),
            "Client": orders_frame.client,
            "Total": orders_frame.amount,
        }
    )
    frame.to_csv(tmp_path / "sales.csv", index=False)
    output = tmp_path / "out"
    args = [
        "run", "--env", "test", "--input", str(tmp_path / "sales.csv"), "--output", str(output),
        "--columns", "customer_id=Client,invoice_date=Order Date,line_amount=Total",
        "--timestamp-format", "dd/MM/yyyy",
    ]  # fmt: skip
    assert main(args) == 0
    segments = spark.read.parquet(str(next(output.glob("segments/run_date=*"))))
    assert segments.where("qty_products is not null").count() == 0
    profiles = pd.read_csv(next(output.glob("report/run_date=*/profiles.csv")))
    assert profiles.qty_products_mean.isna().all()
    rules = spark.read.parquet(str(next(output.glob("rules/run_date=*")))).select("rule").collect()
    assert not any("qty_products" in r.rule for r in rules)
    bought = frame[frame.Total >= 0]
    manifest = _manifest(output)
    assert manifest["features"]["gross_revenue_total"] == round(bought.Total.sum(), 2)
    assert set(manifest["input"]["absent"]) >= {"invoice_id", "quantity", "product_id", "unit_price"}


def test_a_catalog_table_read_up_to_the_as_of_date(spark, orders, tmp_path):
    spark.read.parquet(str(orders)).createOrReplaceTempView("orders_table")
    output = tmp_path / "out"
    args = ["run", "--env", "test", "--table", "orders_table", "--columns", COLUMNS, "--output", str(output),
            "--as-of", "2011-06-30", "--no-stability"]  # fmt: skip
    assert main(args) == 0
    manifest = _manifest(output)
    assert manifest["input"]["format"] == "table" and manifest["input"]["scan_filter"] == "ordered_at < 2011-07-01"
    kept = spark.table("orders_table").where("ordered_at < '2011-07-01'").count()
    assert manifest["rows"]["input"] == manifest["rows"]["kept"] == kept


@pytest.mark.parametrize(
    ("columns", "status", "message"),
    [
        ("customer_id=cust,invoice_date=ordered_at,line_amount=amount", 1, "column 'cust' (mapped to customer_id)"),
        ("customer=client", 2, "unknown column name(s) customer"),
        ("customer_id=client,invoice_id=client", 2, "'client' is mapped twice"),
        ("customer_id=client,invoice_date=ordered_at", 1, "no unit_price or line_amount column"),
    ],
)
def test_a_mapping_that_cannot_work_stops_with_one_line(spark, orders, tmp_path, capsys, columns, status, message):
    args = ["run", "--env", "test", "--input", str(orders), "--columns", columns, "--output", str(tmp_path / "out")]
    assert main(args) == status
    error = capsys.readouterr().err
    assert message in error and "Traceback" not in error
