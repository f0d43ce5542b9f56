"""Each perturbed run against the reference over every customer, and the revenue cut beside them.

For every run: the adjusted Rand index of its clusters against the reference's, and the Jaccard
of its Insiders against the reference's Insiders (each run's Insiders chosen as the job chooses
its own: top cluster by mean revenue over its training customers, within the programme's size).
From the leaf tables, both are exact, on the driver, for any k. Only when a programme cut splits a
leaf (``model.programme``) do the Insiders need the customers themselves: one more aggregation.

The bootstrap runs are summarised by their min, 10th percentile and median (numpy's linear
interpolation: with 20 runs the p10 lies between the 2nd and 3rd lowest), and so is the
reference: the revenue cut on independent resamples of the same law (``revenue_cut``). The
target is the job's p10 at least the revenue cut's, for both measures.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np
from pyspark.sql import DataFrame
from pyspark.sql import functions as F

from insiders_spark.core.config import Config, QualityConfig
from insiders_spark.core.errors import ClusteringError
from insiders_spark.core.names import CUSTOMER_ID, GROSS_REVENUE, LEAF
from insiders_spark.evaluation.agreement import Contingency
from insiders_spark.evaluation.quality import bootstrap_failures, stability_failures
from insiders_spark.evaluation.stability.clusters import KMeansFit, RunClusters, cluster_run
from insiders_spark.evaluation.stability.revenue_cut import RevenueCut
from insiders_spark.evaluation.stability.runs import BOOTSTRAP, SEED, LeafRun, LeafRuns, fit_leaf_runs
from insiders_spark.model.clustering import fit_kmeans_to_points
from insiders_spark.model.embedding import LeafEmbedding
from insiders_spark.model.forest import BootstrapForest, InsiderVotes
from insiders_spark.model.programme import CUT_KEY, InsiderRule, find_boundaries, insider_rule

log = logging.getLogger(__name__)

REVENUE_CUT = "revenue_cut"
DEFAULT_SEEDS = 5
DEFAULT_BOOTSTRAPS = 20
_REFERENCE_KEY = -1
_MINE, _POSITION = "_reference_insider", "_position"


@dataclass(frozen=True)
class RunAgreement:
    """One perturbed run (or one resample's revenue cut) against the reference, over every customer."""

    kind: str  # seed | bootstrap | revenue_cut
    seed: int  # KMeans' seed; a revenue cut: its resample's
    tree_index: int | None
    training_customers: float
    ari: float
    insiders_jaccard: float
    insiders: int  # customers this run calls Insiders

    def to_dict(self) -> dict:
        return {
            "kind": self.kind,
            "seed": self.seed,
            **({"tree": self.tree_index} if self.tree_index is not None else {}),
            "training_customers": round(self.training_customers, 1),
            "ari": round(self.ari, 4),
            "insiders_jaccard": round(self.insiders_jaccard, 4),
            "insiders": self.insiders,
        }


def spread(values: Sequence[float]) -> dict:
    """min, p10 and median (numpy's linear interpolation), rounded; {} for no values."""
    if not values:
        return {}
    p10, median = np.percentile(np.asarray(values, dtype=float), [10, 50])
    return {"min": round(float(min(values)), 4), "p10": round(float(p10), 4), "median": round(float(median), 4)}


def summary(runs: Sequence[RunAgreement]) -> dict:
    """The manifest's shape: ``{runs, ari: {min, p10, median}, insiders_jaccard: {min, p10, median}}``."""
    return {
        "runs": len(runs),
        "ari": spread([r.ari for r in runs]),
        "insiders_jaccard": spread([r.insiders_jaccard for r in runs]),
    }


@dataclass(frozen=True)
class Stability:
    """Agreement of every perturbed run with the reference at one k, and the revenue cut's."""

    k: int
    reference_seed: int
    customers: int
    reference_insiders: int
    runs: tuple[RunAgreement, ...]
    targets: QualityConfig
    revenue_cut: tuple[RunAgreement, ...] = ()
    seconds: float = 0.0  # fitting the runs, and this measurement
    # each bootstrap tree's Insiders, for insider_confidence
    votes: InsiderVotes | None = field(default=None, compare=False, repr=False)

    def of_kind(self, kind: str) -> tuple[RunAgreement, ...]:
        return tuple(r for r in self.runs if r.kind == kind)

    @property
    def ari_min(self) -> float:
        return min(r.ari for r in self.runs)

    @property
    def ari_mean(self) -> float:
        return float(np.mean([r.ari for r in self.runs]))

    @property
    def jaccard_min(self) -> float:
        return min(r.insiders_jaccard for r in self.runs)

    @property
    def jaccard_mean(self) -> float:
        return float(np.mean([r.insiders_jaccard for r in self.runs]))

    @property
    def bootstrap(self) -> dict:
        return summary(self.of_kind(BOOTSTRAP))

    @property
    def reference_revenue_cut(self) -> dict:
        return summary(self.revenue_cut)

    def failures(self) -> list[str]:
        """Seed runs: every one at the targets. Bootstrap runs: their p10 at the targets and at least
        the revenue cut's p10."""
        seeds = self.of_kind(SEED)
        failures = []
        if seeds:
            failures += [
                f"seed runs: {f}"
                for f in stability_failures(
                    self.targets,
                    ari_min=min(r.ari for r in seeds),
                    jaccard_min=min(r.insiders_jaccard for r in seeds),
                )
            ]
        if self.of_kind(BOOTSTRAP):
            failures += bootstrap_failures(self.targets, job=self.bootstrap, reference=self.reference_revenue_cut)
        return failures

    @property
    def meets_targets(self) -> bool:
        return not self.failures()

    def to_dict(self) -> dict:
        return {
            "k": self.k,
            "reference_seed": self.reference_seed,
            "customers": self.customers,
            "reference_insiders": self.reference_insiders,
            "seed": summary(self.of_kind(SEED)),
            "bootstrap": self.bootstrap,
            "reference_revenue_cut": self.reference_revenue_cut,
            "targets": {
                "ari": self.targets.min_ari,
                "insiders_jaccard": self.targets.min_insiders_jaccard,
                "bootstrap_p10_at_least_the_revenue_cut": True,
            },
            "meets_targets": self.meets_targets,
            "failures": self.failures(),
            "seconds": round(self.seconds, 3),
            "runs": [r.to_dict() for r in self.runs],
            "revenue_cut_runs": [r.to_dict() for r in self.revenue_cut],
        }


@dataclass(frozen=True)
class StabilityRuns:
    """The runs, fitted once, and the revenue cut; evaluated at any k on the driver."""

    leaf_runs: LeafRuns
    features: DataFrame
    customers: int
    revenue_cut: RevenueCut

    @property
    def reference(self) -> LeafRun:
        return self.leaf_runs.reference

    @property
    def perturbed(self) -> tuple[LeafRun, ...]:
        return self.leaf_runs.perturbed

    @property
    def forest(self) -> BootstrapForest | None:
        return self.leaf_runs.forest

    @property
    def seconds(self) -> float:
        return self.leaf_runs.seconds

    def reference_clusters(self, k: int, *, config: Config, kmeans: KMeansFit = fit_kmeans_to_points) -> RunClusters:
        return cluster_run(self.reference, config=config, k=k, kmeans=kmeans)

    def stability(
        self,
        k: int,
        *,
        config: Config,
        reference: RunClusters | None = None,
        kmeans: KMeansFit = fit_kmeans_to_points,
    ) -> Stability:
        """Every perturbed run against the reference at ``k`` (``reference``: the reference already
        clustered at ``k``); ``kmeans``: the solver of every run, as ``cluster_run`` takes it."""
        started = time.perf_counter()
        ref = reference or self.reference_clusters(k, config=config, kmeans=kmeans)
        others = []
        for run in self.perturbed:
            try:
                others.append(cluster_run(run, config=config, k=k, kmeans=kmeans))
            except ClusteringError as error:
                raise ClusteringError(f"{run.describe()}: {error}") from error
        rules, counts = self._insiders(ref, others)
        agreements = []
        for run, other, (both, theirs) in zip(self.perturbed, others, counts[1:], strict=True):
            table = Contingency.from_pairs(
                (ref.leaf_clusters[a], other.leaf_clusters[b], n) for (a, b), n in run.overlap.items()
            )
            union = counts[0][0] + theirs - both
            agreements.append(
                RunAgreement(
                    kind=run.kind,
                    seed=run.seed,
                    tree_index=run.tree_index,
                    training_customers=run.training_customers,
                    ari=table.adjusted_rand_index(),
                    insiders_jaccard=both / union if union else 1.0,
                    insiders=theirs,
                )
            )
        insiders = counts[0][0]
        cut = []
        if self.revenue_cut.resamples:
            results = self.revenue_cut.agreements([p.customers for p in ref.profiles], insiders)
            cut = [
                RunAgreement(REVENUE_CUT, seed, None, draws, ari, jaccard, theirs)
                for seed, draws, (ari, jaccard, theirs) in zip(
                    self.revenue_cut.seeds, self.revenue_cut.draws(), results, strict=True
                )
            ]
        forest_rules = tuple(rule for run, rule in zip(self.perturbed, rules[1:], strict=True) if run.kind == BOOTSTRAP)
        return Stability(
            k=k,
            reference_seed=self.reference.seed,
            customers=self.customers,
            reference_insiders=insiders,
            runs=tuple(agreements),
            targets=config.quality,
            revenue_cut=tuple(cut),
            seconds=self.seconds + time.perf_counter() - started,
            votes=InsiderVotes(self.forest, forest_rules) if self.forest is not None else None,
        )

    def _insiders(self, ref: RunClusters, others: list[RunClusters]) -> tuple[list[InsiderRule], list[tuple[int, int]]]:
        """The reference's Insiders and each run's (``InsiderRule``), and how many customers they
        hold: (reference, reference) first, then per run (Insiders of both, the run's Insiders).

        From the leaf tables when no rule cuts inside a leaf. A run cut inside a leaf needs its
        boundary customer, found (with the reference's Insiders among those it admits) for every
        such run in one Spark job; when the reference itself is cut inside a leaf, the customers
        are counted by one more."""
        clustered = [ref, *others]
        everyone = [_REFERENCE_KEY, *range(len(others))]
        plans = {key: c.cut for key, c in zip(everyone, clustered, strict=True) if c.cut_inside_a_leaf}
        mine = ref.insider_leaves
        frame = self.leaf_runs.with_leaves(self.features) if plans else None
        boundaries = {}
        if plans:
            # every cut run's leaf for every customer, one row each (a single pass over the forest's leaves)
            keys = list(plans)
            runs = [self.leaf_runs.leaf_sql(None if key == _REFERENCE_KEY else key) for key in keys]
            rows = frame.select(
                F.posexplode(F.expr(f"array({', '.join(runs)})")).alias(_POSITION, LEAF),
                F.expr(InsiderRule(mine).sql(self.leaf_runs.leaf_sql(None))).alias(_MINE),
                GROSS_REVENUE,
                CUSTOMER_ID,
            ).withColumn(CUT_KEY, F.expr(f"element_at(array({', '.join(map(str, keys))}), {_POSITION} + 1)"))
            boundaries = find_boundaries(rows, plans, flag=_MINE)
        rules = [
            insider_rule(
                [leaf for leaf, cluster in c.leaf_clusters.items() if cluster == 1], c.cut, boundaries.get(key)
            )
            for key, c in zip(everyone, clustered, strict=True)
        ]
        if rules[0].is_cut:
            return rules, self._count_insiders(frame, rules)
        reference = sum(n for (a, _), n in self.reference.overlap.items() if a in mine)
        counts = [(reference, reference)]
        for i, (run, rule) in enumerate(zip(self.perturbed, rules[1:], strict=True)):
            theirs = [(a, n) for (a, b), n in run.overlap.items() if b in rule.leaves]
            both, size = sum(n for a, n in theirs if a in mine), sum(n for _, n in theirs)
            if rule.is_cut:  # the boundary leaf's admitted customers
                both += boundaries[i].admitted_flagged
                size += others[i].cut.admitted_at_boundary
            counts.append((both, size))
        return rules, counts

    def _count_insiders(self, frame: DataFrame, rules: list[InsiderRule]) -> list[tuple[int, int]]:
        """As ``_insiders``' counts, over the customers (``frame``: ``LeafRuns.with_leaves``)."""
        mine = rules[0].sql(self.leaf_runs.leaf_sql(None))
        counts = [f"count_if({mine}) AS reference"]
        for i, rule in enumerate(rules[1:]):
            theirs = rule.sql(self.leaf_runs.leaf_sql(i))
            counts += [f"count_if(({mine}) AND ({theirs})) AS both_{i}", f"count_if({theirs}) AS theirs_{i}"]
        row = frame.selectExpr(*counts).first()
        return [(row["reference"], row["reference"])] + [
            (row[f"both_{i}"], row[f"theirs_{i}"]) for i in range(len(rules) - 1)
        ]


def fit_stability_runs(
    features: DataFrame,
    *,
    config: Config,
    customers: int,
    seed: int,
    seeds: int = DEFAULT_SEEDS,
    bootstraps: int = DEFAULT_BOOTSTRAPS,
    reference: LeafEmbedding | None = None,
    scratch: str | None = None,
) -> StabilityRuns:
    """Fit the reference (or reuse the job's fitted ``reference`` embedding) and the perturbed runs
    (``runs.fit_leaf_runs``); the revenue cut's resamples use ``seed + 1 ... seed + bootstraps``.
    ``customers`` is the row count of ``features``; ``scratch``: a folder the cluster shares, for the
    bootstrap forest's save (``model.forest.fit_bootstrap_forest``)."""
    if seeds < 0 or bootstraps < 0 or seeds + bootstraps == 0:
        raise ValueError(f"seeds = {seeds}, bootstraps = {bootstraps}: at least one perturbed run is needed")
    leaf_runs = fit_leaf_runs(
        features,
        config=config,
        customers=customers,
        seed=seed,
        seeds=seeds,
        bootstraps=bootstraps,
        reference=reference,
        scratch=scratch,
    )
    cut = RevenueCut(features, customers=customers, seeds=[seed + b for b in range(1, bootstraps + 1)])
    return StabilityRuns(leaf_runs=leaf_runs, features=features, customers=customers, revenue_cut=cut)


def measure_stability(
    features: DataFrame,
    *,
    config: Config,
    customers: int,
    k: int,
    seed: int,
    seeds: int = DEFAULT_SEEDS,
    bootstraps: int = DEFAULT_BOOTSTRAPS,
    reference: LeafEmbedding | None = None,
) -> Stability:
    """ARI and Insiders Jaccard of ``seeds`` seed runs and ``bootstraps`` bootstrap refits at ``k``,
    and the revenue cut's on as many resamples."""
    runs = fit_stability_runs(
        features, config=config, customers=customers, seed=seed, seeds=seeds, bootstraps=bootstraps, reference=reference
    )
    return runs.stability(k, config=config)
