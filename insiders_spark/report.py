"""The human-readable report: the profile table, the study's revenue-per-cluster chart, a page.

Everything here works on bounded driver-side data (k profile rows and the run's metrics).
"""

from __future__ import annotations

import io as _io
from collections.abc import Mapping, Sequence
from typing import Any

from insiders_spark import explain
from insiders_spark.embedding import LeafEmbedding
from insiders_spark.explain import RuleRow
from insiders_spark.grids import SplitGrid, grid_values
from insiders_spark.profiles import ClusterProfile

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


def revenue_chart_png(profiles: Sequence[ClusterProfile], *, title: str) -> bytes:
    """Bar chart of each cluster's mean gross revenue, Insiders highlighted (the study's chart)."""
    import matplotlib

    matplotlib.use("Agg")
    from matplotlib import pyplot as plt

    labels = [f"{p.cluster}\n{p.segment}" for p in profiles]
    values = [p.gross_revenue_mean for p in profiles]
    colours = ["#c0392b" if p.is_insider else "#7f8c8d" for p in profiles]
    figure, axis = plt.subplots(figsize=(10, 4.8), dpi=110)
    bars = axis.bar(range(len(values)), values, color=colours)
    for bar, profile in zip(bars, profiles):
        axis.annotate(
            f"{profile.revenue_share:.0%} of revenue\n{profile.customer_share:.1%} of customers",
            (bar.get_x() + bar.get_width() / 2, bar.get_height()),
            ha="center",
            va="bottom",
            fontsize=7,
        )
    axis.set_xticks(range(len(values)), labels, fontsize=8)
    axis.set_ylabel("mean gross revenue per customer")
    axis.set_title(title)
    axis.spines[["top", "right"]].set_visible(False)
    figure.tight_layout()
    buffer = _io.BytesIO()
    figure.savefig(buffer, format="png")
    plt.close(figure)
    return buffer.getvalue()


def profiles_csv(profiles: Sequence[ClusterProfile]) -> str:
    columns = list(ClusterProfile.__dataclass_fields__)
    lines = [",".join(columns)]
    for profile in profiles:
        values = [getattr(profile, c) for c in columns]
        lines.append(",".join(f'"{v}"' if isinstance(v, str) else str(v) for v in values))
    return "\n".join(lines) + "\n"


def profile_table_markdown(profiles: Sequence[ClusterProfile]) -> str:
    header = (
        "| cluster | segment | customers | % customers | mean gross revenue | mean recency (days) "
        "| mean products | mean frequency | mean returns | % revenue |\n"
        "|---:|---|---:|---:|---:|---:|---:|---:|---:|---:|"
    )
    rows = [
        f"| {p.cluster} | {p.segment} | {p.customers:,} | {p.customer_share:.1%} | "
        f"{p.gross_revenue_mean:,.2f} | {p.recency_days_mean:.1f} | {p.qty_products_mean:.1f} | "
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


def rules_section(embedding: LeafEmbedding, rules: Sequence[RuleRow], *, top: int) -> str:
    """Why a customer is in a cluster: the tree's rule for each leaf, and each leaf's top reasons."""
    units = "log(1 + revenue) units" if embedding.label == "log1p" else "revenue units"
    return "\n".join(
        [
            "## Why a customer is in a cluster",
            "",
            "Every customer reaches one leaf of the revenue tree, by one rule; a cluster is the union of its "
            "leaves' rules, so these rules *are* its definition (the `rules` output table holds them with a "
            "Spark SQL predicate each). Support: the rule's customers and its share of the cluster; precision: "
            "the share of the rule's customers in that cluster.",
            "",
            explain.rules_markdown(rules),
            "",
            f"Per customer, `top_features` in the segments table lists the {top} features whose splits moved the "
            f"tree's prediction the most on the way to the customer's leaf ({units}; +0.69 in log units doubles "
            "the predicted revenue). Per leaf:",
            "",
            explain.contributions_markdown(embedding.tree, rules, top=top, label=embedding.label),
            "",
        ]
    )


def backtest_section(summary: str, chart_file: str | None) -> str:
    """Proof of value: the backtest's headline, its table and the capture chart (if measured)."""
    chart = [f"![cumulative share of the next period's revenue by customer rank]({chart_file})", ""] if chart_file else []
    return "\n".join(["## Proof of value (backtest)", "", summary, "", *chart])


def render_page(
    profiles: Sequence[ClusterProfile], metrics: Mapping[str, Any], *, sections: Sequence[str] = ()
) -> str:
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
            f"A decision tree learns {_describe_label(embedding)} from the other features "
            f"(depth {embedding['depth']}, {embedding['leaves']} leaves); each customer is placed by the path to its leaf "
            f"(`{embedding['encoding']}` encoding), and KMeans (k={metrics['clustering']['k']}, "
            f"seed {metrics['clustering']['seed']}) groups those positions. Clusters are numbered by mean "
            f"gross revenue; cluster 1 is the Insiders.{_describe_grid(embedding)}",
            "",
            *sections,
        ]
    )


def _describe_grid(embedding: Mapping[str, Any]) -> str:
    """A sentence on the split grids, when the tree's inputs were snapped (models before them: none)."""
    grid = SplitGrid.from_description(embedding)
    if not grid.snapped:
        return ""
    inputs: dict[str, list[str]] = {}
    for feature in grid.snapped:
        inputs.setdefault(grid.name(feature), []).append(f"`{feature}`")

    def first_steps(name: str) -> str:
        return ", ".join(f"{v:,g}" for v in [v for v in grid_values(name) if v >= 1][:3])

    steps = "; ".join(f"{', '.join(features)} on {first_steps(name)}, …" for name, features in inputs.items())
    return (
        f" The tree's inputs were first snapped down to fixed grids ({steps}), so every threshold falls "
        "between two grid values and the rules read in them."
    )


def _describe_label(embedding: Mapping[str, Any]) -> str:
    return "log(1 + gross revenue)" if embedding["label"] == "log1p" else "gross revenue"
