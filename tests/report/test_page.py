"""The report page, its profile table, the profiles as CSV and the chart (``report.page``), from
hand-made profiles and metrics (no Spark): every number on the page is one of them, formatted."""

from __future__ import annotations

import csv
import io

import pytest

from insiders_spark.model.profiles import ClusterProfile, build_profiles
from insiders_spark.report.page import (
    comparison_markdown,
    profile_table_markdown,
    profiles_csv,
    render_page,
    revenue_chart_png,
)


def _summary(kmeans_cluster, customers, revenue_mean, recency, invoices, products, frequency, returns):
    return {
        "kmeans_cluster": kmeans_cluster,
        "customers": customers,
        "revenue_total": revenue_mean * customers,
        "gross_revenue_mean": revenue_mean,
        "recency_days_mean": recency,
        "qty_invoices_mean": invoices,
        "qty_items_mean": 100.0,
        "qty_products_mean": products,
        "frequency_mean": frequency,
        "qty_returns_mean": returns,
        "avg_ticket_mean": 20.0,
    }


PROFILES = build_profiles(
    [
        _summary(4, 489, 11_119.8, 30.77, 15.39, 186.0, 0.1234, 3.37),
        _summary(0, 2_000, 1_500.0, 80.0, 3.13, 129.71, 0.0456, 5.66),
        _summary(7, 3_206, 300.0, 190.0, 1.02, 3.46, 0.0078, 0.57),
    ],
    insiders_name="VIP",
)

METRICS = {
    "run_date": "2011-12-10",
    "as_of": "2011-12-09",
    "input": {"description": "drops/*.csv"},
    "rows": {
        "input": 541_909,
        "kept": 536_139,
        "after_as_of": 0,
        "quarantined": {"price_below_minimum": 2_517, "non_product_code": 2_795, "excluded_country": 458},
    },
    "customers": {"segmented": 5_695, "returns_only": 91},
    "features": {"gross_revenue_total": 10_104_658.35},
    "embedding": {"depth": 4, "leaves": 16, "encoding": "path"},
    "clustering": {"k": 3, "seed": 42, "silhouette": 0.8781, "silhouette_distance": "squaredEuclidean"},
    "insiders": {"customer_share": 0.0859, "revenue_share": 0.5381},
}


def test_the_page_reports_the_run_in_numbers_a_person_reads():
    page = render_page(PROFILES, METRICS, sections=["## Extra section", "", "its text"])
    assert page.startswith("# Insiders report, run date 2011-12-10\n")
    assert (
        "As of **2011-12-09**, from `drops/*.csv` (541,909 lines read, 536,139 kept, 5,770 set aside, "
        "0 after the as-of date)." in page
    )
    assert "5,695 customers segmented (91 with returns only left out); total gross revenue 10,104,658.35." in page
    assert "(depth 4, 16 leaves)" in page and "(`path` encoding), and KMeans (k=3, seed 42)" in page
    assert profile_table_markdown(PROFILES) in page and comparison_markdown(METRICS) in page
    assert "![mean gross revenue per cluster](revenue_by_cluster.png)" in page
    assert page.index("## Segments") < page.index("## Compared with the study") < page.index("## Extra section")
    assert page.endswith("its text")


def test_the_profile_table_has_one_row_per_cluster_in_rank_order():
    lines = profile_table_markdown(PROFILES).splitlines()
    assert len(lines) == 2 + 3
    # shares of the 5,695 customers and of the revenue, 5,437,582.2 of 9,399,382.2
    revenue = 489 * 11_119.8 + 2_000 * 1_500.0 + 3_206 * 300.0
    assert (489 / 5_695, 489 * 11_119.8 / revenue) == (pytest.approx(0.0859, abs=5e-5), pytest.approx(0.5785, abs=5e-5))
    assert lines[2] == "| 1 | VIP | 489 | 8.6% | 11,119.80 | 30.8 | 186.0 | 0.123 | 3.4 | 57.9% |"
    assert lines[4].startswith(f"| 3 | {PROFILES[2].segment} | 3,206 | 56.3% | 300.00 | 190.0 | 3.5 | 0.008 | 0.6 |")


def test_the_comparison_sets_the_run_beside_the_study():
    assert comparison_markdown(METRICS).splitlines()[2:] == [
        "| clusters (k) | 9 | 3 |",
        "| silhouette | 0.68 (Euclidean, on a UMAP embedding) | 0.88 (squaredEuclidean, on the leaf-path embedding) |",
        "| Insiders, % of customers | 10.5% | 8.6% |",
        "| Insiders, % of revenue | 46% | 53.8% |",
    ]


def test_profiles_csv_holds_every_field_of_every_profile_and_reads_back():
    text = profiles_csv(PROFILES)
    rows = list(csv.DictReader(io.StringIO(text)))
    assert list(rows[0]) == list(ClusterProfile.__dataclass_fields__)
    assert [r["cluster"] for r in rows] == ["1", "2", "3"] and rows[0]["segment"] == "VIP"
    for row, profile in zip(rows, PROFILES, strict=True):
        for name, value in profile.__dict__.items():
            if isinstance(value, bool):
                assert row[name] == str(value)
            elif isinstance(value, (int, float)):
                assert float(row[name]) == pytest.approx(value, rel=1e-15), name
            else:
                assert row[name] == value
    assert text.splitlines()[1].split(",")[1] == '"VIP"'  # text is quoted
    assert text.endswith("\n") and len(text.splitlines()) == 4


def test_a_segment_name_with_a_comma_stays_one_field():
    profile = PROFILES[1].__class__(**{**PROFILES[1].__dict__, "segment": "Promising (broad, recent)"})
    (row,) = list(csv.DictReader(io.StringIO(profiles_csv([profile]))))
    assert row["segment"] == "Promising (broad, recent)"


def test_the_chart_is_a_png():
    assert revenue_chart_png(PROFILES, title="Mean gross revenue per cluster").startswith(b"\x89PNG\r\n\x1a\n")
