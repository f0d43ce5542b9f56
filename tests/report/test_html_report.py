"""report.html: every section of report.md, its charts embedded as PNG, nothing fetched; the
revenue chart with nine long segment names; profiles.csv with names that need quoting.

Hand-made profiles and metrics, no Spark. One check renders the page in headless Chromium, and
skips where there is none.
"""

from __future__ import annotations

import base64
import csv
import io
import shutil
import struct
import subprocess
from html.parser import HTMLParser

import pytest

from insiders_spark.core.config import QualityConfig
from insiders_spark.evaluation.quality import SilhouetteCheck
from insiders_spark.model.profiles import ClusterProfile
from insiders_spark.report.backtest import backtest_section
from insiders_spark.report.html import render_html
from insiders_spark.report.page import CHART_FILE, profiles_csv, render_page, revenue_chart_png
from insiders_spark.report.quality import render_quality

PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"
NAMES = [
    "Insiders",
    "Loyal (more orders)",
    "Promising (broad baskets)",
    "Promising (narrow baskets)",
    "About to sleep (higher spend, small tickets)",
    "About to sleep (higher spend, large tickets)",
    "About to sleep (mid spend, broad baskets)",
    "Frequent returners",
    'Lost (higher spend, 2) "B2B", <wholesale> & co',  # a comma, quotes and HTML's own characters
]
SECTIONS = [
    "Segments",
    "Compared with the study",
    "How the segments were made",
    "The input",
    "Quality targets",
    "Silhouette",
    "Proof of value (backtest)",
]


def _profiles() -> list[ClusterProfile]:
    revenue = [9345.66, 3686.31, 2107.21, 1031.59, 716.27, 346.65, 129.32, 37.84, 8.15]
    customers = [58, 97, 130, 101, 42, 107, 64, 72, 81]
    total_customers, total_revenue = sum(customers), sum(r * c for r, c in zip(revenue, customers, strict=True))
    return [
        ClusterProfile(
            cluster=i + 1, segment=name, is_insider=i == 0, customers=n, customer_share=n / total_customers,
            revenue_total=r * n, revenue_share=r * n / total_revenue, gross_revenue_mean=r, recency_days_mean=100.0 + i,
            qty_invoices_mean=2.0, qty_items_mean=100.0, qty_products_mean=None if i == 8 else 10.0,
            frequency_mean=0.5, qty_returns_mean=1.0, avg_ticket_mean=25.0, kmeans_cluster=8 - i,
        )
        for i, (name, r, n) in enumerate(zip(NAMES, revenue, customers, strict=True))
    ]


def _metrics(profiles: list[ClusterProfile]) -> dict:
    return {
        "run_date": "2011-12-09",
        "as_of": "2011-12-09",
        "input": {
            "description": "drops/*.csv",
            "dataset": {"name": "online_retail", "chosen": "detected from the input's columns"},
            "columns": {"customer_id": "CustomerID", "invoice_date": "InvoiceDate"},
            "absent": {"line_amount": "the revenue is unit_price x quantity"},
            "customer_ids": "number",
            "unused_columns": ["Channel"],
        },
        "rows": {"input": 60_000, "kept": 59_315, "after_as_of": 0, "quarantined": {"malformed_line": 685}},
        "customers": {"segmented": sum(p.customers for p in profiles), "returns_only": 122},
        "features": {"gross_revenue_total": sum(p.revenue_total for p in profiles)},
        "embedding": {"depth": 4, "leaves": 16, "encoding": "path"},
        "clustering": {"k": 9, "seed": 42, "silhouette": 0.832, "silhouette_distance": "squaredEuclidean"},
        "insiders": {"customer_share": profiles[0].customer_share, "revenue_share": profiles[0].revenue_share},
    }


def _page() -> tuple[str, dict[str, bytes]]:
    profiles = _profiles()
    check = SilhouetteCheck(mllib=0.832, customers=752, sample=0.830, sample_rows=500, sample_seed=42)
    sections = [
        render_quality(profiles=profiles, silhouette=check, targets=QualityConfig()),
        backtest_section("The **Insiders** brought *most* of the revenue; see `backtest`.", "backtest_capture.png"),
    ]
    charts = {
        CHART_FILE: revenue_chart_png(profiles, title="Mean gross revenue per cluster"),
        "backtest_capture.png": revenue_chart_png(profiles[:3], title="a second chart"),
    }
    return render_page(profiles, _metrics(profiles), sections=sections), charts


