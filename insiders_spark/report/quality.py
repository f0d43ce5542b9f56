"""Markdown for the quality part of the report: targets, programme size, confidence, silhouette
check, stability, choice of k.

Pure functions of the measured dataclasses (no Spark), so the report can be rendered from a run's
results and tested on hand-made values.
"""

from __future__ import annotations

from collections.abc import Sequence

from insiders_spark.core.config import QualityConfig
from insiders_spark.evaluation.kselection import KSelection
from insiders_spark.evaluation.quality import SilhouetteCheck
from insiders_spark.evaluation.stability import SEED, Stability, summary
from insiders_spark.model.profiles import ClusterProfile
from insiders_spark.model.programme_size import ProgrammeSize
from insiders_spark.report.programme import confidence_markdown, programme_markdown
from insiders_spark.segments.confidence import InsiderConfidence


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
    programme: ProgrammeSize | None = None,
) -> str:
    """One row per target: what was asked, what was measured, met or not (the Insiders: the
    programme's, within its size, when ``programme`` is given)."""
    insiders = programme.insiders if programme is not None else profiles[0]
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
        rows += stability_rows(stability, targets)
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


def stability_rows(stability: Stability, targets: QualityConfig) -> list[tuple[str, str, str, bool]]:
    """The targets' rows for stability: every seed run; the bootstrap refits' p10 at the thresholds
    and at least the revenue cut's p10."""
    rows = []
    seeds = stability.of_kind(SEED)
    if seeds:
        worst_ari, worst_jaccard = min(r.ari for r in seeds), min(r.insiders_jaccard for r in seeds)
        rows += [
            ("stability: ARI, worst seed run", f">= {targets.min_ari}", _num(worst_ari), worst_ari >= targets.min_ari),
            (
                "stability: Insiders Jaccard, worst seed run",
                f">= {targets.min_insiders_jaccard}",
                _num(worst_jaccard),
                worst_jaccard >= targets.min_insiders_jaccard,
            ),
        ]
    job, cut = stability.bootstrap, stability.reference_revenue_cut
    for key, name, threshold in (
        ("ari", "ARI", targets.min_ari),
        ("insiders_jaccard", "Insiders Jaccard", targets.min_insiders_jaccard),
    ):
        if not job["runs"]:
            continue
        p10 = job[key]["p10"]
        rows.append((f"stability: {name}, bootstrap p10", f">= {threshold}", _num(p10), p10 >= threshold))
        if cut.get(key):
            rows.append(
                (
                    f"stability: {name}, bootstrap p10 against the revenue cut's",
                    f">= {_num(cut[key]['p10'])}",
                    _num(p10),
                    p10 >= cut[key]["p10"],
                )
            )
    return rows


def stability_markdown(stability: Stability) -> str:
    """The bootstrap refits beside the revenue cut (min, p10, median), the seed runs, then every run."""
    job, cut = stability.bootstrap, stability.reference_revenue_cut
    lines = [
        f"Reference: the job's fit (seed {stability.reference_seed}, k = {stability.k}), "
        f"{stability.customers:,} customers, {stability.reference_insiders:,} Insiders. Each run is compared "
        "with it over every customer. The revenue cut puts the customers, by gross revenue alone, into "
        "groups of the job's cluster sizes, on independent Poisson(1) resamples of the same law, and is "
        "compared with its own cut of every customer: what the data allows.",
        "",
        "| runs | count | ARI min | ARI p10 | ARI median | Insiders Jaccard min | Jaccard p10 | Jaccard median |",
        "|---|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for label, block in (
        ("bootstrap refits (the job)", job),
        ("revenue cut (reference)", cut),
        ("other seeds", summary(stability.of_kind(SEED))),
    ):
        if block["runs"]:
            ari, jaccard = block["ari"], block["insiders_jaccard"]
            lines.append(
                f"| {label} | {block['runs']} | {_num(ari['min'])} | {_num(ari['p10'])} | {_num(ari['median'])} | "
                f"{_num(jaccard['min'])} | {_num(jaccard['p10'])} | {_num(jaccard['median'])} |"
            )
    lines += [
        "",
        "| run | seed | tree | trained on | ARI | Insiders Jaccard | Insiders |",
        "|---|---:|---:|---:|---:|---:|---:|",
    ]
    for run in (*stability.runs, *stability.revenue_cut):
        tree = run.tree_index if run.tree_index is not None else "–"
        lines.append(
            f"| {run.kind.replace('_', ' ')} | {run.seed} | {tree} | {run.training_customers:,.0f} | "
            f"{_num(run.ari)} | {_num(run.insiders_jaccard)} | {run.insiders:,} |"
        )
    failures = stability.failures()
    verdict = (
        "Stable: every seed run at the targets, and the bootstrap p10 at the targets and at least the revenue cut's."
        if not failures
        else "Not every stability target is met: " + "; ".join(failures) + "."
    )
    return "\n".join(lines) + f"\n\n{verdict}\n"


def k_selection_markdown(selection: KSelection) -> str:
    lines = [
        f"Grid of k scored on one reference tree ({selection.leaves} occupied leaves) with "
        f"{selection.seeds} seed and {selection.bootstraps} bootstrap runs each.",
        "",
        "| k | silhouette | smallest cluster | Insiders customers | Insiders revenue | bootstrap ARI p10 "
        "| bootstrap Insiders Jaccard p10 | meets every target |",
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
            f"{_pct(s.insiders_revenue_share)} | {_num(_p10(s.stability, 'ari'))} | "
            f"{_num(_p10(s.stability, 'insiders_jaccard'))} | {verdict} |"
        )
    lines += ["", f"Rule: {selection.rule}.", "", f"Chosen: k = {selection.chosen}. {selection.reason}."]
    return "\n".join(lines) + "\n"


def _p10(stability: Stability | None, key: str) -> float | None:
    block = stability.bootstrap if stability is not None else None
    return block[key]["p10"] if block and block["runs"] else None


def render_quality(
    *,
    profiles: Sequence[ClusterProfile] | None = None,
    silhouette: SilhouetteCheck | None = None,
    stability: Stability | None = None,
    selection: KSelection | None = None,
    targets: QualityConfig,
    programme: ProgrammeSize | None = None,
    confidence: InsiderConfidence | None = None,
    heading_level: int = 2,
) -> str:
    """The report's quality sections, for whichever measurements the run made."""
    h = "#" * heading_level
    parts = []
    if profiles is not None and silhouette is not None:
        parts.append(
            f"{h} Quality targets\n\n"
            + targets_markdown(
                profiles=profiles,
                silhouette=silhouette.mllib,
                stability=stability,
                targets=targets,
                programme=programme,
            )
        )
    if programme is not None:
        parts.append(f"{h} Programme size\n\n" + programme_markdown(programme))
    if confidence is not None:
        parts.append(f"{h} How certain the Insiders are\n\n" + confidence_markdown(confidence))
    if silhouette is not None:
        parts.append(f"{h} Silhouette\n\n" + silhouette_markdown(silhouette))
    if stability is not None:
        parts.append(f"{h} Stability\n\n" + stability_markdown(stability))
    if selection is not None:
        parts.append(f"{h} Choice of k\n\n" + k_selection_markdown(selection))
    return "\n".join(parts)
