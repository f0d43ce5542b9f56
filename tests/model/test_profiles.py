"""Ranking clusters by revenue and naming them from what they are (``model.profiles``); the real
log's nine names are checked against the same rule in tests/runs/test_real_log.py."""

import pytest
from chispa import assert_df_equality

from insiders_spark.model.profiles import (
    build_profiles,
    carry_over_identity,
    disambiguated_names,
    returns_rate,
    segment_base_name,
    with_clusters,
)

POPULATION = {"gross_revenue_mean": 1000.0, "recency_days_mean": 100.0, "qty_items_mean": 98.0, "qty_returns_mean": 2.0}


def _summary(kmeans_cluster, customers, revenue_mean, recency, invoices=3.0, **means):
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
        **{f"{name}_mean": value for name, value in means.items()},
    }


@pytest.mark.parametrize(
    ("revenue", "recency", "invoices", "name"),
    [
        (1500, 50, 5, "Loyal"),
        (1000, 100, 1, "Loyal"),  # at the population's means: valuable and recent
        (1500, 120, 5, "At risk"),
        (1500, 400, 1, "At risk"),
        (500, 80, 3, "Promising"),
        (500, 80, 1.2, "New"),
        (500, 130, 2, "Need attention"),
        (500, 150, 1.9, "About to sleep"),  # up to 1.5 times the population's recency: lapsing
        (500, 151, 3, "Hibernating"),
        (500, 250, 1.1, "Lost"),
    ],
)
def test_names_follow_the_profile(revenue, recency, invoices, name):
    assert segment_base_name(_summary(0, 10, revenue, recency, invoices), POPULATION) == name


def test_frequent_returners_need_three_times_the_population_rate_and_ten_percent():
    assert returns_rate(POPULATION) == pytest.approx(0.02)
    returners = _summary(0, 10, 500, 80, qty_items=80.0, qty_returns=20.0)  # 20%
    assert segment_base_name(returners, POPULATION) == "Frequent returners"
    some_returns = _summary(0, 10, 500, 80, qty_items=92.0, qty_returns=8.0)  # 8%: four times, below 10%
    assert segment_base_name(some_returns, POPULATION) == "Promising"
    everyone_returns = {**POPULATION, "qty_items_mean": 85.0, "qty_returns_mean": 15.0}  # 15%
    assert segment_base_name(returners, everyone_returns) == "Promising"


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


def test_same_names_are_told_apart_by_the_trait_that_differs_most():
    broad = _summary(1, 10, 600.0, 80.0, qty_products=120.0)
    narrow = _summary(2, 10, 500.0, 85.0, qty_products=12.0)  # products differ 10x, spend 1.2x
    assert disambiguated_names("Promising", [broad, narrow]) == [
        "Promising (broad baskets)",
        "Promising (narrow baskets)",
    ]
    assert disambiguated_names("Promising", [narrow, broad]) == [
        "Promising (narrow baskets)",
        "Promising (broad baskets)",
    ]
    three = [_summary(i, 10, 100.0 * (3 - i), 300.0) for i in range(3)]  # only spend differs
    assert disambiguated_names("Lost", three) == ["Lost (higher spend)", "Lost (mid spend)", "Lost (lower spend)"]
    same = [_summary(i, 10, 100.0, 300.0) for i in range(2)]  # no trait differs: numbered
    assert disambiguated_names("Lost", same) == ["Lost", "Lost (2)"]


def test_four_or_more_same_names_are_told_apart_by_tier_then_by_a_second_trait():
    # five "About to sleep" clusters (as the synthetic log gives): spend differs most (625 to 4),
    # then, within the higher and the middle third, the ticket size
    five = [
        _summary(0, 10, 625.0, 146.0, avg_ticket=55.0),
        _summary(1, 10, 320.0, 138.0, avg_ticket=15.0),
        _summary(2, 10, 115.0, 157.0, avg_ticket=39.0),
        _summary(3, 10, 40.0, 169.0, avg_ticket=35.0),
        _summary(4, 10, 4.0, 151.0, avg_ticket=4.0),
    ]
    assert disambiguated_names("About to sleep", five) == [
        "About to sleep (higher spend, large tickets)",
        "About to sleep (higher spend, small tickets)",
        "About to sleep (mid spend, large tickets)",
        "About to sleep (mid spend, small tickets)",
        "About to sleep (lower spend)",
    ]
    # only spend differs: the tiers, and a number where nothing else tells two apart
    four = [_summary(i, 10, 100.0 - i, 300.0) for i in range(4)]
    assert disambiguated_names("Lost", four) == [
        "Lost (higher spend)",
        "Lost (higher spend, 2)",
        "Lost (mid spend)",
        "Lost (lower spend)",
    ]
    # ten: a third of four members is numbered within it; every name stays unique
    ten = [_summary(i, 10, 1000.0 / (i + 1), 300.0, qty_products=5.0 + i) for i in range(10)]
    names = disambiguated_names("Lost", ten)
    assert len(set(names)) == 10 and names[:2] == ["Lost (higher spend)", "Lost (higher spend, 2)"]


