"""What a person reads: the report page, its charts, and its quality and backtest sections."""

from insiders_spark.report.html import render_html
from insiders_spark.report.page import render_page, revenue_chart_png
from insiders_spark.report.quality import render_quality

__all__ = ["render_html", "render_page", "render_quality", "revenue_chart_png"]
