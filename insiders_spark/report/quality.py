"""Markdown for the quality part of the report: targets, silhouette check, stability, choice of k.

Pure functions of the measured dataclasses (no Spark), so the report can be rendered from a run's
results and tested on hand-made values.
"""

from __future__ import annotations

from collections.abc import Sequence

from insiders_spark.core.config import QualityConfig
from insiders_spark.evaluation.kselection import KSelection
from insiders_spark.evaluation.quality import SilhouetteCheck
from insiders_spark.evaluation.stability import BOOTSTRAP, SEED, Stability
from insiders_spark.model.profiles import ClusterProfile


def _pct(value: float | None, digits: int = 1) -> str:
    return "–" if value is None else f"{value:.{digits}%}"


def _num(value: float | None, digits: int = 3) -> str:
    return "–" if value is None else f"{value:.{digits}f}"


def _mark(ok: bool) -> str:
    return "yes" if ok else "**no**"


def targets_markdown(
    *,
    profiles: Sequence[ClusterProfile],
    silhouette: float,
    stability: Stability | None,
    targets: QualityConfig,
) -> str:
    """One row per target: what was asked, what was measured, met or not."""
    insiders = profiles[0]
    smallest = min(p.customer_share for p in profiles)
    rows = [
        (
            "silhouette (squared Euclidean)",
            f">= {targets.min_silhouette}",
            _num(silhouette),
            silhouette >= targets.min_silhouette,
        ),
        (
            "smallest cluster, share of customers",
            f">= {targets.min_cluster_share:.0%}",
            _pct(smallest, 2),
            smallest >= targets.min_cluster_share,
        ),
        (
            "Insiders, share of customers",
            f"<= {targets.insiders_max_share:.0%}",
            _pct(insiders.customer_share),
            insiders.customer_share <= targets.insiders_max_share,
        ),
        (
            "Insiders, share of revenue",
            f">= {targets.insiders_min_revenue_share:.0%}",
            _pct(insiders.revenue_share),
            insiders.revenue_share >= targets.insiders_min_revenue_share,
        ),
    ]
    if stability is not None:
        rows += [
            (
                "stability: ARI, worst run",
                f">= {targets.min_ari}",
                _num(stability.ari_min),
                stability.ari_min >= targets.min_ari,
            ),
            (
                "stability: Insiders Jaccard, worst run",
                f">= {targets.min_insiders_jaccard}",
                _num(stability.jaccard_min),
                stability.jaccard_min >= targets.min_insiders_jaccard,
            ),
        ]
    lines = ["| target | asked | measured | met |", "|---|---:|---:|:---:|"]
    lines += [f"| {name} | {asked} | {measured} | {_mark(ok)} |" for name, asked, measured, ok in rows]
    met = all(ok for *_, ok in rows)
    verdict = (
        "Every target is met." if met else "Not every target is met: the segmentation counts as good only when all are."
    )
    return "\n".join(lines) + f"\n\n{verdict}\n"


def silhouette_markdown(check: SilhouetteCheck) -> str:
    lines = [
        "| silhouette | value | customers | distance |",
        "|---|---:|---:|---|",
        "| every customer, exact from the leaf table (= MLlib `ClusteringEvaluator`) | "
        f"{_num(check.mllib)} | {check.customers:,} | "
        f"{check.distance} |",
        f"| scikit-learn `silhouette_score`, seeded sample (seed {check.sample_seed}) | {_num(check.sample)} | "
        f"{check.sample_rows:,} | {check.sklearn_metric} (the same) |",
    ]
    note = (
        f"\nBoth measure squared Euclidean distances in the embedding KMeans clusters in; the sample "
        f"differs from the full population by {check.difference:+.3f}.\n"
        if check.difference is not None
        else "\nThe sample held a single cluster: no cross-check.\n"
    )
    return "\n".join(lines) + "\n" + note


