"""Markdown for the programme: its size (and what the bound cost), and how certain its Insiders are.

Pure functions of measured values (no Spark).
"""

from __future__ import annotations

from insiders_spark.model.programme_size import ProgrammeSize
from insiders_spark.segments.confidence import InsiderConfidence


def _pct(value: float) -> str:
    return f"{value:.1%}"


def programme_markdown(programme: ProgrammeSize) -> str:
    """The Insiders against the programme's size, and what the bound cost when it bit."""
    insiders, cluster = programme.insiders, programme.cluster
    lines = [
        f"The programme takes at most {programme.share:.0%} of the customers: {programme.cap:,} of "
        f"{programme.customers:,}. The Insiders are {insiders.customers:,} customers "
        f"({_pct(insiders.customer_share)}), with {_pct(insiders.revenue_share)} of the revenue.",
        "",
    ]
    if not programme.binding:
        lines.append("The bound did not bind: the Insiders are the whole of cluster 1.")
        return "\n".join(lines) + "\n"
    lines += [
        f"**The bound bit.** Cluster 1 holds {cluster.customers:,} customers ({_pct(cluster.customer_share)}). "
        "Its customers are ranked by the tree's predicted value, then gross revenue; the first "
        f"{insiders.customers:,} are the Insiders, the other {cluster.customers - insiders.customers:,} are "
        "cluster 1's waiting list. The clusters do not change, so neither does the silhouette "
        f"({programme.silhouette:.3f}).",
        "",
        "| | customers | share of customers | share of revenue |",
        "|---|---:|---:|---:|",
        f"| cluster 1 | {cluster.customers:,} | {_pct(cluster.customer_share)} | {_pct(cluster.revenue_share)} |",
        f"| the programme's Insiders | {insiders.customers:,} | {_pct(insiders.customer_share)} | "
        f"{_pct(insiders.revenue_share)} |",
    ]
    return "\n".join(lines) + "\n"


def confidence_markdown(confidence: InsiderConfidence) -> str:
    """Core and borderline Insiders, and the near misses (the most confident first)."""
    core, near = confidence.core_threshold, confidence.near_miss_threshold
    lines = [
        "`insider_confidence` is the share of the bootstrap refits whose Insiders hold the customer "
        "(every refit counts: a refit assigns every customer).",
        "",
        "| group | customers |",
        "|---|---:|",
        f"| core Insiders (confidence >= {core:g}) | {confidence.core:,} |",
        f"| borderline Insiders (< {core:g}) | {confidence.borderline:,} |",
        f"| near misses: not Insiders, confidence >= {near:g} | {confidence.near_misses:,} |",
    ]
    if confidence.listed:
        lines += [
            "",
            f"The {len(confidence.listed)} most confident near misses (then the largest revenue):",
            "",
            "| customer | cluster | segment | gross revenue | insider confidence |",
            "|---|---:|---|---:|---:|",
        ]
        lines += [
            f"| {m.source_customer_id or m.customer_id} | {m.cluster} | {m.segment} | {m.gross_revenue:,.2f} | "
            f"{m.insider_confidence:.2f} |"
            for m in confidence.listed
        ]
    return "\n".join(lines) + "\n"
