"""Choosing k: score a grid of k by every quality target, pick by one documented rule.

For every k of the grid, on the same reference tree (the tree does not depend on k):

* the silhouette over every customer, squared Euclidean: computed exactly from the leaf table
  (``quality.leaf_silhouette``, equal to MLlib's ``ClusteringEvaluator``; the tests check it), so
  the grid costs no Spark job per k,
* the smallest cluster's share of customers,
* the Insiders' share of customers and of revenue,
* stability: ARI and Insiders Jaccard of the seed and bootstrap runs against the reference: the
  seed runs' worst, the bootstrap runs' 10th percentile against the targets and against the revenue
  cut's at that k's cluster sizes (one batch of Spark jobs for the whole grid).

**Rule**: the *smallest* k of the grid that meets every target of ``[quality]`` at once.
Not the highest silhouette: on a leaf embedding the silhouette climbs towards 1.0 as k approaches
the number of occupied leaves (at k = leaves every cluster is one point and the silhouette is 1 by
construction), so "highest silhouette" would always pick the tree's own leaves. Once every target
is met, a larger k only splits segments further; the smallest qualifying k is the fewest segments
a marketing team has to act on. If no k qualifies, the configured k (``clustering.k``, the
study's 9) is kept (or, if the tree cannot hold that many clusters, the k that misses the fewest
targets), and the reason names what the closest k missed.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

from pyspark.sql import DataFrame

from insiders_spark.core.config import Config, QualityConfig
from insiders_spark.core.errors import ClusteringError
from insiders_spark.evaluation.quality import profile_failures, targets_dict
from insiders_spark.evaluation.stability import (
    BOOTSTRAP,
    DEFAULT_BOOTSTRAPS,
    DEFAULT_SEEDS,
    SEED,
    RunClusters,
    Stability,
    StabilityRuns,
    fit_stability_runs,
)
from insiders_spark.model.embedding import LeafEmbedding
from insiders_spark.model.silhouette import leaf_silhouette

log = logging.getLogger(__name__)

DEFAULT_GRID: tuple[int, ...] = tuple(range(4, 17))
RULE = (
    "the smallest k of the grid that meets every target at once (silhouette, smallest cluster, "
    "Insiders share of customers and of revenue, stability ARI and Insiders Jaccard: every seed run, "
    "the bootstrap p10 at the targets and at least the revenue cut's); none: the configured k"
)


@dataclass(frozen=True)
class KScore:
    """Every quality measure of one k (``error``: the k could not be fitted)."""

    k: int
    silhouette: float | None = None
    smallest_cluster_share: float | None = None
    insiders_share: float | None = None
    insiders_revenue_share: float | None = None
    stability: Stability | None = None
    failures: tuple[str, ...] = ()
    error: str | None = None

    @property
    def qualifies(self) -> bool:
        return self.error is None and not self.failures

    def to_dict(self) -> dict:
        def rounded(value: float | None) -> float | None:
            return None if value is None else round(value, 4)

        return {
            "k": self.k,
            "silhouette": rounded(self.silhouette),
            "smallest_cluster_share": rounded(self.smallest_cluster_share),
            "insiders_share": rounded(self.insiders_share),
            "insiders_revenue_share": rounded(self.insiders_revenue_share),
            "ari_min": rounded(self.stability.ari_min) if self.stability else None,
            "ari_mean": rounded(self.stability.ari_mean) if self.stability else None,
            "insiders_jaccard_min": rounded(self.stability.jaccard_min) if self.stability else None,
            "insiders_jaccard_mean": rounded(self.stability.jaccard_mean) if self.stability else None,
            "bootstrap": self.stability.bootstrap if self.stability else None,
            "reference_revenue_cut": self.stability.reference_revenue_cut if self.stability else None,
            "meets_targets": self.qualifies,
            "failures": list(self.failures),
            **({"error": self.error} if self.error else {}),
        }


@dataclass(frozen=True)
class KSelection:
    scores: tuple[KScore, ...]
    chosen: int
    fallback: bool  # no k qualified: the configured k was kept
    reason: str
    targets: QualityConfig
    leaves: int  # occupied leaves of the reference tree
    seeds: int
    bootstraps: int
    seconds: float
    rule: str = RULE

    def score(self, k: int) -> KScore | None:
        return next((s for s in self.scores if s.k == k), None)

    @property
    def stability(self) -> Stability | None:
        """The chosen k's full stability measurement (None if the chosen k could not be fitted)."""
        chosen = self.score(self.chosen)
        return chosen.stability if chosen else None

    def to_dict(self) -> dict:
        return {
            "rule": self.rule,
            "chosen": self.chosen,
            "fallback": self.fallback,
            "reason": self.reason,
            "leaves": self.leaves,
            "seeds": self.seeds,
            "bootstraps": self.bootstraps,
            "targets": targets_dict(self.targets),
            "seconds": round(self.seconds, 3),
            "grid": [s.to_dict() for s in self.scores],
        }


