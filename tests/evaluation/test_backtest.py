"""Backtest computations on hand-built cases (``evaluation.backtest``): revenue windows and the
trend features, rankings, the capture curve, the window's denominator (new customers included),
the whole backtest on a tiny log, and the trend scorer learning what the study's features cannot see."""

import dataclasses
import datetime as dt

import pytest

from insiders_spark.core.config import load_config
from insiders_spark.core.errors import BacktestError
from insiders_spark.core.names import (
    BASELINE,
    BASELINE_REGISTERED,
    FORESIGHT,
    FUTURE_REVENUE_TREE,
    FUTURE_REVENUE_TREE_TREND,
)
from insiders_spark.core.names import (
    INSIDERS_POINT as INSIDERS,
)
from insiders_spark.core.names import (
    SEGMENTS_SCORER as SEGMENTS,
)
from insiders_spark.evaluation.backtest import (
    NEXT_REVENUE,
    RANK_KEY,
    capture_curve,
    gap_closed,
    head_counts,
    last_invoice_date,
    run_backtest,
    to_ranks,
    to_revenue_windows,
    with_model_features,
)

# --- revenue windows ---------------------------------------------------------------------------

LINES_DDL = "invoice_id string, customer_id long, quantity long, unit_price double, invoice_ts timestamp, reason string"


def _with_revenue_units(lines):
    """Parsed lines carry each line's revenue in exact 1/10,000 units (``cleaning.parsing.revenue_units``)."""
    return lines.selectExpr("*", "CAST(ROUND(quantity * unit_price * 10000) AS BIGINT) AS revenue_units")


def _ts(day):
    return dt.datetime.fromisoformat(f"{day} 10:00:00")


def test_revenue_windows_split_by_age_and_number_guests(spark):
    as_of = dt.date(2011, 6, 30)
    lines = spark.createDataFrame(
        [
            ("1", 7, 2, 10.0, _ts("2011-06-30"), None),  # age 0: recent
            ("2", 7, 1, 5.0, _ts("2011-06-01"), None),  # age 29: recent (horizon 30)
            ("3", 7, 1, 8.0, _ts("2011-05-31"), None),  # age 30: previous
            ("4", 7, 1, 100.0, _ts("2011-04-30"), None),  # age 61: neither
            ("4", 7, -1, 100.0, _ts("2011-06-15"), None),  # a return: not revenue
            ("5", 7, 1, 999.0, _ts("2011-06-15"), "non_product_code"),  # not kept
            ("G1", None, 3, 1.0, _ts("2011-06-20"), None),  # guest invoice numbered 19000
            ("G2", None, 1, 4.0, _ts("2011-06-29"), None),  # a guest the table does not number
            ("9", 8, 1, 2.0, _ts("2011-07-01"), "after_as_of"),
        ],
        LINES_DDL,
    ).transform(_with_revenue_units)
    customers = spark.createDataFrame([(7, None), (19000, "G1")], "customer_id long, guest_invoice_no string")
    got = {
        row["customer_id"]: row for row in to_revenue_windows(lines, customers, as_of=as_of, horizon_days=30).collect()
    }
    assert set(got) == {7, 19000, None}
    assert got[7]["revenue_recent"] == pytest.approx(25.0)
    assert got[7]["revenue_previous"] == pytest.approx(8.0)
    assert got[7]["revenue_decayed"] == pytest.approx(20 + 5 * 0.5 ** (29 / 30) + 8 * 0.5 + 100 * 0.5 ** (61 / 30))
    assert got[19000]["revenue_recent"] == pytest.approx(3.0)
    assert got[None]["revenue_recent"] == pytest.approx(4.0)


