"""From one run to the next (``segments.continuity``): who entered, left and stayed among the
Insiders, with hysteresis, and which retrained cluster is which previous one."""

import datetime as dt

import pytest
from chispa import assert_df_equality

from insiders_spark.segments.continuity import churn_counts, match_clusters, previous_run_date, with_insider_history

SEGMENT_DDL = "customer_id long, cluster int, segment string, is_insider boolean"
HISTORY_DDL = "customer_id long, is_insider boolean, insider_since date, runs_outside_insiders int"


def test_churn_by_hand(spark):
    previous = spark.createDataFrame(
        [
            (1, True, dt.date(2011, 1, 1), 0),
            (2, True, dt.date(2011, 6, 1), 0),
            (3, True, dt.date(2011, 2, 1), 0),
            (4, False, None, None),
        ],
        HISTORY_DDL,
    )
    current = spark.createDataFrame(
        [(1, 1, "Insiders", True), (2, 3, "Loyal", False), (4, 1, "Insiders", True), (5, 2, "Loyal", False)],
        SEGMENT_DDL,
    )
    run_date = dt.date(2011, 12, 9)
    history = with_insider_history(current, previous, run_date=run_date, hysteresis_runs=1)
    expected = spark.createDataFrame(
        [
            (1, 1, "Insiders", True, dt.date(2011, 1, 1), 0),  # stayed: keeps the start of its spell
            (2, 3, "Loyal", False, None, None),  # left
            (4, 1, "Insiders", True, run_date, 0),  # entered today
            (5, 2, "Loyal", False, None, None),
        ],
        SEGMENT_DDL + ", insider_since date, runs_outside_insiders int",
    )
    assert_df_equality(history, expected, ignore_row_order=True, ignore_nullable=True)
    counts = churn_counts(history, previous, dt.date(2011, 9, 9))
    # 3 was an Insider and is gone from today's customers altogether: it left too
    assert (counts.insiders, counts.entered, counts.left, counts.stayed, counts.in_grace) == (2, 1, 2, 1, 0)


def test_hysteresis_keeps_an_insider_for_n_runs_outside(spark):
    previous = spark.createDataFrame([(2, True, dt.date(2011, 6, 1), 0)], HISTORY_DDL)
    outside = spark.createDataFrame([(2, 3, "Loyal", False)], SEGMENT_DDL)
    first = with_insider_history(outside, previous, run_date=dt.date(2011, 10, 1), hysteresis_runs=2).first()
    assert first.is_insider and first.insider_since == dt.date(2011, 6, 1) and first.runs_outside_insiders == 1
    state = spark.createDataFrame([(2, True, dt.date(2011, 6, 1), 1)], HISTORY_DDL)
    second = with_insider_history(outside, state, run_date=dt.date(2011, 11, 1), hysteresis_runs=2).first()
    assert not second.is_insider and second.insider_since is None


def test_a_previous_partition_from_before_the_history_columns_still_continues(spark):
    """Segments published before insider_since and runs_outside_insiders existed: the first run
    after an upgrade continues from them (the start of a spell is unknown: null), not fails."""
    older = spark.createDataFrame([(1, 1, "Insiders", True), (2, 2, "Loyal", False)], SEGMENT_DDL)
    current = spark.createDataFrame([(1, 1, "Insiders", True), (2, 1, "Insiders", True)], SEGMENT_DDL)
    run_date = dt.date(2011, 12, 9)
    history = with_insider_history(current, older, run_date=run_date, hysteresis_runs=2)
    expected = spark.createDataFrame(
        [(1, 1, "Insiders", True, None, 0), (2, 1, "Insiders", True, run_date, 0)],
        SEGMENT_DDL + ", insider_since date, runs_outside_insiders int",
    )
    assert_df_equality(history, expected, ignore_row_order=True, ignore_nullable=True)


# --- cluster identity across retrains ----------------------------------------------------------