def stability_markdown(stability: Stability) -> str:
    """Summary by kind of run, then every run."""
    lines = [
        f"Reference: seed {stability.reference_seed}, k = {stability.k}, {stability.customers:,} customers, "
        f"{stability.reference_insiders:,} Insiders. Each run is compared with it over every customer.",
        "",
        "| runs | count | ARI min | ARI mean | Insiders Jaccard min | Insiders Jaccard mean |",
        "|---|---:|---:|---:|---:|---:|",
    ]
    for kind, label in ((SEED, "other seeds (tree + KMeans)"), (BOOTSTRAP, "bootstrap resamples of customers")):
        runs = stability.of_kind(kind)
        if runs:
            aris = [r.ari for r in runs]
            jaccards = [r.insiders_jaccard for r in runs]
            lines.append(
                f"| {label} | {len(runs)} | {_num(min(aris))} | {_num(sum(aris) / len(aris))} | "
                f"{_num(min(jaccards))} | {_num(sum(jaccards) / len(jaccards))} |"
            )
    lines += [
        "",
        "| run | seed | sample seed | trained on | ARI | Insiders Jaccard | Insiders |",
        "|---|---:|---:|---:|---:|---:|---:|",
    ]
    for run in stability.runs:
        lines.append(
            f"| {run.kind} | {run.seed} | {run.sample_seed if run.sample_seed is not None else '–'} | "
            f"{run.training_customers:,} | {_num(run.ari)} | {_num(run.insiders_jaccard)} | {run.insiders:,} |"
        )
    failures = stability.failures()
    verdict = (
        f"Stable: every run reaches ARI >= {stability.targets.min_ari} and Insiders Jaccard >= "
        f"{stability.targets.min_insiders_jaccard}."
        if not failures
        else "Not stable enough (worst run): " + "; ".join(failures) + "."
    )
    return "\n".join(lines) + f"\n\n{verdict}\n"


def k_selection_markdown(selection: KSelection) -> str:
    lines = [
        f"Grid of k scored on one reference tree ({selection.leaves} occupied leaves) with "
        f"{selection.seeds} seed and {selection.bootstraps} bootstrap runs each.",
        "",
        "| k | silhouette | smallest cluster | Insiders customers | Insiders revenue | ARI min "
        "| Insiders Jaccard min | meets every target |",
        "|---:|---:|---:|---:|---:|---:|---:|---|",
    ]
    for s in selection.scores:
        if s.error:
            lines.append(f"| {s.k} | – | – | – | – | – | – | no: {s.error} |")
            continue
        verdict = "yes" if s.qualifies else "no: " + "; ".join(s.failures)
        chosen = " **(chosen)**" if s.k == selection.chosen else ""
        lines.append(
            f"| {s.k}{chosen} | {_num(s.silhouette)} | {_pct(s.smallest_cluster_share, 2)} | "
            f"{_pct(s.insiders_share)} | "
            f"{_pct(s.insiders_revenue_share)} | {_num(s.stability.ari_min if s.stability else None)} | "
            f"{_num(s.stability.jaccard_min if s.stability else None)} | {verdict} |"
        )
    lines += ["", f"Rule: {selection.rule}.", "", f"Chosen: k = {selection.chosen}. {selection.reason}."]
    return "\n".join(lines) + "\n"


def render_quality(
    *,
    profiles: Sequence[ClusterProfile] | None = None,
    silhouette: SilhouetteCheck | None = None,
    stability: Stability | None = None,
    selection: KSelection | None = None,
    targets: QualityConfig,
    heading_level: int = 2,
) -> str:
    """The report's quality sections, for whichever measurements the run made."""
    h = "#" * heading_level
    parts = []
    if profiles is not None and silhouette is not None:
        parts.append(
            f"{h} Quality targets\n\n"
            + targets_markdown(profiles=profiles, silhouette=silhouette.mllib, stability=stability, targets=targets)
        )
    if silhouette is not None:
        parts.append(f"{h} Silhouette\n\n" + silhouette_markdown(silhouette))
    if stability is not None:
        parts.append(f"{h} Stability\n\n" + stability_markdown(stability))
    if selection is not None:
        parts.append(f"{h} Choice of k\n\n" + k_selection_markdown(selection))
    return "\n".join(parts)
