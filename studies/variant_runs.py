"""Stability runs and the k grid of a :class:`~studies.variants.Variant`, as the job measures its own.

The job's ``fit_stability_runs`` fits its own tree (the bootstrap refits as one random forest),
``StabilityRuns.stability`` clusters every run with its own solver, cuts the Insiders to the
programme's size and sets the revenue cut beside them; ``score_k`` and ``score_grid`` build on it.
Here the same measurements take a variant:

* the job's tree: the job's runs; another encoding re-encodes their leaves (:class:`EncodedRun`);
* another tree (label, born-again forest): every run fits it (:func:`fit_runs`): the seed runs on
  every customer with their seed, the bootstrap runs on hash-keyed Poisson(1) resamples
  (``bootstrap_resample``, seeds ``seed + 1 ... seed + B``), each tree reduced to the job's two leaf
  tables (:class:`OwnTreeRuns`), the revenue cut as the job's;
* another solver: ``StabilityRuns.stability(..., kmeans=...)`` and ``cluster_run(..., kmeans=...)``.

Every function takes the feature table already through ``variant.inputs`` (its split grid).
"""

from __future__ import annotations

import dataclasses
import logging
import time
from collections.abc import Callable, Iterable

from pyspark.ml.linalg import Vector
from pyspark.sql import DataFrame, SparkSession
from pyspark.sql import functions as F
from pyspark.sql import types as T

from insiders_spark.core.config import Config
from insiders_spark.core.errors import ClusteringError
from insiders_spark.core.names import LEAF
from insiders_spark.evaluation import Stability, StabilityRuns, fit_stability_runs
from insiders_spark.evaluation.kselection import (
    KScore,
    KSelection,
    choose_k,
    revenue_cut_positions,
    score_grid,
    score_k,
)
from insiders_spark.evaluation.quality import profile_failures
from insiders_spark.evaluation.stability import (
    BOOTSTRAP,
    REFERENCE,
    REFERENCE_LEAF,
    SEED,
    KMeansFit,
    LeafRun,
    LeafRuns,
    RevenueCut,
    RunClusters,
    bootstrap_resample,
    cluster_run,
    with_reference_leaf,
)
from insiders_spark.model import LeafEmbedding, fit_kmeans_to_points, leaf_silhouette
from insiders_spark.model.leaves import leaf_aggregates, leaf_sums
from studies.variants import PATH, Variant, leaf_vectors

log = logging.getLogger(__name__)

FitTree = Callable[[DataFrame, int, int], LeafEmbedding]  # (training customers, seed, their count) -> a tree


# --- the runs -------------------------------------------------------------------------------------


@dataclasses.dataclass(frozen=True)
class EncodedRun(LeafRun):
    """A run whose leaves KMeans sees in another encoding (``studies.variants.leaf_vectors``)."""

    encoding: str = PATH

    def vectors(self) -> dict[int, Vector]:
        return leaf_vectors(self.tree, self.encoding)


def encoded(run: LeafRun, encoding: str) -> LeafRun:
    """``run`` with its leaves encoded as ``encoding`` (the same tree, tables and embedding object)."""
    if encoding == PATH:
        return run
    fields = {f.name: getattr(run, f.name) for f in dataclasses.fields(LeafRun)}
    return EncodedRun(**fields, encoding=encoding)


@dataclasses.dataclass(frozen=True)
class OwnTreeRuns(LeafRuns):
    """Runs that each fitted a tree of their own (no forest): a run's leaf for every customer comes
    from its own embedding, as ``LeafRuns`` gives a seed run that fitted its own tree."""

    def with_leaves(self, features: DataFrame) -> DataFrame:
        frame = with_reference_leaf(features, self.reference.embedding)
        for i, run in enumerate(self.perturbed):
            if run.embedding is not self.reference.embedding:
                leaf = F.col(LEAF).cast(T.IntegerType()).alias(run_leaf(i))
                frame = run.embedding.model.transform(frame).select(*frame.columns, leaf)
        return frame

    def leaf_sql(self, index: int | None) -> str:
        if index is None or self.perturbed[index].embedding is self.reference.embedding:
            return f"`{REFERENCE_LEAF}`"
        return f"`{run_leaf(index)}`"


def run_leaf(index: int) -> str:
    return f"run_leaf_{index}"


