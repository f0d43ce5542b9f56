"""The human-readable report: the profile table, the study's revenue-per-cluster chart, a page.

Everything here works on bounded driver-side data (k profile rows and the run's metrics).
"""

from __future__ import annotations

import csv
import io as _io
import textwrap
from collections.abc import Mapping, Sequence
from typing import Any

from insiders_spark.model.profiles import ClusterProfile

# The published study's headline numbers, to show ours beside them.
STUDY = {
    "k": 9,
    "silhouette": 0.68,
    "insiders_customer_share": 0.105,
    "insiders_revenue_share": 0.46,
}
CHART_FILE = "revenue_by_cluster.png"
PAGE_FILE = "report.md"
PROFILES_FILE = "profiles.csv"
INSIDERS_COLOUR = "#c0392b"
OTHERS_COLOUR = "#7f8c8d"
LABEL_WIDTH = 28  # characters of a segment name per line on the chart
BAR_INCHES = 0.55  # the chart's height per cluster


def revenue_chart_png(profiles: Sequence[ClusterProfile], *, title: str) -> bytes:
    """Each cluster's mean gross revenue, Insiders highlighted (the study's chart).

    Horizontal bars, cluster 1 on top: a segment's name is read where it is written, however long
    (names such as "About to sleep (higher spend, small tickets)" are wrapped, never overlapped),
    and the figure grows with the number of clusters.
    """
    import matplotlib

    matplotlib.use("Agg")
    from matplotlib import pyplot as plt
    from matplotlib.ticker import FuncFormatter

    labels = [textwrap.fill(f"{p.cluster}. {p.segment}", LABEL_WIDTH) for p in profiles]
    values = [p.gross_revenue_mean for p in profiles]
    colours = [INSIDERS_COLOUR if p.is_insider else OTHERS_COLOUR for p in profiles]
    figure, axis = plt.subplots(figsize=(10, 1.4 + BAR_INCHES * max(len(values), 1)), dpi=110)
    positions = list(range(len(values)))
    bars = axis.barh(positions, values, color=colours, height=0.7)
    axis.invert_yaxis()  # cluster 1 (the Insiders) on top
    for bar, profile in zip(bars, profiles, strict=True):
        axis.annotate(
            f"{profile.revenue_share:.1%} of revenue, {profile.customer_share:.1%} of customers",
            (bar.get_width(), bar.get_y() + bar.get_height() / 2),
            xytext=(4, 0),
            textcoords="offset points",
            ha="left",
            va="center",
            fontsize=8,
        )
    axis.set_yticks(positions, labels, fontsize=9)
    axis.set_xlim(0, max([*values, 1.0]) * 1.45)  # room for the annotations right of the longest bar
    axis.xaxis.set_major_formatter(FuncFormatter(lambda value, _: f"{value:,.0f}"))
    axis.set_xlabel("mean gross revenue per customer")
    axis.set_title(title)
    axis.spines[["top", "right"]].set_visible(False)
    axis.grid(axis="x", alpha=0.3)
    axis.set_axisbelow(True)
    figure.tight_layout()
    buffer = _io.BytesIO()
    figure.savefig(buffer, format="png")
    plt.close(figure)
    return buffer.getvalue()


def profiles_csv(profiles: Sequence[ClusterProfile]) -> str:
    """The profile table as CSV: a header of bare names, then one row per cluster with its text
    quoted (a quote in a name doubled, RFC 4180), numbers and booleans bare, a missing mean empty."""
    columns = list(ClusterProfile.__dataclass_fields__)
    buffer = _io.StringIO()
    csv.writer(buffer, lineterminator="\n").writerow(columns)
    rows = csv.writer(buffer, quoting=csv.QUOTE_NONNUMERIC, lineterminator="\n")
    for profile in profiles:
        rows.writerow(getattr(profile, c) for c in columns)
    return buffer.getvalue()


def _maybe(value: float | None, spec: str) -> str:
    """A number as ``spec`` formats it; "–" for a feature the log does not give."""
    return "–" if value is None else format(value, spec)


