"""The run's report: the page (Markdown and self-contained HTML), its charts and the profiles as CSV,
in the ``report`` partition."""

from __future__ import annotations

from insiders_spark.core.names import REPORT
from insiders_spark.evaluation.backtest import BacktestResult
from insiders_spark.evaluation.quality import SilhouetteCheck
from insiders_spark.model.explain import RuleRow
from insiders_spark.report.backtest import CHART_FILE as BACKTEST_CHART
from insiders_spark.report.backtest import backtest_section, capture_chart_png, summary_markdown
from insiders_spark.report.html import HTML_FILE, render_html
from insiders_spark.report.page import (
    CHART_FILE,
    PAGE_FILE,
    PROFILES_FILE,
    profiles_csv,
    render_page,
    revenue_chart_png,
)
from insiders_spark.report.quality import render_quality
from insiders_spark.report.rules import rules_section
from insiders_spark.runs.context import FittedRun, RunContext
from insiders_spark.segments.confidence import InsiderConfidence


def stage_report(
    ctx: RunContext,
    fitted: FittedRun,
    metrics: dict,
    *,
    check: SilhouetteCheck,
    rules: list[RuleRow],
    backtest: BacktestResult | None,
    backtest_error: str | None,
    confidence: InsiderConfidence | None = None,
) -> None:
    profiles, outputs = fitted.profiles, ctx.outputs
    with ctx.timer.stage("report"):
        title = f"Mean gross revenue per cluster, as of {ctx.table.as_of.isoformat()}"
        charts = {CHART_FILE: revenue_chart_png(profiles, title=title)}
        outputs.write_file(REPORT, PROFILES_FILE, profiles_csv(profiles))
        sections = [
            render_quality(
                profiles=profiles,
                silhouette=check,
                stability=fitted.stability,
                selection=fitted.selection,
                targets=ctx.config.quality,
                programme=fitted.programme,
                confidence=confidence,
            ),
            rules_section(fitted.model.embedding, rules, top=ctx.config.segments.top_features),
        ]
        if backtest is not None:
            charts[BACKTEST_CHART] = capture_chart_png(backtest)
            sections.append(backtest_section(summary_markdown(backtest), BACKTEST_CHART))
        elif backtest_error is not None:
            sections.append(backtest_section(f"Not measured on this run: {backtest_error}", None))
        page = render_page(profiles, metrics, sections=sections)
        for name, chart in charts.items():
            outputs.write_file(REPORT, name, chart)
        outputs.write_file(REPORT, PAGE_FILE, page)
        outputs.write_file(REPORT, HTML_FILE, render_html(page, charts))
        ctx.published[REPORT] = outputs.live(outputs.partition(REPORT))