def fit_variant_runs(
    inputs: DataFrame, *, variant: Variant, config: Config, customers: int, seed: int, seeds: int, bootstraps: int
) -> StabilityRuns:
    """The reference, ``seeds`` seed runs and ``bootstraps`` bootstrap runs of the variant's tree,
    as ``fit_stability_runs`` fits the job's (the same seeds and tables; a tree of the variant's
    own is refitted on hash-keyed resamples rather than grown in the job's forest)."""
    if variant.job_tree:
        runs = fit_stability_runs(
            inputs, config=config, customers=customers, seed=seed, seeds=seeds, bootstraps=bootstraps
        )
        if variant.encoding == PATH:
            return runs
        leaf_runs = dataclasses.replace(
            runs.leaf_runs,
            reference=encoded(runs.reference, variant.encoding),
            perturbed=tuple(encoded(run, variant.encoding) for run in runs.perturbed),
        )
        return dataclasses.replace(runs, leaf_runs=leaf_runs)

    def fit(training: DataFrame, run_seed: int, rows: int) -> LeafEmbedding:
        return variant.fit_embedding(training, config=config.embedding, seed=run_seed, customers=rows)

    runs = fit_runs(inputs, fit=fit, customers=customers, seed=seed, seeds=seeds, bootstraps=bootstraps)
    leaf_runs = dataclasses.replace(
        runs.leaf_runs,
        reference=encoded(runs.reference, variant.encoding),
        perturbed=tuple(encoded(run, variant.encoding) for run in runs.perturbed),
    )
    return dataclasses.replace(runs, leaf_runs=leaf_runs)


def fit_runs(
    features: DataFrame, *, fit: FitTree, customers: int, seed: int, seeds: int, bootstraps: int
) -> StabilityRuns:
    """``fit_stability_runs`` with another tree: ``fit`` in every run. Seed run i fits with
    ``seed + i`` on every customer; bootstrap run b with ``seed`` on the resample of ``seed + b``."""
    if seeds < 0 or bootstraps < 0 or seeds + bootstraps == 0:
        raise ValueError(f"seeds = {seeds}, bootstraps = {bootstraps}: at least one perturbed run is needed")
    started = time.perf_counter()
    reference = fit(features, seed, customers)
    referenced = with_reference_leaf(features, reference).cache()
    try:
        ref = fit_run(referenced, fit=fit, kind=REFERENCE, seed=seed, customers=customers, embedding=reference)
        ref = dataclasses.replace(ref, seconds=round(time.perf_counter() - started, 3))  # with the reference tree
        perturbed = [
            fit_run(referenced, fit=fit, kind=SEED, seed=seed + i, customers=customers) for i in range(1, seeds + 1)
        ]
        perturbed += [
            fit_run(referenced, fit=fit, kind=BOOTSTRAP, seed=seed, customers=customers, sample_seed=seed + b)
            for b in range(1, bootstraps + 1)
        ]
    finally:
        referenced.unpersist()
    leaf_runs = OwnTreeRuns(
        reference=ref, perturbed=tuple(perturbed), forest=None, seconds=round(time.perf_counter() - started, 3)
    )
    cut = RevenueCut(features, customers=customers, seeds=[seed + b for b in range(1, bootstraps + 1)])
    return StabilityRuns(leaf_runs=leaf_runs, features=features, customers=customers, revenue_cut=cut)


def fit_run(
    referenced: DataFrame,
    *,
    fit: FitTree,
    kind: str,
    seed: int,
    customers: int,
    sample_seed: int | None = None,
    embedding: LeafEmbedding | None = None,
) -> LeafRun:
    """One run: its tree (on the resample of ``sample_seed`` for ``BOOTSTRAP``) and its two leaf tables."""
    started = time.perf_counter()
    if kind == BOOTSTRAP:
        training = bootstrap_resample(referenced, seed=sample_seed).cache()
        training_customers = training.count()
    else:
        training, training_customers = referenced, customers
    try:
        embedding = embedding or fit(training, seed, training_customers)
        overall = leaf_table(embedding, referenced)
        trained = overall if training is referenced else leaf_table(embedding, training)
    finally:
        if training is not referenced:
            training.unpersist()
    overlap: dict[tuple[int, int], int] = {}
    for row in overall:
        key = (int(row[REFERENCE_LEAF]), int(row[LEAF]))
        overlap[key] = overlap.get(key, 0) + int(row["customers"])
    run = LeafRun(
        kind=kind,
        seed=seed,
        tree=embedding.tree,
        training_customers=training_customers,
        leaf_sums=leaf_sums(trained),
        overlap=overlap,
        seconds=round(time.perf_counter() - started, 3),
        embedding=embedding,
    )
    log.info("stability: %s, %d leaves, %.1f s", run.describe(), len(run.leaf_sums), run.seconds)
    return run


