"""The rules and the reasons in the report: each leaf's rule with its support, each leaf's top reasons."""

from __future__ import annotations

from collections.abc import Sequence

from insiders_spark.core.names import MODEL_INPUT_COLUMNS
from insiders_spark.model.embedding import LeafEmbedding
from insiders_spark.model.explain import RuleRow, leaf_contributions, top_contributions
from insiders_spark.model.tree import Tree


def rules_markdown(rows: Sequence[RuleRow]) -> str:
    """The rules grouped by cluster, largest rule first (for the report)."""
    header = (
        "| cluster | segment | rule (leaf) | customers | % of cluster | precision | mean gross revenue | % revenue |\n"
        "|---:|---|---|---:|---:|---:|---:|---:|"
    )
    lines = [
        f"| {r.cluster} | {r.segment} | {r.rule.replace('|', '/')} (leaf {r.leaf}) | {r.customers:,} | "
        f"{r.cluster_coverage:.0%} | {r.precision:.2f} | {r.gross_revenue_mean:,.2f} | {r.revenue_share:.1%} |"
        for r in rows
    ]
    return "\n".join([header, *lines])


def contributions_markdown(
    tree: Tree, rows: Sequence[RuleRow], *, top: int = 3, feature_names: Sequence[str] = MODEL_INPUT_COLUMNS
) -> str:
    """Per leaf, its top contributions: the typical answer to "why is this customer here"."""
    contributions = leaf_contributions(tree, feature_names=feature_names)
    units = "log(1 + revenue) units"
    lines = [f"| cluster | leaf | top contributions ({units}) |", "|---:|---:|---|"]
    for r in rows:
        text = ", ".join(f"{name} {value:+.2f}" for name, value in top_contributions(contributions[r.leaf], top))
        lines.append(f"| {r.cluster} | {r.leaf} | {text} |")
    return "\n".join(lines)


def rules_section(embedding: LeafEmbedding, rules: Sequence[RuleRow], *, top: int) -> str:
    """Why a customer is in a cluster: the tree's rule for each leaf, and each leaf's top reasons."""
    units = "log(1 + revenue) units"
    return "\n".join(
        [
            "## Why a customer is in a cluster",
            "",
            "Every customer reaches one leaf of the revenue tree, by one rule; a cluster is the union of its "
            "leaves' rules, so these rules *are* its definition (the `rules` output table holds them with a "
            "Spark SQL predicate each). Support: the rule's customers and its share of the cluster; precision: "
            "the share of the rule's customers in that cluster.",
            "",
            rules_markdown(rules),
            "",
            f"Per customer, `top_features` in the segments table lists the {top} features whose splits moved the "
            f"tree's prediction the most on the way to the customer's leaf ({units}; +0.69 in log units doubles "
            "the predicted revenue). Per leaf:",
            "",
            contributions_markdown(embedding.tree, rules, top=top, feature_names=embedding.inputs),
            "",
        ]
    )
