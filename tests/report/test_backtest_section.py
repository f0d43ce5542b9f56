"""The backtest in the report (``report.backtest``): its table, its headline and its chart, from
a hand-made result."""

import datetime as dt

import pytest

from insiders_spark.core.names import BASELINE, FORESIGHT, FUTURE_REVENUE_TREE, INSIDERS_POINT
from insiders_spark.evaluation.backtest import CURVE_SCHEMA, BacktestResult, CurvePoint, Window, to_curve_frame
from insiders_spark.report.backtest import backtest_section, capture_chart_png, curve_markdown, summary_markdown


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


def test_the_summary_says_what_the_window_holds_and_what_the_insiders_brought():
    result = _result()
    insiders = {
        INSIDERS_POINT: CurvePoint(INSIDERS_POINT, 0.08, 8, 380.0, 0.38),
        BASELINE: CurvePoint(BASELINE, 0.08, 8, 350.0, 0.35),
        FORESIGHT: CurvePoint(FORESIGHT, 0.08, 8, 460.0, 0.46),
    }
    with_insiders = BacktestResult(**{**result.__dict__, "insiders": 8, "insiders_point": insiders})
    text = summary_markdown(with_insiders)
    assert text.startswith(
        "Customers chosen with the log up to **2011-09-09**; revenue measured over the 90 days after it "
        "(2011-09-10 to 2011-12-08): 1,000.00 in all, 70.0% of it from the 100 customers known at the cut-off "
        "and the rest from 30 new customers"
    )
    assert (
        "The **8 Insiders** chosen at the cut-off (8.0% of customers) brought **38.0%** of the following revenue; "
        "the same number of top past spenders brought 35.0%, and the best possible choice 46.0%." in text
    )
    assert text.endswith(curve_markdown(with_insiders))
    assert "Insiders" not in summary_markdown(result)  # no segments scorer: no Insiders line
    section = backtest_section(text, "backtest_capture.png")
    assert section.startswith("## Proof of value (backtest)\n\n" + text)
    assert "![cumulative share of the next period's revenue by customer rank](backtest_capture.png)" in section
    assert "![" not in backtest_section("Not measured on this run: too short", None)


def test_curve_frame_and_chart(spark):
    frame = to_curve_frame(spark, _result())
    assert frame.schema == CURVE_SCHEMA
    closed = {(r["scorer"], r["head_count_share"]): r["gap_closed"] for r in frame.collect()}
    assert closed[(FUTURE_REVENUE_TREE, 0.10)] == pytest.approx(0.25) and closed[(BASELINE, 0.10)] is None
    assert capture_chart_png(_result()).startswith(b"\x89PNG")
    assert capture_chart_png(BacktestResult(**{**_result().__dict__, "insiders": 8})).startswith(b"\x89PNG")