class _Outline(HTMLParser):
    """What a reader of the page meets: headings, tables and their cells, images, anything fetched."""

    def __init__(self) -> None:
        super().__init__()
        self.headings: list[str] = []
        self.images: list[str] = []
        self.cells: list[str] = []
        self.tables = 0
        self.external: list[str] = []
        self._text: list[str] | None = None

    def handle_starttag(self, tag, attrs):
        attributes = dict(attrs)
        if tag in ("h1", "h2", "td", "th"):
            self._text = []
        if tag == "table":
            self.tables += 1
        if tag == "img":
            self.images.append(attributes["src"])
        if tag in ("script", "link", "iframe") or (tag != "img" and ("src" in attributes or "href" in attributes)):
            self.external.append(tag)

    def handle_data(self, data):
        if self._text is not None:
            self._text.append(data)

    def handle_endtag(self, tag):
        if tag in ("h1", "h2") and self._text is not None:
            self.headings.append("".join(self._text))
        if tag in ("td", "th") and self._text is not None:
            self.cells.append("".join(self._text))
        if tag in ("h1", "h2", "td", "th"):
            self._text = None


def _png_size(data: bytes) -> tuple[int, int]:
    assert data.startswith(PNG_SIGNATURE) and data[12:16] == b"IHDR"
    return struct.unpack(">II", data[16:24])


def test_the_page_holds_every_section_with_its_charts_embedded():
    page, charts = _page()
    outline = _Outline()
    outline.feed(render_html(page, charts))
    assert outline.headings == ["Insiders report, run date 2011-12-09", *SECTIONS]
    assert outline.tables == page.count("\n|---") + page.count("\n|:--")  # every Markdown table, as a table
    assert outline.external == []  # no script, no stylesheet or link to fetch
    assert len(outline.images) == 2
    for source, name in zip(outline.images, (CHART_FILE, "backtest_capture.png"), strict=True):
        prefix = "data:image/png;base64,"
        assert source.startswith(prefix)
        data = base64.b64decode(source[len(prefix) :], validate=True)
        assert data == charts[name] and _png_size(data)[0] > 0
    assert NAMES[-1] in outline.cells  # escaped on the page, read back as written
    assert "9,345.66" in outline.cells and "–" in outline.cells  # a number; a feature the log lacks


def test_markdown_is_rendered_not_shown():
    html = render_html("# T\n\nA **bold** and *emphasis*, `code <b>`, 3 < 4.\n\n- one\n- two\n", {})
    assert "<strong>bold</strong>" in html and "<em>emphasis</em>" in html
    assert "<code>code &lt;b&gt;</code>" in html and "3 &lt; 4" in html
    assert "<ul><li>one</li><li>two</li></ul>" in html and "**" not in html
    assert "not embedded" in render_html("![a chart](missing.png)\n", {})  # named but not given: said so


def test_the_revenue_chart_grows_with_the_clusters_and_keeps_every_name():
    profiles = _profiles()
    nine = _png_size(revenue_chart_png(profiles, title="t"))
    three = _png_size(revenue_chart_png(profiles[:3], title="t"))
    assert nine[1] > three[1] and nine[0] == three[0]  # one bar per row: taller, not squeezed


def test_profiles_csv_quotes_what_needs_quoting():
    profiles = _profiles()
    text = profiles_csv(profiles)
    lines = text.splitlines()
    assert lines[0].startswith("cluster,segment,is_insider,") and lines[1].startswith('1,"Insiders",True,58,')
    assert ',"Lost (higher spend, 2) ""B2B"", <wholesale> & co",False,' in lines[9]  # quotes doubled
    rows = list(csv.DictReader(io.StringIO(text)))
    assert [row["segment"] for row in rows] == NAMES
    assert rows[0]["is_insider"] == "True" and rows[8]["qty_products_mean"] == ""
    assert float(rows[0]["gross_revenue_mean"]) == profiles[0].gross_revenue_mean
    assert len(rows) == 9 and list(rows[0]) == list(ClusterProfile.__dataclass_fields__)


@pytest.mark.skipif(shutil.which("chromium") is None, reason="no chromium: apt-get install -y chromium")
def test_a_browser_renders_the_page(tmp_path):
    page, charts = _page()
    html = tmp_path / "report.html"
    html.write_text(render_html(page, charts), encoding="utf-8")
    shot = tmp_path / "report.png"
    done = subprocess.run(
        ["chromium", "--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
         "--disable-component-update", "--disable-sync", "--no-first-run", f"--user-data-dir={tmp_path / 'profile'}",
         f"--screenshot={shot}", "--window-size=1200,2000", html.as_uri()],
        capture_output=True, text=True, timeout=120,
    )
    assert done.returncode == 0 and shot.exists(), done.stderr[-2000:]
    assert _png_size(shot.read_bytes()) == (1200, 2000)
