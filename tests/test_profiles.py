"""Ranking clusters by revenue and naming them from what they are."""

import pytest
from chispa import assert_df_equality

from insiders_spark.profiles import build_profiles, segment_base_name, with_clusters

POPULATION = {"gross_revenue_mean": 1000.0, "recency_days_mean": 100.0}


def _summary(kmeans_cluster, customers, revenue_mean, recency, invoices=3.0):
    return {
        "kmeans_cluster": kmeans_cluster,
        "customers": customers,
        "revenue_total": revenue_mean * customers,
        "gross_revenue_mean": revenue_mean,
        "recency_days_mean": recency,
        "qty_invoices_mean": invoices,
        "qty_items_mean": 10.0,
        "qty_products_mean": 5.0,
        "frequency_mean": 0.1,
        "qty_returns_mean": 0.0,
        "avg_ticket_mean": 20.0,
    }


@pytest.mark.parametrize(
    ("revenue", "recency", "invoices", "name"),
    [
        (1500, 50, 5, "Loyal"),
        (1000, 100, 5, "Loyal"),
        (1500, 150, 5, "At risk"),
        (500, 80, 3, "Promising"),
        (500, 80, 1.2, "New"),
        (500, 150, 3, "Hibernating"),
        (500, 250, 3, "Lost"),
    ],
)
def test_names_follow_the_profile(revenue, recency, invoices, name):
    assert segment_base_name(_summary(0, 10, revenue, recency, invoices), POPULATION) == name


def test_clusters_are_ranked_by_mean_revenue_and_insiders_is_first():
    summaries = [_summary(0, 50, 100.0, 200.0), _summary(1, 5, 9000.0, 10.0), _summary(2, 45, 400.0, 150.0)]
    profiles = build_profiles(summaries)
    assert [p.kmeans_cluster for p in profiles] == [1, 2, 0]
    assert [p.cluster for p in profiles] == [1, 2, 3]
    assert profiles[0].segment == "Insiders" and profiles[0].is_insider
    assert not any(p.is_insider for p in profiles[1:])
    assert sum(p.customers for p in profiles) == 100
    assert sum(p.customer_share for p in profiles) == pytest.approx(1.0)
    assert sum(p.revenue_share for p in profiles) == pytest.approx(1.0)
    assert profiles[0].revenue_share == pytest.approx(45000 / (5000 + 45000 + 18000))


def test_repeated_names_are_numbered_by_revenue_rank():
    summaries = [_summary(i, 10, 100.0 - i, 300.0) for i in range(3)] + [_summary(9, 1, 5000.0, 5.0)]
    names = [p.segment for p in build_profiles(summaries)]
    # population recency is ~290 days, so 300 is lapsing but not twice that: Hibernating
    assert names == ["Insiders", "Hibernating", "Hibernating (2)", "Hibernating (3)"]


def test_with_clusters_maps_kmeans_ids_to_ranks(spark):
    profiles = build_profiles([_summary(0, 2, 10.0, 50.0), _summary(1, 1, 99.0, 5.0)])
    scored = spark.createDataFrame([(1, 0), (2, 0), (3, 1)], "customer_id long, kmeans_cluster int")
    got = with_clusters(scored, profiles, cluster_col="kmeans_cluster")
    expected = spark.createDataFrame(
        [(1, 2, profiles[1].segment, False), (2, 2, profiles[1].segment, False), (3, 1, "Insiders", True)],
        "customer_id long, cluster int, segment string, is_insider boolean",
    )
    assert_df_equality(got, expected, ignore_row_order=True, ignore_nullable=True, ignore_column_order=True)