MATCH_DDL = "customer_id long, cluster int, segment string"


def _assigned(spark, clusters):
    """Customers 1.. in the given clusters: [(cluster, segment, how many), ...]."""
    rows, customer = [], 1
    for cluster, segment, count in clusters:
        for _ in range(count):
            rows.append((customer, cluster, segment))
            customer += 1
    return spark.createDataFrame(rows, MATCH_DDL)


def test_clusters_are_matched_by_their_customers_not_their_numbers(spark):
    """The previous model's clusters 2 and 3 hold the same customers as today's 3 and 2 (numbers
    swapped by a small shift in the means), with a few customers moved: each is matched to its
    own group, the Jaccard computed by hand."""
    previous = _assigned(spark, [(1, "Insiders", 10), (2, "Loyal", 40), (3, "New", 50)])
    current = _assigned(spark, [(1, "Insiders", 10), (3, "Promising", 38), (2, "At risk", 52)])
    matches = {m.cluster: m for m in match_clusters(current, previous)}
    assert sorted(matches) == [1, 2, 3]
    assert (matches[1].previous_cluster, matches[1].previous_segment, matches[1].jaccard) == (1, "Insiders", 1.0)
    # today's 3 = customers 11-48; the previous 2 = 11-50: 38 in common of 40
    assert (matches[3].previous_cluster, matches[3].previous_segment) == (2, "Loyal")
    assert matches[3].jaccard == pytest.approx(38 / 40, abs=1e-4)
    # today's 2 = customers 49-100; the previous 3 = 51-100: 50 in common of 52
    assert (matches[2].previous_cluster, matches[2].previous_segment, matches[2].segment) == (3, "New", "At risk")
    assert matches[2].jaccard == pytest.approx(50 / 52, abs=1e-4)
    assert matches[2].revenue_rank is None  # the run's lineage fills it in


def test_a_cluster_below_the_minimum_overlap_matches_nothing(spark):
    """Today's cluster 2 takes half of the previous 2 and half of the previous 3: its best pairing
    has a Jaccard of 1/3 and does not count as the same group; customers only one run has are
    ignored."""
    previous = _assigned(spark, [(1, "Insiders", 10), (2, "Loyal", 20), (3, "New", 20)])
    current = _assigned(spark, [(1, "Insiders", 10), (3, "New", 10), (2, "Mixed", 20), (3, "New", 10)])
    extra = spark.createDataFrame([(999, 1, "Insiders")], MATCH_DDL)  # a new customer: no pair
    matches = {m.cluster: m for m in match_clusters(current.unionByName(extra), previous, min_jaccard=0.5)}
    assert matches[1].previous_cluster == 1 and matches[1].jaccard == 1.0  # customer 999 is not counted
    assert matches[2].previous_cluster is None and matches[2].previous_segment is None
    assert matches[2].jaccard == pytest.approx(1 / 3, abs=1e-4)  # recorded, below the minimum
    lenient = {m.cluster: m for m in match_clusters(current, previous, min_jaccard=0.3)}
    assert lenient[2].previous_cluster in (2, 3)


def test_the_previous_run_date_is_the_latest_before_this_one(spark, tmp_path):
    for folder in ("run_date=2011-09-09", "run_date=2011-10-09", "run_date=2011-12-09", "run_date=oops", "_staging"):
        (tmp_path / "segments" / folder).mkdir(parents=True)
    assert previous_run_date(spark, str(tmp_path), "segments", dt.date(2011, 12, 9)) == dt.date(2011, 10, 9)
    assert previous_run_date(spark, str(tmp_path), "segments", dt.date(2011, 12, 10)) == dt.date(2011, 12, 9)
    assert previous_run_date(spark, str(tmp_path), "segments", dt.date(2011, 9, 9)) is None
    assert previous_run_date(spark, str(tmp_path), "profiles", dt.date(2011, 12, 9)) is None  # no such table
