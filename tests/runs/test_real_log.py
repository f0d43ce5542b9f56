"""The real Online Retail log (``real_log_run``, tests/jobs.py): the study's counts, every published
reference row, the headline numbers of the segmentation, names that follow the documented rule,
and the daily CSV drops of the same log giving the same customers.

Skips with a reason where ../shared is not beside the project (a user's fresh clone).
"""

from __future__ import annotations

import csv

import pytest
from chispa import assert_df_equality
from pyspark.sql import functions as F

from insiders_spark.core.names import NAMES
from insiders_spark.features.table import prepare_customers
from tests import support

pytestmark = pytest.mark.real_data

# Tolerance: half a unit of the last digit the reference publishes for each feature.
PUBLISHED_DECIMALS = {"gross_revenue": 2, "frequency": 4}
INTEGER_FEATURES = ("recency_days", "qty_invoices", "qty_items", "qty_products", "qty_returns")


@pytest.fixture(scope="module")
def segments(spark, real_log_run):
    return real_log_run.table(spark, "segments").cache()


def test_the_study_counts(real_log_run, segments):
    manifest = real_log_run.manifest()
    rows = manifest["rows"]
    assert (rows["input"], rows["kept"], rows["after_as_of"]) == (541_909, 536_139, 0)
    assert rows["input"] == rows["kept"] + rows["quarantined_total"]
    # guest invoices among the customers: the pandas reference (benchmarks/) counts the same 1,430
    assert manifest["customers"] == {"with_kept_lines": 5_786, "segmented": 5_695, "returns_only": 91, "guests": 1_430}
    assert segments.count() == 5_695
    assert manifest["features"]["gross_revenue_total"] == pytest.approx(10_104_658.35, abs=0.005)
    assert manifest["as_of"] == manifest["run_date"] == "2011-12-09"


def test_the_headline_numbers(real_log_run, segments):
    """489 Insiders, 8.6% of the customers with 53.8% of the revenue, silhouette 0.878 (README)."""
    insiders = (
        segments.where(F.col("cluster") == 1)
        .agg(F.count(F.lit(1)).alias("customers"), F.sum("gross_revenue").alias("revenue"))
        .first()
    )
    total = segments.agg(F.sum("gross_revenue")).first()[0]
    assert insiders["customers"] == 489
    assert insiders["customers"] / 5_695 == pytest.approx(0.086, abs=5e-4)
    assert insiders["revenue"] / total == pytest.approx(0.538, abs=5e-4)
    manifest = real_log_run.manifest()
    assert (manifest["insiders"]["customers"], manifest["clustering"]["k"]) == (489, 9)
    assert manifest["clustering"]["silhouette"] == pytest.approx(0.878, abs=5e-4)
    assert segments.where(F.col("is_insider") != (F.col("cluster") == 1)).count() == 0


def test_every_reference_row_is_reproduced(segments, reference_features):
    with open(reference_features, newline="") as handle:
        references = list(csv.DictReader(handle))
    assert len(references) >= 8
    ids = [int(x["customer_id"]) for x in references]
    ours = {r.customer_id: r for r in segments.where(F.col("customer_id").isin(ids)).collect()}
    for reference in references:
        row = ours[int(reference["customer_id"])]
        for name, decimals in PUBLISHED_DECIMALS.items():
            assert round(getattr(row, name), decimals) == pytest.approx(float(reference[name])), (row.customer_id, name)
        for name in INTEGER_FEATURES:
            assert getattr(row, name) == int(reference[name]), (row.customer_id, name)


def _base_name(profile, population) -> str:
    """The documented rule (model/profiles.py) written out again: returners, then value x recency
    tier x repeat."""
    moved = profile["qty_items_mean"] + profile["qty_returns_mean"]
    rate = profile["qty_returns_mean"] / moved if moved else 0.0
    everyone = population["qty_items_mean"] + population["qty_returns_mean"]
    if rate >= 0.10 and rate >= 3 * population["qty_returns_mean"] / everyone:
        return "Frequent returners"
    recency, typical = profile["recency_days_mean"], population["recency_days_mean"]
    tier = "recent" if recency <= typical else "lapsing" if recency <= 1.5 * typical else "gone"
    return NAMES[(profile["gross_revenue_mean"] >= population["gross_revenue_mean"], tier,
                  profile["qty_invoices_mean"] >= 2)]  # fmt: skip


def test_the_nine_names_follow_the_rule_and_are_distinct(spark, real_log_run, segments):
    """Each cluster's name, from its profile measured again on the segments: the Insiders first,
    every other cluster's name its rule's (with the words that tell same-named clusters apart)."""
    clusters = {
        r.cluster: r.asDict()
        for r in segments.groupBy("cluster", "segment")
        .agg(
            F.count(F.lit(1)).alias("customers"),
            *[F.avg(name).alias(f"{name}_mean") for name in
              ("gross_revenue", "recency_days", "qty_invoices", "qty_items", "qty_returns")],
        )
        .collect()
    }  # fmt: skip
    total = sum(c["customers"] for c in clusters.values())
    population = {
        name: sum(c[name] * c["customers"] for c in clusters.values()) / total
        for name in ("gross_revenue_mean", "recency_days_mean", "qty_items_mean", "qty_returns_mean")
    }
    assert clusters[1]["segment"] == "Insiders"
    names = [clusters[c]["segment"] for c in sorted(clusters)]
    assert len(set(names)) == 9
    for cluster, profile in clusters.items():
        if cluster != 1:
            base = _base_name(profile, population)
            assert profile["segment"] == base or profile["segment"].startswith(f"{base} ("), (cluster, profile)


def test_daily_csv_drops_give_the_same_customers_as_the_parquet(spark, segments, real_log_by_day):
    config = support.config({"input.path": str(real_log_by_day)})
    table = prepare_customers(spark, config)
    try:
        assert table.source.raw.format == "csv" and len(table.source.raw.files) == 305
        assert (table.accounting.input, table.accounting.kept) == (541_909, 536_139)
        columns = ["customer_id", "recency_days", "qty_invoices", "qty_items", "qty_products", "qty_returns"]
        assert_df_equality(
            table.features().select(*columns, F.round("gross_revenue", 2).alias("revenue")),
            segments.select(*columns, F.round("gross_revenue", 2).alias("revenue")),
            ignore_row_order=True,
            ignore_nullable=True,
        )
    finally:
        table.unpersist()
