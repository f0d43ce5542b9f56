"""Stability: would another seed, or another sample of the same customers, name other Insiders?

Two kinds of perturbed runs are compared with the **reference** run (the job's seed, all customers):

* **seed runs**: the whole fit again (tree and KMeans) with seeds ``seed + 1 ... seed + S`` on the
  same customers: the luck of the algorithm;
* **bootstrap runs**: customers resampled with replacement (:func:`bootstrap_resample`, seed
  ``seed + b``), tree and KMeans refitted on the resample with the reference seed, then **every**
  customer assigned with the refitted model: the luck of the sample.

For each perturbed run and every customer: the adjusted Rand index of its clusters against the
reference's, and the Jaccard of its Insiders (its top-revenue cluster, ranked on its own training
customers, as the job ranks them) against the reference's Insiders.

How it scales. A customer's cluster is a function of its leaf, so each run is reduced once, by
Spark, to two bounded tables:

* customers and feature sums per leaf, over its training customers: KMeans' weighted points and
  the profiles that rank its clusters, for any k;
* customers per (reference leaf, run's leaf), over all customers: at most leaves^2 rows.

Everything per k then happens on the driver on those tables, and gives exactly what
``fit_segmentation`` at that k followed by ``SegmentationModel.transform`` would (the tests check
it). A grid of k costs one tree per run, not one per (run, k), and nothing of size "customers"
ever reaches the driver.
"""

from __future__ import annotations

import logging
import math
import statistics
import time
from collections.abc import Mapping
from dataclasses import dataclass, replace

from pyspark.sql import DataFrame
from pyspark.sql import functions as F
from pyspark.sql import types as T
from threadpoolctl import threadpool_limits

from insiders_spark.core.config import Config, QualityConfig
from insiders_spark.core.errors import ClusteringError
from insiders_spark.core.names import CUSTOMER_ID, LEAF
from insiders_spark.evaluation.agreement import Contingency
from insiders_spark.evaluation.quality import stability_failures
from insiders_spark.model.clustering import EmbeddingPoints, FittedKMeans, fit_kmeans_to_points
from insiders_spark.model.embedding import LeafEmbedding, fit_embedding
from insiders_spark.model.leaves import (
    CUSTOMERS,
    cluster_summaries,
    leaf_aggregates,
    leaf_points,
    leaf_sums,
    profiled_features,
)
from insiders_spark.model.profiles import ClusterProfile, build_profiles

log = logging.getLogger(__name__)

REFERENCE_LEAF = "reference_leaf"
BOOTSTRAP_COPIES = "bootstrap_copies"
POISSON_MAX_COPIES = 10
HASH_RANGE = 1 << 53  # xxhash64 -> a uniform draw in [0, 1) with 53 bits, a double's precision
REFERENCE, SEED, BOOTSTRAP = "reference", "seed", "bootstrap"
DEFAULT_SEEDS = 5
DEFAULT_BOOTSTRAPS = 5


@dataclass(frozen=True)
class LeafRun:
    """One fit of the revenue tree, reduced to the bounded tables every k needs."""

    kind: str  # reference | seed | bootstrap
    seed: int  # the seed of the tree and of KMeans
    sample_seed: int | None  # bootstrap: the resample's seed
    training_customers: int  # rows the tree learned from (a bootstrap resample has duplicates)
    embedding: LeafEmbedding
    leaf_sums: Mapping[int, Mapping[str, float]]  # training leaf -> customers and feature sums
    overlap: Mapping[tuple[int, int], int]  # (reference leaf, this run's leaf) -> all customers
    seconds: float

    def describe(self) -> str:
        sample = f", sample seed {self.sample_seed}" if self.sample_seed is not None else ""
        return f"{self.kind} run (seed {self.seed}{sample})"

    def points(self) -> EmbeddingPoints:
        """KMeans' input, as the job's fit builds it from the embedded training customers."""
        return leaf_points(self.leaf_sums, self.embedding.leaf_vectors())


@dataclass(frozen=True)
class RunClusters:
    """One run clustered at one k: each leaf's cluster (1 = Insiders) and the profiles."""

    leaf_clusters: Mapping[int, int]
    profiles: list[ClusterProfile]
    kmeans: FittedKMeans