def test_names_in_a_ranking_are_unique_and_insiders_come_first():
    summaries = [_summary(i, 10, 100.0 - i, 300.0, qty_products=5.0 + i) for i in range(3)] + [
        _summary(9, 1, 5000.0, 5.0)
    ]
    names = [p.segment for p in build_profiles(summaries)]
    # population recency is ~290 days: 300 is lapsing; low value repeat buyers need attention
    assert names[0] == "Insiders"
    assert names[1:] == [
        "Need attention (narrow baskets)",
        "Need attention (mid baskets)",
        "Need attention (broad baskets)",
    ]


def test_with_clusters_maps_kmeans_ids_to_ranks(spark):
    profiles = build_profiles([_summary(0, 2, 10.0, 50.0), _summary(1, 1, 99.0, 5.0)])
    scored = spark.createDataFrame([(1, 0), (2, 0), (3, 1)], "customer_id long, kmeans_cluster int")
    got = with_clusters(scored, profiles, cluster_col="kmeans_cluster")
    expected = spark.createDataFrame(
        [(1, 2, profiles[1].segment, False), (2, 2, profiles[1].segment, False), (3, 1, "Insiders", True)],
        "customer_id long, cluster int, segment string, is_insider boolean",
    )
    assert_df_equality(got, expected, ignore_row_order=True, ignore_nullable=True, ignore_column_order=True)


def test_a_matched_cluster_keeps_its_number_and_name_when_the_means_shift():
    """Two Promising clusters whose means cross between models (the same customers, Jaccard ~0.99):
    without the carry-over they would swap numbers and names."""
    before = build_profiles(
        [
            _summary(0, 50, 5000, 10),
            _summary(1, 200, 310, 40, qty_items=40.0),
            _summary(2, 200, 280, 40),
            _summary(3, 500, 50, 300),
        ]
    )
    after = build_profiles(
        [
            _summary(10, 50, 5000, 10),
            _summary(11, 200, 280, 40, qty_items=40.0),
            _summary(12, 200, 310, 40),
            _summary(13, 500, 50, 300),
        ]
    )
    by_kmeans = {p.kmeans_cluster: p for p in before}
    assert {p.kmeans_cluster: p.cluster for p in after}[11] != by_kmeans[1].cluster  # the ranks did swap
    matches = {  # new cluster number -> the previous cluster holding the same customers
        p.cluster: (by_kmeans[p.kmeans_cluster - 10].cluster, by_kmeans[p.kmeans_cluster - 10].segment) for p in after
    }
    carried = carry_over_identity(after, matches)
    assert [p.cluster for p in carried] == [1, 2, 3, 4]
    for profile in carried:  # every group keeps what it was called, Insiders first
        previous = by_kmeans[profile.kmeans_cluster - 10]
        assert (profile.cluster, profile.segment) == (previous.cluster, previous.segment)
        assert profile.is_insider == (profile.cluster == 1)


def test_the_insiders_stay_first_and_unmatched_clusters_take_the_numbers_left():
    profiles = build_profiles(
        [_summary(0, 50, 5000, 10), _summary(1, 200, 900, 40), _summary(2, 200, 300, 40), _summary(3, 500, 50, 300)]
    )
    names = {p.cluster: p.segment for p in profiles}
    matches = {
        1: (3, "Old name of 3"),  # the new top cluster matched the old 3: it is still cluster 1, the Insiders
        2: (1, "Insiders"),  # the old Insiders are no longer the top revenue: the number 1 is not carried
        3: (9, "Gone"),  # beyond this model's k: not carried
        4: (2, names[2]),  # carries the name another cluster has too
    }
    carried = {p.kmeans_cluster: (p.cluster, p.segment) for p in carry_over_identity(profiles, matches)}
    assert carried[0] == (1, names[1])
    assert carried[3] == (2, names[2])
    assert carried[1] == (3, f"{names[2]} (cluster 3)")  # free number, in revenue order; its name was taken
    assert carried[2] == (4, names[3])


def test_a_custom_insiders_name_names_cluster_one_and_nothing_else():
    summaries = [_summary(0, 50, 100.0, 200.0), _summary(1, 5, 9000.0, 10.0), _summary(2, 45, 400.0, 150.0)]
    profiles = build_profiles(summaries, insiders_name="VIP")
    assert (profiles[0].cluster, profiles[0].segment, profiles[0].is_insider) == (1, "VIP", True)
    assert all(p.segment != "VIP" and not p.is_insider for p in profiles[1:])


def test_profiles_become_a_frame_of_their_schema(spark):
    from insiders_spark.model.profiles import PROFILE_SCHEMA, to_profiles_frame

    profiles = build_profiles([_summary(0, 2, 10.0, 50.0), _summary(1, 1, 99.0, 5.0)])
    frame = to_profiles_frame(spark, profiles)
    assert frame.schema == PROFILE_SCHEMA
    rows = frame.orderBy("cluster").collect()
    assert [(r.cluster, r.segment, r.customers, r.kmeans_cluster) for r in rows] == [
        (1, "Insiders", 1, 1), (2, profiles[1].segment, 2, 0),
    ]  # fmt: skip
    assert rows[0].revenue_share == pytest.approx(99.0 / 119.0)
