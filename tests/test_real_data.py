"""The real Online Retail log: the study's counts and every published reference row.

Skips with a reason where ../shared is not beside the project (a user's fresh clone).
"""

import csv
import json

import pytest
from chispa import assert_df_equality
from pyspark.sql import functions as F

from insiders_spark.core.config import load_config
from insiders_spark.features.table import prepare_customers
from insiders_spark.runs.runner import run

pytestmark = pytest.mark.real_data

# Tolerance: half a unit of the last digit the reference publishes for each feature.
PUBLISHED_DECIMALS = {"gross_revenue": 2, "frequency": 4}
INTEGER_FEATURES = ("recency_days", "qty_invoices", "qty_items", "qty_products", "qty_returns")


@pytest.fixture(scope="module")
def real_run(spark, real_log_parquet, tmp_path_factory):
    output = tmp_path_factory.mktemp("real")
    config = load_config(env="test", overrides={"input.path": str(real_log_parquet), "output.path": str(output)}, environ={})
    result = run(spark, config)
    segments = spark.read.parquet(str(output / "segments")).drop("run_date").cache()
    return result, segments, output


def test_study_counts(real_run):
    result, segments, _ = real_run
    metrics = result.metrics
    assert metrics["rows"]["input"] == 541_909
    assert metrics["rows"]["kept"] == 536_139
    assert metrics["rows"]["input"] == metrics["rows"]["kept"] + metrics["rows"]["quarantined_total"]
    assert metrics["customers"]["with_kept_lines"] == 5_786
    assert metrics["customers"]["returns_only"] == 91
    # guest invoices among the customers (the pandas reference counts the same 1,430 on its own)
    assert metrics["customers"]["guests"] == 1_430
    assert metrics["customers"]["segmented"] == segments.count() == 5_695
    assert metrics["features"]["gross_revenue_total"] == pytest.approx(10_104_658.35, abs=0.005)
    assert result.as_of.isoformat() == "2011-12-09"


def test_every_reference_row_is_reproduced(real_run, reference_features):
    _, segments, _ = real_run
    with open(reference_features, newline="") as handle:
        references = list(csv.DictReader(handle))
    assert len(references) >= 8
    ours = {r.customer_id: r for r in segments.where(F.col("customer_id").isin([int(x["customer_id"]) for x in references])).collect()}
    for reference in references:
        row = ours[int(reference["customer_id"])]
        for name, decimals in PUBLISHED_DECIMALS.items():
            assert round(getattr(row, name), decimals) == pytest.approx(float(reference[name])), (reference["customer_id"], name)
        for name in INTEGER_FEATURES:
            assert getattr(row, name) == int(reference[name]), (reference["customer_id"], name)


def test_metrics_file_matches_the_result(real_run):
    result, _, output = real_run
    on_disk = json.loads((output / "runs" / "run_date=2011-12-09" / "metrics.json").read_text())
    assert on_disk["rows"] == result.metrics["rows"]
    assert on_disk["insiders"]["customers"] == result.profiles[0].customers


def test_daily_csv_drops_give_the_same_features_as_the_parquet(spark, real_run, real_log_by_day):
    _, segments, _ = real_run
    config = load_config(env="test", overrides={"input.path": str(real_log_by_day)}, environ={})
    table = prepare_customers(spark, config)
    assert table.source.format == "csv" and len(table.source.files) == 305
    assert table.accounting.input == 541_909 and table.accounting.kept == 536_139
    columns = ["customer_id", "recency_days", "qty_invoices", "qty_items", "qty_products", "qty_returns"]
    assert_df_equality(
        table.features().select(*columns, F.round("gross_revenue", 2).alias("revenue")),
        segments.select(*columns, F.round("gross_revenue", 2).alias("revenue")),
        ignore_row_order=True,
        ignore_nullable=True,
    )
    table.unpersist()