def cluster_run(run: LeafRun, *, config: Config, k: int) -> RunClusters:
    """KMeans at ``k`` on the run's leaf points, clusters ranked by mean revenue (``build_profiles``).

    Raises ``ClusteringError`` when the run's tree has fewer occupied leaves than ``k``.
    """
    # one thread: on a table of at most 2^max_depth points OpenMP threads only add overhead (5x
    # slower on a busy 2-core machine); the result does not depend on the thread count
    with threadpool_limits(limits=1):
        fitted = fit_kmeans_to_points(run.points(), k=k, seed=run.seed)
    ranked, profiles = rank_leaf_clusters(run, fitted.leaf_clusters, config=config)
    return RunClusters(leaf_clusters=ranked, profiles=profiles, kmeans=fitted)


def rank_leaf_clusters(
    run: LeafRun, leaf_clusters: Mapping[int, int], *, config: Config
) -> tuple[dict[int, int], list[ClusterProfile]]:
    """A partition of the run's leaves (leaf -> any cluster label) as ranked clusters: each leaf's
    rank (1 = Insiders, by mean revenue over the run's training customers) and the profiles."""
    summaries = cluster_summaries(run.leaf_sums, leaf_clusters)
    profiles = build_profiles(summaries, insiders_name=config.segments.insiders_name)
    rank = {p.kmeans_cluster: p.cluster for p in profiles}
    return {leaf: rank[c] for leaf, c in leaf_clusters.items()}, profiles


@dataclass(frozen=True)
class RunAgreement:
    """One perturbed run against the reference, over every customer."""

    kind: str
    seed: int
    sample_seed: int | None
    training_customers: int
    ari: float
    insiders_jaccard: float
    insiders: int  # customers this run calls Insiders

    def to_dict(self) -> dict:
        return {
            "kind": self.kind,
            "seed": self.seed,
            **({"sample_seed": self.sample_seed} if self.sample_seed is not None else {}),
            "training_customers": self.training_customers,
            "ari": round(self.ari, 4),
            "insiders_jaccard": round(self.insiders_jaccard, 4),
            "insiders": self.insiders,
        }


def agreement(run: LeafRun, reference_ranks: Mapping[int, int], run_ranks: Mapping[int, int]) -> RunAgreement:
    """``run`` against the reference over every customer, given each one's leaf -> cluster rank."""
    table = Contingency.from_pairs(
        (reference_ranks[ref_leaf], run_ranks[leaf], count) for (ref_leaf, leaf), count in run.overlap.items()
    )
    return RunAgreement(
        kind=run.kind,
        seed=run.seed,
        sample_seed=run.sample_seed,
        training_customers=run.training_customers,
        ari=table.adjusted_rand_index(),
        insiders_jaccard=table.jaccard(1, 1),
        insiders=table.other_sizes().get(1, 0),
    )


def _summary(values: list[float]) -> dict:
    return {"min": round(min(values), 4), "mean": round(statistics.fmean(values), 4)} if values else {}


@dataclass(frozen=True)
class Stability:
    """Agreement of every perturbed run with the reference at one k."""

    k: int
    reference_seed: int
    customers: int
    reference_insiders: int
    runs: tuple[RunAgreement, ...]
    targets: QualityConfig

    def of_kind(self, kind: str) -> tuple[RunAgreement, ...]:
        return tuple(r for r in self.runs if r.kind == kind)

    @property
    def ari_min(self) -> float:
        return min(r.ari for r in self.runs)

    @property
    def ari_mean(self) -> float:
        return statistics.fmean(r.ari for r in self.runs)

    @property
    def jaccard_min(self) -> float:
        return min(r.insiders_jaccard for r in self.runs)

    @property
    def jaccard_mean(self) -> float:
        return statistics.fmean(r.insiders_jaccard for r in self.runs)

    def failures(self) -> list[str]:
        """Targets missed; judged on the worst run (no run may be unlucky)."""
        return stability_failures(self.targets, ari_min=self.ari_min, jaccard_min=self.jaccard_min)

    @property
    def meets_targets(self) -> bool:
        return not self.failures()

    def to_dict(self) -> dict:
        by_kind = {}
        for kind in (SEED, BOOTSTRAP):
            runs = self.of_kind(kind)
            by_kind[kind] = {
                "runs": len(runs),
                "ari": _summary([r.ari for r in runs]),
                "insiders_jaccard": _summary([r.insiders_jaccard for r in runs]),
            }
        return {
            "k": self.k,
            "reference_seed": self.reference_seed,
            "customers": self.customers,
            "reference_insiders": self.reference_insiders,
            "ari": _summary([r.ari for r in self.runs]),
            "insiders_jaccard": _summary([r.insiders_jaccard for r in self.runs]),
            **by_kind,
            "targets": {"ari_min": self.targets.min_ari, "insiders_jaccard_min": self.targets.min_insiders_jaccard},
            "meets_targets": self.meets_targets,
            "runs": [r.to_dict() for r in self.runs],
        }