def test_model_features_add_the_windows_the_returns_rate_and_the_guest_flag(spark):
    features = spark.createDataFrame(
        [(7, False, 120.0, 8, 2), (8, False, 40.0, 0, 0), (19000, True, 3.0, 0, 3), (9, False, 0.0, 5, 0)],
        "customer_id long, is_guest boolean, gross_revenue double, qty_returns long, qty_items long",
    )
    windows = spark.createDataFrame(
        [(7, 25.0, 8.0, 30.5), (19000, 3.0, 0.0, 2.9), (None, 4.0, 0.0, 4.0)],  # a new guest: no customer id
        "customer_id long, revenue_recent double, revenue_previous double, revenue_decayed double",
    )
    got = {r.customer_id: r for r in with_model_features(features, windows).collect()}
    assert set(got) == {7, 8, 9, 19000}  # every customer once; the window of a new guest joins nobody
    assert (got[7].revenue_recent, got[7].revenue_previous, got[7].revenue_decayed) == (25.0, 8.0, 30.5)
    assert (got[8].revenue_recent, got[8].revenue_previous, got[8].revenue_decayed) == (0.0, 0.0, 0.0)  # no window
    assert got[7].returns_rate == pytest.approx(8 / (8 + 2))  # returned / (bought + returned) items
    assert got[8].returns_rate == 0.0  # nothing bought or returned: a rate of 0, not a division by zero
    assert got[9].returns_rate == 1.0 and got[19000].returns_rate == 0.0
    assert (got[19000].is_guest_value, got[7].is_guest_value) == (1.0, 0.0)


# --- rankings and the capture curve ------------------------------------------------------------

OUTCOMES = [(1, 100.0), (2, 0.0), (3, 50.0), (4, 25.0), (5, 0.0)]  # customer, next revenue


def _rankings(spark):
    outcomes = spark.createDataFrame(OUTCOMES, f"customer_id long, {NEXT_REVENUE} double")
    key = f"customer_id long, {RANK_KEY} array<double>"
    rankings = {
        # past revenue; 2 and 5 tie, the smaller id first
        BASELINE: spark.createDataFrame([(1, [9.0]), (2, [30.0]), (3, [5.0]), (4, [1.0]), (5, [30.0])], key),
        # a two-level key: the first element decides, the second breaks its ties
        "model": spark.createDataFrame(
            [(1, [1.0, 2.0]), (2, [0.0, 9.0]), (3, [1.0, 3.0]), (4, [1.0, 1.0]), (5, [0.0, 1.0])], key
        ),
    }
    return rankings, outcomes


def test_ranks_follow_the_key_then_the_customer_id(spark):
    rankings, outcomes = _rankings(spark)
    ranks = {(r["scorer"], r["customer_id"]): r["rank"] for r in to_ranks(rankings, outcomes).collect()}
    assert sorted((ranks[(BASELINE, c)], c) for c in range(1, 6)) == [(0, 2), (1, 5), (2, 1), (3, 3), (4, 4)]
    assert sorted((ranks[("model", c)], c) for c in range(1, 6)) == [(0, 3), (1, 1), (2, 4), (3, 2), (4, 5)]


def test_capture_curve_sums_the_first_customers_over_the_whole_window(spark):
    rankings, outcomes = _rankings(spark)
    # the window also holds 75.0 from new customers: the denominator is 250, not 175
    counts = head_counts([0.2, 0.4, 0.6, 1.0], 5)
    assert counts == {0.2: 1, 0.4: 2, 0.6: 3, 1.0: 5}
    curve = capture_curve(to_ranks(rankings, outcomes), counts=counts, window_revenue=250.0)
    got = {(p.scorer, p.share): (p.head_count, p.revenue) for p in curve}
    assert got[(BASELINE, 0.2)] == (1, 0.0)
    assert got[(BASELINE, 0.4)] == (2, 0.0)
    assert got[(BASELINE, 0.6)] == (3, 100.0)
    assert got[(BASELINE, 1.0)] == (5, 175.0)
    assert got[("model", 0.2)] == (1, 50.0)
    assert got[("model", 0.6)] == (3, 175.0)
    shares = {(p.scorer, p.share): p.revenue_share for p in curve}
    assert shares[("model", 0.6)] == pytest.approx(0.7)
    assert shares[(BASELINE, 1.0)] == shares[("model", 1.0)] == pytest.approx(0.7)


def test_head_counts_round_and_keep_at_least_one():
    assert head_counts([0.1, 0.05, 0.001], 4430) == {0.1: 443, 0.05: 222, 0.001: 4}
    assert head_counts([0.01], 10) == {0.01: 1}


def test_gap_closed():
    assert gap_closed(0.425, 0.399, 0.503) == pytest.approx(0.25, abs=0.001)
    assert gap_closed(0.399, 0.399, 0.503) == 0.0
    assert gap_closed(0.5, 0.5, 0.5) is None


# --- the whole backtest on a tiny log ---------------------------------------------------------