def leaf_table(embedding: LeafEmbedding, referenced: DataFrame) -> list:
    """Customers and feature sums per (reference leaf, this tree's leaf): at most leaves^2 rows."""
    return (
        embedding.model.transform(referenced)
        .groupBy(REFERENCE_LEAF, F.col(LEAF).cast(T.IntegerType()).alias(LEAF))
        .agg(*leaf_aggregates(referenced.columns))
        .collect()
    )


# --- clustering at k ------------------------------------------------------------------------------


def solver(variant: Variant, spark: SparkSession) -> KMeansFit:
    """The variant's KMeans, as ``cluster_run`` takes it."""
    if variant.job_clustering:
        return fit_kmeans_to_points

    def fit(points, *, k: int, seed: int):
        return variant.fit_kmeans(points, k=k, seed=seed, spark=spark)

    return fit


def cluster_variant_run(run: LeafRun, *, variant: Variant, config: Config, k: int, spark: SparkSession) -> RunClusters:
    """``cluster_run`` with the variant's solver."""
    return cluster_run(run, config=config, k=k, kmeans=solver(variant, spark))


def variant_stability(
    runs: StabilityRuns,
    *,
    variant: Variant,
    config: Config,
    k: int,
    spark: SparkSession,
    reference: RunClusters | None = None,
) -> Stability:
    """``StabilityRuns.stability`` with the variant's solver."""
    return runs.stability(k, config=config, reference=reference, kmeans=solver(variant, spark))


def score_variant_k(
    runs: StabilityRuns,
    *,
    variant: Variant,
    config: Config,
    k: int,
    spark: SparkSession,
    reference: RunClusters | None = None,
) -> KScore:
    """``score_k`` with the variant's solver (``reference``: the reference already clustered at ``k``)."""
    if variant.job_clustering:
        return score_k(runs, k=k, config=config, reference=reference)
    try:
        reference = reference or cluster_variant_run(runs.reference, variant=variant, config=config, k=k, spark=spark)
    except ClusteringError as error:
        return KScore(k=k, error=str(error), failures=(f"cannot fit: {error}",))
    try:
        stability = variant_stability(runs, variant=variant, config=config, k=k, spark=spark, reference=reference)
        stability_failures = stability.failures()
    except ClusteringError as error:  # a perturbed run's tree has fewer leaves than k
        stability, stability_failures = None, [f"stability not measurable: {error}"]
    value = leaf_silhouette(runs.reference.points(), reference.kmeans.leaf_clusters)
    insiders = reference.profiles[0]
    return KScore(
        k=k,
        silhouette=value,
        smallest_cluster_share=min(p.customer_share for p in reference.profiles),
        insiders_share=insiders.customer_share,
        insiders_revenue_share=insiders.revenue_share,
        stability=stability,
        failures=tuple(profile_failures(config.quality, reference.profiles, silhouette=value) + stability_failures),
    )


def score_variant_grid(
    runs: StabilityRuns,
    *,
    variant: Variant,
    config: Config,
    grid: Iterable[int],
    spark: SparkSession,
    fallback_k: int | None = None,
) -> KSelection:
    """``score_grid`` with the variant's solver."""
    if variant.job_clustering:
        return score_grid(runs, grid=grid, config=config, fallback_k=fallback_k)
    started = time.perf_counter()
    references = {}
    for k in sorted(set(grid)):
        try:
            references[k] = cluster_variant_run(runs.reference, variant=variant, config=config, k=k, spark=spark)
        except ClusteringError:
            continue  # score_variant_k says why
    # every k's revenue-cut boundaries in one batch of Spark jobs, as score_grid
    runs.revenue_cut.prepare(p for clusters in references.values() for p in revenue_cut_positions(clusters))
    scores = [
        score_variant_k(runs, variant=variant, config=config, k=k, spark=spark, reference=references.get(k))
        for k in sorted(set(grid))
    ]
    leaves = len(runs.reference.leaf_sums)
    chosen, fallback, reason = choose_k(scores, fallback_k=fallback_k or config.clustering.k, leaves=leaves)
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