@dataclass(frozen=True)
class StabilityRuns:
    """The reference and the perturbed runs, fitted once; evaluated at any k on the driver."""

    reference: LeafRun
    perturbed: tuple[LeafRun, ...]
    customers: int

    @property
    def seconds(self) -> float:
        return self.reference.seconds + sum(r.seconds for r in self.perturbed)

    def reference_clusters(self, k: int, *, config: Config) -> RunClusters:
        return cluster_run(self.reference, config=config, k=k)

    def stability(
        self,
        k: int,
        *,
        config: Config,
        reference: RunClusters | None = None,
    ) -> Stability:
        ref = reference or self.reference_clusters(k, config=config)
        agreements = []
        for run in self.perturbed:
            try:
                other = cluster_run(run, config=config, k=k)
            except ClusteringError as error:
                raise ClusteringError(f"{run.describe()}: {error}") from error
            agreements.append(agreement(run, ref.leaf_clusters, other.leaf_clusters))
        return Stability(
            k=k,
            reference_seed=self.reference.seed,
            customers=self.customers,
            reference_insiders=ref.profiles[0].customers,
            runs=tuple(agreements),
            targets=config.quality,
        )


def with_reference_leaf(features: DataFrame, reference: LeafEmbedding) -> DataFrame:
    """The id and profiled features of every customer, and its leaf in the reference tree."""
    return reference.model.transform(features).select(
        CUSTOMER_ID, *profiled_features(features.columns), F.col(LEAF).cast(T.IntegerType()).alias(REFERENCE_LEAF)
    )


def poisson_one_cdf(upto: int = POISSON_MAX_COPIES) -> tuple[float, ...]:
    """P(N <= n) for N ~ Poisson(1), n = 0 .. upto - 1."""
    return tuple(sum(math.exp(-1.0) / math.factorial(i) for i in range(n + 1)) for n in range(upto))


def bootstrap_resample(frame: DataFrame, *, seed: int, key: str = CUSTOMER_ID) -> DataFrame:
    """A bootstrap resample: each row kept N ~ Poisson(1) times, as ``sample(withReplacement=True,
    fraction=1.0)`` does, but N is drawn from a hash of (``key``, ``seed``) rather than a
    per-partition random stream.

    So the resample depends on the customers and the seed only: the same on 2 cores or 200, after
    any repartitioning or a different read of the same log, and the recorded stability numbers can
    be reproduced. ``sample`` would give another resample (and other numbers) whenever the
    partitioning changes. N is capped at ``POISSON_MAX_COPIES`` (P(N > 10) < 1e-8).
    """
    uniform = F.pmod(F.xxhash64(F.col(key), F.lit(seed)), F.lit(HASH_RANGE)) / F.lit(float(HASH_RANGE))
    copies = sum((uniform >= F.lit(p)).cast(T.IntegerType()) for p in poisson_one_cdf())
    return (
        frame.withColumn(BOOTSTRAP_COPIES, copies)
        .where(F.col(BOOTSTRAP_COPIES) > 0)
        .withColumn(BOOTSTRAP_COPIES, F.explode(F.array_repeat(F.col(BOOTSTRAP_COPIES), F.col(BOOTSTRAP_COPIES))))
        .drop(BOOTSTRAP_COPIES)
    )