HEADER = "InvoiceNo,StockCode,Description,Quantity,InvoiceDate,UnitPrice,CustomerID,Country"
LOG = [
    # before the training cut-off (2011-03-01)
    "A1,85123A,ITEM,10,2011-02-10 09:00:00,10.0,101,United Kingdom",
    # up to the cut-off (2011-03-31)
    "A2,85123A,ITEM,5,2011-03-15 09:00:00,10.0,101,United Kingdom",
    "B1,22423,ITEM,30,2011-03-20 09:00:00,10.0,102,United Kingdom",
    "C1,22423,ITEM,2,2011-03-25 09:00:00,10.0,103,United Kingdom",
    "G1,22423,ITEM,50,2011-03-05 09:00:00,10.0,,United Kingdom",  # a guest: one invoice, never again
    # the window (2011-04-01 .. 2011-04-30)
    "A3,85123A,ITEM,20,2011-04-10 09:00:00,10.0,101,United Kingdom",
    "A3,POST,POSTAGE,1,2011-04-10 09:00:00,50.0,101,United Kingdom",  # not a product: not revenue
    "B2,22423,ITEM,-1,2011-04-12 09:00:00,10.0,102,United Kingdom",  # a return: not revenue
    "C2,22423,ITEM,8,2011-04-30 23:00:00,10.0,103,United Kingdom",  # the window's last day counts
    "D1,22423,ITEM,10,2011-04-15 09:00:00,10.0,104,United Kingdom",  # a new registered customer
    "G2,22423,ITEM,12,2011-04-20 09:00:00,10.0,,United Kingdom",  # a new guest
    # after the window
    "A4,85123A,ITEM,99,2011-05-01 09:00:00,10.0,101,United Kingdom",
]


@pytest.fixture(scope="module")
def tiny_config(tmp_path_factory):
    path = tmp_path_factory.mktemp("backtest") / "log.csv"
    path.write_text("\n".join([HEADER, *LOG]) + "\n")
    return load_config(
        env="test",
        overrides={
            "input.path": str(path),
            "embedding.min_leaf_share": 0.0,
            "clustering.k": 2,
            "output.path": str(path.parent / "out"),
        },
        environ={},
    )


@pytest.fixture(scope="module")
def tiny_result(spark, tiny_config):
    config = _with_backtest(
        tiny_config,
        horizon_days=30,
        head_count_shares=(0.25, 0.5, 0.75, 1.0),
        scorers=(SEGMENTS, FUTURE_REVENUE_TREE, FUTURE_REVENUE_TREE_TREND),
    )
    return run_backtest(spark, config, cutoff=dt.date(2011, 3, 31))


def _with_backtest(config, **settings):
    return dataclasses.replace(config, backtest=dataclasses.replace(config.backtest, **settings))


def test_window_revenue_counts_new_customers_in_the_denominator(tiny_result):
    assert tiny_result.window.end == dt.date(2011, 4, 30)
    assert tiny_result.eligible == 4  # 101, 102, 103 and the guest G1
    assert tiny_result.window_revenue == pytest.approx(200 + 80 + 100 + 120)
    assert tiny_result.known_revenue == pytest.approx(280.0)
    assert tiny_result.new_customers == 2  # 104 and the guest G2


def test_baseline_and_foresight_by_hand(tiny_result):
    share = tiny_result.share
    # past revenue: G1 500, 102 300, 101 150, 103 20; next: 101 200, 103 80
    assert [share(BASELINE, s) for s in (0.25, 0.5, 0.75, 1.0)] == pytest.approx([0.0, 0.0, 0.4, 0.56])
    assert [share(FORESIGHT, s) for s in (0.25, 0.5, 0.75, 1.0)] == pytest.approx([0.4, 0.56, 0.56, 0.56])
    assert [share(BASELINE_REGISTERED, s) for s in (0.25, 0.5, 0.75, 1.0)] == pytest.approx([0.0, 0.4, 0.56, 0.56])
    # a tree trained on one customer predicts one value: registered first, then past revenue
    for tree in (FUTURE_REVENUE_TREE, FUTURE_REVENUE_TREE_TREND):
        assert [share(tree, s) for s in (0.25, 0.5, 0.75, 1.0)] == pytest.approx([0.0, 0.4, 0.56, 0.56]), tree
    assert tiny_result.describe()["window"] == ["2011-04-01", "2011-04-30"]


