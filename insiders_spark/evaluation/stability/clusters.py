"""One run clustered at one k as the job clusters its own fit: KMeans on the run's leaf points,
clusters ranked by mean revenue, and the programme's cut when the top cluster is larger than the
programme (``model.programme``)."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass

from threadpoolctl import threadpool_limits

from insiders_spark.core.config import Config
from insiders_spark.evaluation.stability.runs import LeafRun
from insiders_spark.model.clustering import FittedKMeans, fit_kmeans_to_points
from insiders_spark.model.leaves import cluster_summaries
from insiders_spark.model.profiles import ClusterProfile, build_profiles
from insiders_spark.model.programme import CutPlan, plan_cut, programme_cap

# (leaf points, k=, seed=) -> a fitted KMeans; the job's: fit_kmeans_to_points with its starts
KMeansFit = Callable[..., FittedKMeans]


@dataclass(frozen=True)
class RunClusters:
    """One run clustered at one k: each leaf's cluster (1 = Insiders), the profiles, and where the
    programme cuts the top cluster (None: it fits)."""

    leaf_clusters: Mapping[int, int]
    profiles: list[ClusterProfile]
    kmeans: FittedKMeans
    cut: CutPlan | None = None

    @property
    def insider_leaves(self) -> frozenset[int]:
        """The leaves whose every customer is an Insider."""
        if self.cut is not None:
            return self.cut.whole
        return frozenset(leaf for leaf, cluster in self.leaf_clusters.items() if cluster == 1)

    @property
    def cut_inside_a_leaf(self) -> bool:
        return self.cut is not None and self.cut.boundary_leaf is not None


def cluster_run(
    run: LeafRun, *, config: Config, k: int, kmeans: KMeansFit = fit_kmeans_to_points
) -> RunClusters:
    """KMeans at ``k`` on the run's leaf points, clusters ranked by mean revenue (``build_profiles``),
    and where the programme cuts the top cluster, over every customer, as the job cuts its own.

    ``kmeans``: the solver, called as ``kmeans(points, k=k, seed=run.seed)`` (another solver is
    measured exactly as the job's). Raises ``ClusteringError`` when the run's tree has fewer
    occupied leaves than ``k``.
    """
    # one thread: on a table of at most 2^max_depth points OpenMP threads only add overhead (5x
    # slower on a busy 2-core machine); the result does not depend on the thread count
    with threadpool_limits(limits=1):
        fitted = kmeans(run.points(), k=k, seed=run.seed)
    ranked, profiles = rank_leaf_clusters(run, fitted.leaf_clusters, config=config)
    everyone = run.customers_per_leaf()
    cut = plan_cut(
        everyone,
        run.leaf_values(),
        [leaf for leaf, cluster in ranked.items() if cluster == 1],
        cap=programme_cap(sum(everyone.values()), config.segments.programme_share),
    )
    return RunClusters(leaf_clusters=ranked, profiles=profiles, kmeans=fitted, cut=cut)


def rank_leaf_clusters(
    run: LeafRun, leaf_clusters: Mapping[int, int], *, config: Config
) -> tuple[dict[int, int], list[ClusterProfile]]:
    """A partition of the run's leaves (leaf -> any cluster label) as ranked clusters: each leaf's
    rank (1 = Insiders, by mean revenue over the run's training customers) and the profiles."""
    summaries = cluster_summaries(run.leaf_sums, leaf_clusters)
    profiles = build_profiles(summaries, insiders_name=config.segments.insiders_name)
    rank = {p.kmeans_cluster: p.cluster for p in profiles}
    return {leaf: rank[c] for leaf, c in leaf_clusters.items()}, profiles