def _leaf_table(embedding: LeafEmbedding, referenced: DataFrame) -> list:
    """Customers and feature sums per (reference leaf, this tree's leaf): at most leaves^2 rows."""
    return (
        embedding.model.transform(referenced)
        .groupBy(REFERENCE_LEAF, F.col(LEAF).cast(T.IntegerType()).alias(LEAF))
        .agg(*leaf_aggregates(referenced.columns))
        .collect()
    )


def _overlap(rows: list) -> dict[tuple[int, int], int]:
    return {(int(row[REFERENCE_LEAF]), int(row[LEAF])): int(row[CUSTOMERS]) for row in rows}


def _fit_run(
    referenced: DataFrame,
    *,
    config: Config,
    kind: str,
    seed: int,
    customers: int,
    sample_seed: int | None = None,
    embedding: LeafEmbedding | None = None,
) -> LeafRun:
    started = time.perf_counter()
    if kind == BOOTSTRAP:
        training = bootstrap_resample(referenced, seed=sample_seed).cache()
        training_customers = training.count()
    else:
        training, training_customers = referenced, customers
    try:
        embedding = embedding or fit_embedding(
            training, config=config.embedding, seed=seed, customers=training_customers
        )
        overall = _leaf_table(embedding, referenced)
        trained = overall if training is referenced else _leaf_table(embedding, training)
    finally:
        if training is not referenced:
            training.unpersist()
    run = LeafRun(
        kind=kind,
        seed=seed,
        sample_seed=sample_seed,
        training_customers=training_customers,
        embedding=embedding,
        leaf_sums=leaf_sums(trained),
        overlap=_overlap(overall),
        seconds=round(time.perf_counter() - started, 3),
    )
    log.info("stability: %s, %d leaves, %.1f s", run.describe(), len(run.leaf_sums), run.seconds)
    return run


def fit_stability_runs(
    features: DataFrame,
    *,
    config: Config,
    customers: int,
    seed: int,
    seeds: int = DEFAULT_SEEDS,
    bootstraps: int = DEFAULT_BOOTSTRAPS,
    reference: LeafEmbedding | None = None,
) -> StabilityRuns:
    """Fit the reference (or reuse the job's fitted ``reference`` embedding) and the perturbed runs.

    Seed run i (1..seeds) fits with ``seed + i``; bootstrap b (1..bootstraps) resamples with
    ``seed + b`` and fits with ``seed``. ``customers`` is the row count of ``features``.
    """
    if seeds < 0 or bootstraps < 0 or seeds + bootstraps == 0:
        raise ValueError(f"seeds = {seeds}, bootstraps = {bootstraps}: at least one perturbed run is needed")
    started = time.perf_counter()
    reference_embedding = reference or fit_embedding(features, config=config.embedding, seed=seed, customers=customers)
    referenced = with_reference_leaf(features, reference_embedding).cache()
    try:
        ref = _fit_run(
            referenced, config=config, kind=REFERENCE, seed=seed, customers=customers, embedding=reference_embedding
        )
        ref = replace(ref, seconds=round(time.perf_counter() - started, 3))  # with the reference tree
        perturbed = [
            _fit_run(referenced, config=config, kind=SEED, seed=seed + i, customers=customers)
            for i in range(1, seeds + 1)
        ]
        perturbed += [
            _fit_run(referenced, config=config, kind=BOOTSTRAP, seed=seed, customers=customers, sample_seed=seed + b)
            for b in range(1, bootstraps + 1)
        ]
    finally:
        referenced.unpersist()
    return StabilityRuns(reference=ref, perturbed=tuple(perturbed), customers=customers)


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
    """ARI and Insiders Jaccard of ``seeds`` seed runs and ``bootstraps`` bootstrap runs at ``k``."""
    runs = fit_stability_runs(
        features, config=config, customers=customers, seed=seed, seeds=seeds, bootstraps=bootstraps, reference=reference
    )
    return runs.stability(k, config=config)