def profile_table_markdown(profiles: Sequence[ClusterProfile]) -> str:
    header = (
        "| cluster | segment | customers | % customers | mean gross revenue | mean recency (days) "
        "| mean products | mean frequency | mean returns | % revenue |\n"
        "|---:|---|---:|---:|---:|---:|---:|---:|---:|---:|"
    )
    rows = [
        f"| {p.cluster} | {p.segment} | {p.customers:,} | {p.customer_share:.1%} | "
        f"{p.gross_revenue_mean:,.2f} | {p.recency_days_mean:.1f} | {_maybe(p.qty_products_mean, '.1f')} | "
        f"{p.frequency_mean:.3f} | {p.qty_returns_mean:.1f} | {p.revenue_share:.1%} |"
        for p in profiles
    ]
    return "\n".join([header, *rows])


def comparison_markdown(metrics: Mapping[str, Any]) -> str:
    insiders = metrics["insiders"]
    clustering = metrics["clustering"]
    return "\n".join(
        [
            "| | the study | this run |",
            "|---|---:|---:|",
            f"| clusters (k) | {STUDY['k']} | {clustering['k']} |",
            f"| silhouette | {STUDY['silhouette']:.2f} (Euclidean, on a UMAP embedding) | "
            f"{clustering['silhouette']:.2f} ({clustering['silhouette_distance']}, on the leaf-path embedding) |",
            f"| Insiders, % of customers | {STUDY['insiders_customer_share']:.1%} | {insiders['customer_share']:.1%} |",
            f"| Insiders, % of revenue | {STUDY['insiders_revenue_share']:.0%} | {insiders['revenue_share']:.1%} |",
        ]
    )


def render_page(profiles: Sequence[ClusterProfile], metrics: Mapping[str, Any], *, sections: Sequence[str] = ()) -> str:
    rows = metrics["rows"]
    customers = metrics["customers"]
    embedding = metrics["embedding"]
    quarantined = sum(rows["quarantined"].values())
    return "\n".join(
        [
            f"# Insiders report, run date {metrics['run_date']}",
            "",
            f"As of **{metrics['as_of']}**, from `{metrics['input']['description']}` "
            f"({rows['input']:,} lines read, {rows['kept']:,} kept, {quarantined:,} set aside, "
            f"{rows['after_as_of']:,} after the as-of date).",
            f"{customers['segmented']:,} customers segmented ({customers['returns_only']:,} with returns only "
            f"left out); total gross revenue {metrics['features']['gross_revenue_total']:,.2f}.",
            "",
            "## Segments",
            "",
            profile_table_markdown(profiles),
            "",
            f"![mean gross revenue per cluster]({CHART_FILE})",
            "",
            "## Compared with the study",
            "",
            comparison_markdown(metrics),
            "",
            "## How the segments were made",
            "",
            "A decision tree learns log(1 + gross revenue) from the other features "
            f"(depth {embedding['depth']}, {embedding['leaves']} leaves); each customer is placed by the path to its "
            "leaf "
            f"(`{embedding['encoding']}` encoding), and KMeans (k={metrics['clustering']['k']}, "
            f"seed {metrics['clustering']['seed']}) groups those positions. Clusters are numbered by mean "
            f"gross revenue; cluster 1 is the Insiders.",
            "",
            input_markdown(metrics["input"]),
            *sections,
        ]
    )


def input_markdown(source: Mapping[str, Any]) -> str:
    """The input section: the dataset profile, each of the job's columns and where it came from, and
    what the job did without the columns the log lacks."""
    dataset = source.get("dataset") or {}
    profile = (
        f"Dataset profile **{dataset['name']}** ({dataset['chosen']})."
        if dataset.get("name")
        else "No dataset profile: the generic cleaning rules."
    )
    mapped = [f"| {name} | `{column}` |" for name, column in source.get("columns", {}).items()]
    absent = [f"| {name} | absent: {effect} |" for name, effect in source.get("absent", {}).items()]
    unused = source.get("unused_columns") or []
    lines = [
        "## The input",
        "",
        f"{profile} Customer ids read as {source.get('customer_ids', 'numbers')}"
        + (
            f"; the input was filtered where it is read: {source['scan_filter']}." if source.get("scan_filter") else "."
        ),
        "",
        "| the job's column | from |",
        "|---|---|",
        *mapped,
        *absent,
        "",
    ]
    if unused:
        lines += [f"Not used: {', '.join(f'`{name}`' for name in unused)}.", ""]
    return "\n".join(lines)
