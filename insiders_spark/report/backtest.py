"""The backtest in the report: its headline, its table and the capture chart."""

from __future__ import annotations

import datetime as dt
import io as _io
from collections.abc import Mapping, Sequence
from typing import Any

from insiders_spark.core.names import (
    BASELINE,
    BASELINE_REGISTERED,
    CLV,
    FORESIGHT,
    FUTURE_REVENUE_TREE,
    FUTURE_REVENUE_TREE_TREND,
    INSIDERS_POINT,
    REFERENCES,
    SEGMENTS_SCORER,
)
from insiders_spark.evaluation.backtest import BacktestResult

CHART_FILE = "backtest_capture.png"


LABELS = {
    BASELINE: "baseline: top past revenue",
    BASELINE_REGISTERED: "top past revenue, guests last",
    FORESIGHT: "perfect foresight",
    CLV: "CLV: BG/NBD purchases × Gamma-Gamma spend",
    SEGMENTS_SCORER: "segments (cluster rank, tree value)",
    FUTURE_REVENUE_TREE: "future-revenue tree",
    FUTURE_REVENUE_TREE_TREND: "future-revenue tree + trend features",
}


def curve_markdown(result: BacktestResult, shares: Sequence[float] = (0.05, 0.10, 0.20)) -> str:
    """One row per ranking, one column per head-count: the share of the window's revenue (and,
    for the models, the share of the baseline-to-foresight gap they close)."""
    available = {p.share for p in result.curve}
    shown = [s for s in shares if s in available]
    header = "| ranking | " + " | ".join(f"top {s:.0%}" for s in shown) + " |"
    rule = "|---|" + "---:|" * len(shown)
    lines = [header, rule]
    for scorer in result.scorers:
        cells = []
        for s in shown:
            text = f"{result.share(scorer, s):.1%}"
            closed = None if scorer in REFERENCES else result.gap_closed(scorer, s)
            cells.append(text if closed is None else f"{text} ({closed:+.0%} of gap)")
        lines.append(f"| {LABELS.get(scorer, scorer)} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


def summary_markdown(result: BacktestResult) -> str:
    """The backtest's definitions and headline, for the report."""
    w = result.window
    parts = [
        f"Customers chosen with the log up to **{w.cutoff}**; revenue measured over the {w.horizon_days} days "
        f"after it ({w.cutoff + dt.timedelta(days=1)} to {w.end}): {result.window_revenue:,.2f} in all, "
        f"{result.known_revenue / result.window_revenue:.1%} of it from the {result.eligible:,} customers known at "
        f"the cut-off and the rest from {result.new_customers:,} new customers (no choice made at the cut-off "
        "can capture that part). Head-counts are shares of the customers known at the cut-off.",
    ]
    if result.insiders and result.insiders_point:
        points = result.insiders_point
        model = points.get(INSIDERS_POINT)
        parts += (
            [
                "",
                f"The **{result.insiders:,} Insiders** chosen at the cut-off "
                f"({result.insiders / result.eligible:.1%} of customers) brought **{model.revenue_share:.1%}** of the "
                f"following revenue; the same number of top past spenders brought "
                f"{points[BASELINE].revenue_share:.1%}, and the best possible choice "
                f"{points[FORESIGHT].revenue_share:.1%}.",
            ]
            if model
            else []
        )
    clv = clv_markdown(result.clv)
    return "\n".join([*parts, *(["", clv] if clv else []), "", curve_markdown(result)])


def clv_markdown(clv: Mapping[str, Any]) -> str:
    """One sentence on the clv reference: its fitted parameters, or why it was not measured."""
    if not clv:
        return ""
    if not clv.get("measured"):
        return f"The CLV reference (BG/NBD × Gamma-Gamma) was not measured: {clv.get('error')}"
    bg, gg = clv["bg_nbd"], clv["gamma_gamma"]
    return (
        f"The CLV reference ranks by expected revenue over the horizon: BG/NBD purchase days (r = {bg['r']:.3g}, "
        f"α = {bg['alpha_days']:.3g} days, a = {bg['a']:.3g}, b = {bg['b']:.3g}, mean drop-out per purchase "
        f"{bg['mean_dropout']:.2g}; {bg['customers']:,} customers) "
        f"× Gamma-Gamma spend per purchase day (p = {gg['p']:.3g}, q = {gg['q']:.3g}, γ = {gg['gamma']:.3g}, "
        f"mean {gg['mean_spend']:,.2f}; {gg['customers']:,} repeat buyers)."
    )


def capture_chart_png(result: BacktestResult, *, title: str | None = None, max_share: float = 0.5) -> bytes:
    """Cumulative share of the window's revenue by customer rank: every ranking, up to ``max_share``."""
    import matplotlib

    matplotlib.use("Agg")
    from matplotlib import pyplot as plt

    styles = {
        BASELINE: dict(color="#7f8c8d", linestyle="--"),
        BASELINE_REGISTERED: dict(color="#95a5a6", linestyle=":"),
        FORESIGHT: dict(color="#2c3e50", linestyle="-."),
        CLV: dict(color="#8e44ad", linestyle="--"),
        SEGMENTS_SCORER: dict(color="#c0392b"),
        FUTURE_REVENUE_TREE: dict(color="#2980b9"),
        FUTURE_REVENUE_TREE_TREND: dict(color="#27ae60"),
    }
    figure, axis = plt.subplots(figsize=(8, 5), dpi=110)
    for scorer in result.scorers:
        points = [p for p in result.curve if p.scorer == scorer and p.share <= max_share + 1e-9]
        axis.plot(
            [p.share for p in points],
            [p.revenue_share for p in points],
            label=LABELS.get(scorer, scorer),
            linewidth=1.6,
            **styles.get(scorer, {}),
        )
    if result.insiders:
        axis.axvline(
            result.insiders / result.eligible, color="#c0392b", alpha=0.3, linewidth=6, label="Insiders at the cut-off"
        )
    axis.set_xlabel("customers chosen at the cut-off (share of the customers known then)")
    axis.set_ylabel(f"share of the next {result.window.horizon_days} days' revenue")
    axis.xaxis.set_major_formatter(matplotlib.ticker.PercentFormatter(1.0))
    axis.yaxis.set_major_formatter(matplotlib.ticker.PercentFormatter(1.0))
    axis.set_title(title or f"Who brings the revenue after {result.window.cutoff}?")
    axis.spines[["top", "right"]].set_visible(False)
    axis.legend(fontsize=8, loc="lower right")
    axis.grid(alpha=0.3)
    figure.tight_layout()
    buffer = _io.BytesIO()
    figure.savefig(buffer, format="png")
    plt.close(figure)
    return buffer.getvalue()


def backtest_section(summary: str, chart_file: str | None) -> str:
    """Proof of value: the backtest's headline, its table and the capture chart (if measured)."""
    chart = (
        [f"![cumulative share of the next period's revenue by customer rank]({chart_file})", ""] if chart_file else []
    )
    return "\n".join(["## Proof of value (backtest)", "", summary, "", *chart])