def choose_k(scores: Sequence[KScore], *, fallback_k: int, leaves: int | None = None) -> tuple[int, bool, str]:
    """The rule (module docstring): (chosen k, whether it is the fallback, the reason).

    ``leaves``: the reference tree's occupied leaves, the most clusters it can give; a configured
    k beyond them (and outside the grid, so not scored) cannot be the fallback either.
    """
    qualifying = sorted(s.k for s in scores if s.qualifies)
    if qualifying:
        others = ", ".join(map(str, qualifying[1:]))
        return (
            qualifying[0],
            False,
            (
                f"k={qualifying[0]} is the smallest k that meets every target"
                + (f" (also qualifying: {others})" if others else " (the only one that does)")
            ),
        )
    fitted = [s for s in scores if s.error is None]
    closest = min(fitted, key=lambda s: (len(s.failures), s.k), default=None)
    why = (
        f"no k in {min(s.k for s in scores)}..{max(s.k for s in scores)} meets every target" if scores else "empty grid"
    )
    if closest is not None:
        why += f"; closest: k={closest.k} ({'; '.join(closest.failures)})"
    configured = next((s for s in scores if s.k == fallback_k), None)
    if configured is not None and configured.error is not None and closest is not None:
        return (
            closest.k,
            True,
            f"{why}; the configured k={fallback_k} cannot be fitted ({configured.error}): took the closest",
        )
    if configured is None and leaves is not None and fallback_k > leaves and closest is not None:
        return (
            closest.k,
            True,
            (
                f"{why}; the configured k={fallback_k} cannot be fitted (the tree has {leaves} occupied "
                "leaves): took the closest"
            ),
        )
    return fallback_k, True, f"{why}; kept the configured k={fallback_k}"


def score_k(runs: StabilityRuns, *, k: int, config: Config, reference: RunClusters | None = None) -> KScore:
    """Every measure of one k, on the driver from the runs' leaf tables (``reference``: the
    reference run already clustered at ``k``)."""
    try:
        reference = reference or runs.reference_clusters(k, config=config)
    except ClusteringError as error:
        return KScore(k=k, error=str(error), failures=(f"cannot fit: {error}",))
    try:
        stability = runs.stability(k, config=config, reference=reference)
        stability_failures = stability.failures()
    except ClusteringError as error:  # a perturbed run's tree has fewer leaves than k
        stability, stability_failures = None, [f"stability not measurable: {error}"]
    value = leaf_silhouette(runs.reference.points(), reference.kmeans.leaf_clusters)
    insiders = reference.profiles[0]
    smallest = min(p.customer_share for p in reference.profiles)
    failures = profile_failures(config.quality, reference.profiles, silhouette=value) + stability_failures
    return KScore(
        k=k,
        silhouette=value,
        smallest_cluster_share=smallest,
        insiders_share=insiders.customer_share,
        insiders_revenue_share=insiders.revenue_share,
        stability=stability,
        failures=tuple(failures),
    )


def revenue_cut_positions(clusters: RunClusters) -> list[int]:
    """Where the revenue cut of ``clusters``' sizes puts its boundaries (before the programme's cut,
    which only the Insiders' boundary can move)."""
    sizes = [p.customers for p in clusters.profiles]
    return [sum(sizes[: i + 1]) for i in range(len(sizes) - 1)]


def score_grid(
    runs: StabilityRuns,
    *,
    grid: Iterable[int],
    config: Config,
    fallback_k: int | None = None,
) -> KSelection:
    started = time.perf_counter()
    references: dict[int, RunClusters | None] = {}
    for k in sorted(set(grid)):
        try:
            references[k] = runs.reference_clusters(k, config=config)
        except ClusteringError:
            references[k] = None  # score_k says why
    # every k's revenue-cut boundaries in one batch of Spark jobs
    runs.revenue_cut.prepare(
        position
        for clusters in references.values()
        if clusters is not None
        for position in revenue_cut_positions(clusters)
    )
    scores = []
    for k in sorted(set(grid)):
        score = score_k(runs, k=k, config=config, reference=references[k])
        log.info("k=%d: %s", k, "meets every target" if score.qualifies else "; ".join(score.failures))
        scores.append(score)
    leaves = len(runs.reference.leaf_sums)
    chosen, fallback, reason = choose_k(scores, fallback_k=fallback_k or config.clustering.k, leaves=leaves)
    log.info("k selection: %s", reason)
    return KSelection(
        scores=tuple(scores),
        chosen=chosen,
        fallback=fallback,
        reason=reason,
        targets=config.quality,
        leaves=leaves,
        seeds=sum(r.kind == SEED for r in runs.perturbed),
        bootstraps=sum(r.kind == BOOTSTRAP for r in runs.perturbed),
        seconds=runs.seconds + time.perf_counter() - started,
    )


def select_k(
    features: DataFrame,
    *,
    config: Config,
    customers: int,
    seed: int,
    grid: Iterable[int] = DEFAULT_GRID,
    seeds: int = DEFAULT_SEEDS,
    bootstraps: int = DEFAULT_BOOTSTRAPS,
    fallback_k: int | None = None,
    reference: LeafEmbedding | None = None,
) -> KSelection:
    """Score every k of ``grid`` and choose one by :data:`RULE`.

    One reference tree, ``seeds`` seed runs and ``bootstraps`` bootstrap runs are fitted once and
    shared by every k. The chosen k's stability is the full measurement (``KSelection.stability``).
    """
    runs = fit_stability_runs(
        features,
        config=config,
        customers=customers,
        seed=seed,
        seeds=seeds,
        bootstraps=bootstraps,
        reference=reference,
    )
    return score_grid(
        runs,
        grid=grid,
        config=config,
        fallback_k=fallback_k,
    )
