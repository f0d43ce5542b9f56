"""Backtest computations on hand-built cases: revenue windows, rankings, the capture curve, the
window's denominator (new customers included) and the whole backtest on a tiny log."""

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
)
from insiders_spark.core.names import (
    INSIDERS_POINT as INSIDERS,
)
from insiders_spark.core.names import (
    SEGMENTS_SCORER as SEGMENTS,
)
from insiders_spark.evaluation.backtest import (
    CURVE_SCHEMA,
    NEXT_REVENUE,
    RANK_KEY,
    BacktestResult,
    CurvePoint,
    Window,
    capture_curve,
    gap_closed,
    head_counts,
    last_invoice_date,
    run_backtest,
    to_curve_frame,
    to_ranks,
    to_revenue_windows,
)
from insiders_spark.report.backtest import capture_chart_png, curve_markdown, summary_markdown

# --- revenue windows ---------------------------------------------------------------------------

LINES_DDL = "invoice_no string, customer_id long, quantity long, unit_price double, invoice_ts timestamp, reason string"


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
    )
    customers = spark.createDataFrame(
        [(7, None), (19000, "G1")], "customer_id long, guest_invoice_no string"
    )
    got = {
        row["customer_id"]: row
        for row in to_revenue_windows(lines, customers, as_of=as_of, horizon_days=30).collect()
    }
    assert set(got) == {7, 19000, None}
    assert got[7]["revenue_recent"] == pytest.approx(25.0)
    assert got[7]["revenue_previous"] == pytest.approx(8.0)
    assert got[7]["revenue_decayed"] == pytest.approx(20 + 5 * 0.5 ** (29 / 30) + 8 * 0.5 + 100 * 0.5 ** (61 / 30))
    assert got[19000]["revenue_recent"] == pytest.approx(3.0)
    assert got[None]["revenue_recent"] == pytest.approx(4.0)


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
        tiny_config, horizon_days=30, head_count_shares=(0.25, 0.5, 0.75, 1.0), scorers=(SEGMENTS, FUTURE_REVENUE_TREE)
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
    assert [share(FUTURE_REVENUE_TREE, s) for s in (0.25, 0.5)] == pytest.approx([0.0, 0.4])
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


# --- renderers ---------------------------------------------------------------------------------


def _result():
    def points(scorer, shares_):
        return [CurvePoint(scorer, s, round(s * 100), v * 1000, v) for s, v in shares_]

    curve = (
        points(BASELINE, [(0.05, 0.30), (0.10, 0.40), (0.20, 0.50)])
        + points(FORESIGHT, [(0.05, 0.40), (0.10, 0.50), (0.20, 0.60)])
        + points(FUTURE_REVENUE_TREE, [(0.05, 0.35), (0.10, 0.425), (0.20, 0.50)])
    )
    return BacktestResult(
        window=Window(dt.date(2011, 9, 9), 90),
        eligible=100,
        window_revenue=1000.0,
        known_revenue=700.0,
        new_customers=30,
        insiders=0,
        curve=tuple(curve),
    )


def test_curve_markdown_shows_shares_and_the_gap_closed():
    table = curve_markdown(_result())
    assert "| ranking | top 5% | top 10% | top 20% |" in table
    assert "| future-revenue tree | 35.0% (+50% of gap) | 42.5% (+25% of gap) | 50.0% (+0% of gap) |" in table
    assert "| perfect foresight | 40.0% | 50.0% | 60.0% |" in table
    assert "70.0% of it from the 100 customers" in summary_markdown(_result())


def test_curve_frame_and_chart(spark):
    frame = to_curve_frame(spark, _result())
    assert frame.schema == CURVE_SCHEMA
    closed = {(r["scorer"], r["head_count_share"]): r["gap_closed"] for r in frame.collect()}
    assert closed[(FUTURE_REVENUE_TREE, 0.10)] == pytest.approx(0.25) and closed[(BASELINE, 0.10)] is None
    assert capture_chart_png(_result()).startswith(b"\x89PNG")