def test_insiders_are_measured_as_they_are_and_against_the_same_head_count(tiny_result):
    points = tiny_result.insiders_point
    insiders = points[INSIDERS]
    assert 1 <= tiny_result.insiders == insiders.head_count < 4
    assert insiders.revenue_share == pytest.approx(insiders.revenue / 500.0)
    assert insiders.revenue in {0.0, 80.0, 200.0, 280.0}  # some of 101 (200), 103 (80); 102 and G1 bring nothing
    assert points[FORESIGHT].revenue_share >= max(insiders.revenue_share, points[BASELINE].revenue_share)
    # every ranking captures the same revenue once it takes every known customer
    assert {round(tiny_result.share(s, 1.0), 6) for s in tiny_result.scorers} == {0.56}


def test_the_log_must_cover_the_window(spark, tiny_config):
    assert last_invoice_date(spark, tiny_config) == dt.date(2011, 5, 1)
    config = _with_backtest(tiny_config, horizon_days=30, scorers=())
    with pytest.raises(BacktestError, match="ends on 2011-05-15"):
        run_backtest(spark, config, cutoff=dt.date(2011, 4, 15))


def test_a_backtest_needs_a_horizon(spark, tiny_config):
    with pytest.raises(BacktestError, match="horizon"):
        run_backtest(spark, _with_backtest(tiny_config, horizon_days=0))


# --- the trend scorer: what the study's features cannot tell apart -----------------------------


def _trend_log(folder):
    """Eight registered customers with the same study features at the training cut-off (two one-item
    invoices of the same product on the same days, 100 in all), four rising (10, then 90) and four
    falling (90, then 10): only their revenue windows tell them apart. The rising ones buy again in
    the label window and in the backtest's window; the falling ones never."""
    lines = []

    def buy(invoice, customer, day, price):
        lines.append(f"{invoice},85123A,ITEM,1,{day} 09:00:00,{price},{customer},United Kingdom")

    for i in range(4):
        rising, falling = 201 + i, 301 + i
        buy(f"R{i}a", rising, "2011-02-01", 10.0)
        buy(f"R{i}b", rising, "2011-03-31", 90.0)
        buy(f"R{i}c", rising, "2011-04-15", 500.0)  # the training label's window: (03-31, 04-30]
        buy(f"R{i}d", rising, "2011-05-15", 500.0)  # the backtest's window: (04-30, 05-30]
        buy(f"F{i}a", falling, "2011-02-01", 90.0)
        buy(f"F{i}b", falling, "2011-03-31", 10.0)
    buy("Z1", 201, "2011-06-01", 1.0)  # the log goes past the window's end
    path = folder / "trend.csv"
    path.write_text("\n".join([HEADER, *lines]) + "\n")
    return path


def test_the_trend_scorer_learns_from_the_revenue_windows(spark, tmp_path):
    """Trained as of 2011-03-31 on customers the study's features cannot tell apart, the plain
    future-revenue tree has nothing to split on; the trend tree splits on the windows. Both rank the
    rising customers first at the cut-off (they also spent more by then), and neither beats foresight."""
    config = load_config(
        env="test",
        overrides={"input.path": str(_trend_log(tmp_path)), "embedding.min_leaf_share": 0.0},
        environ={},
    )
    config = _with_backtest(
        config,
        horizon_days=30,
        head_count_shares=(0.25, 0.5, 1.0),
        scorers=(FUTURE_REVENUE_TREE, FUTURE_REVENUE_TREE_TREND),
    )
    result = run_backtest(spark, config, cutoff=dt.date(2011, 4, 30))
    assert (result.eligible, result.window_revenue, result.new_customers) == (8, 2000.0, 0)
    plain, trend = result.tree_rules[FUTURE_REVENUE_TREE], result.tree_rules[FUTURE_REVENUE_TREE_TREND]
    assert "If (" not in plain and "Predict: 250.0" in plain  # one leaf: the mean of 500 and 0
    assert "If (" in trend and "Predict: 500.0" in trend and "Predict: 0.0" in trend
    assert result.insiders == 0 and result.k is None  # no segments scorer asked for
    for scorer in (FUTURE_REVENUE_TREE, FUTURE_REVENUE_TREE_TREND, FORESIGHT):
        assert [result.share(scorer, s) for s in (0.25, 0.5, 1.0)] == pytest.approx([0.5, 1.0, 1.0]), scorer
    # the manifest's 5%, 10% and 20% of eight customers: one, one and two of the rising ones
    assert result.describe()["revenue_share"][FUTURE_REVENUE_TREE_TREND] == {"5%": 0.25, "10%": 0.25, "20%": 0.5}
