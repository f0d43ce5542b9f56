"""Stability runs and the k grid of a :class:`~studies.variants.Variant`, as the job measures its own.

The job's ``fit_stability_runs`` fits its own tree in every run, and ``StabilityRuns.stability``,
``score_k`` and ``score_grid`` cluster with its own solver. Here the same measurements take a
variant: where the variant keeps the job's tree or solver, the job's function runs; otherwise the
same steps are assembled from the public pieces of ``insiders_spark.evaluation.stability`` and
``kselection`` (``with_reference_leaf``, ``bootstrap_resample``, ``LeafRun``, ``agreement``,
``rank_leaf_clusters``, ``choose_k``, ...), with the variant's tree or solver in the job's place.
An encoding alone needs no new tree: the job's runs are re-encoded.

Every function takes the feature table already through ``variant.inputs`` (its split grid).
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Iterable
from dataclasses import replace

from pyspark.sql import DataFrame, SparkSession
from pyspark.sql import functions as F
from pyspark.sql import types as T
from threadpoolctl import threadpool_limits

from insiders_spark.core.config import Config
from insiders_spark.core.errors import ClusteringError
from insiders_spark.core.names import LEAF
from insiders_spark.evaluation import Stability, StabilityRuns, fit_stability_runs
from insiders_spark.evaluation.kselection import KScore, KSelection, choose_k, score_grid, score_k
from insiders_spark.evaluation.quality import profile_failures
from insiders_spark.evaluation.stability import (
    BOOTSTRAP,
    REFERENCE,
    REFERENCE_LEAF,
    SEED,
    LeafRun,
    RunClusters,
    agreement,
    bootstrap_resample,
    cluster_run,
    rank_leaf_clusters,
    with_reference_leaf,
)
from insiders_spark.model import LeafEmbedding, leaf_silhouette
from insiders_spark.model.leaves import CUSTOMERS, leaf_aggregates, leaf_sums
from studies.variants import PATH, Variant

log = logging.getLogger(__name__)

FitTree = Callable[[DataFrame, int, int], LeafEmbedding]  # (training customers, seed, their count) -> a tree


# --- the runs -------------------------------------------------------------------------------------


def fit_variant_runs(
    inputs: DataFrame, *, variant: Variant, config: Config, customers: int, seed: int, seeds: int, bootstraps: int
) -> StabilityRuns:
    """The reference, ``seeds`` seed runs and ``bootstraps`` bootstrap runs of the variant's tree,
    as ``fit_stability_runs`` fits the job's (the same seeds, resamples and tables)."""
    if variant.job_tree:
        runs = fit_stability_runs(
            inputs, config=config, customers=customers, seed=seed, seeds=seeds, bootstraps=bootstraps
        )
        if variant.encoding == PATH:
            return runs

        def encoded(run: LeafRun) -> LeafRun:
            return replace(run, embedding=variant.encoded(run.embedding))

        return StabilityRuns(
            reference=encoded(runs.reference), perturbed=tuple(map(encoded, runs.perturbed)), customers=customers
        )

    def fit(training: DataFrame, run_seed: int, rows: int) -> LeafEmbedding:
        return variant.fit_embedding(training, config=config.embedding, seed=run_seed, customers=rows)

    return fit_runs(inputs, fit=fit, customers=customers, seed=seed, seeds=seeds, bootstraps=bootstraps)


def fit_runs(
    features: DataFrame, *, fit: FitTree, customers: int, seed: int, seeds: int, bootstraps: int
) -> StabilityRuns:
    """``fit_stability_runs`` with another tree: ``fit`` in every run."""
    started = time.perf_counter()
    reference = fit(features, seed, customers)
    referenced = with_reference_leaf(features, reference).cache()
    try:
        ref = fit_run(referenced, fit=fit, kind=REFERENCE, seed=seed, customers=customers, embedding=reference)
        ref = replace(ref, seconds=round(time.perf_counter() - started, 3))  # with the reference tree
        perturbed = [
            fit_run(referenced, fit=fit, kind=SEED, seed=seed + i, customers=customers) for i in range(1, seeds + 1)
        ]
        perturbed += [
            fit_run(referenced, fit=fit, kind=BOOTSTRAP, seed=seed, customers=customers, sample_seed=seed + b)
            for b in range(1, bootstraps + 1)
        ]
    finally:
        referenced.unpersist()
    return StabilityRuns(reference=ref, perturbed=tuple(perturbed), customers=customers)


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
    """One run: its tree (on a bootstrap resample for ``BOOTSTRAP``) and its two leaf tables."""
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
    run = LeafRun(
        kind=kind,
        seed=seed,
        sample_seed=sample_seed,
        training_customers=training_customers,
        embedding=embedding,
        leaf_sums=leaf_sums(trained),
        overlap={(int(r[REFERENCE_LEAF]), int(r[LEAF])): int(r[CUSTOMERS]) for r in overall},
        seconds=round(time.perf_counter() - started, 3),
    )
    log.info("stability: %s, %d leaves, %.1f s", run.describe(), len(run.leaf_sums), run.seconds)
    return run


def leaf_table(embedding: LeafEmbedding, referenced: DataFrame) -> list:
    """Customers and feature sums per (reference leaf, this tree's leaf): at most leaves^2 rows."""
    return (
        embedding.model.transform(referenced)
        .groupBy(REFERENCE_LEAF, F.col(LEAF).cast(T.IntegerType()).alias(LEAF))
        .agg(*leaf_aggregates())
        .collect()
    )


# --- clustering at k ------------------------------------------------------------------------------


def cluster_variant_run(run: LeafRun, *, variant: Variant, config: Config, k: int, spark: SparkSession) -> RunClusters:
    """``cluster_run`` with the variant's solver."""
    if variant.job_clustering:
        return cluster_run(run, config=config, k=k)
    with threadpool_limits(limits=1):  # as cluster_run: threads only add overhead on a few points
        fitted = variant.fit_kmeans(run.points(), k=k, seed=run.seed, spark=spark)
    ranked, profiles = rank_leaf_clusters(run, fitted.leaf_clusters, config=config)
    return RunClusters(leaf_clusters=ranked, profiles=profiles, kmeans=fitted)


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
    if variant.job_clustering:
        return runs.stability(k, config=config, reference=reference)
    ref = reference or cluster_variant_run(runs.reference, variant=variant, config=config, k=k, spark=spark)
    agreements = []
    for run in runs.perturbed:
        try:
            other = cluster_variant_run(run, variant=variant, config=config, k=k, spark=spark)
        except ClusteringError as error:
            raise ClusteringError(f"{run.describe()}: {error}") from error
        agreements.append(agreement(run, ref.leaf_clusters, other.leaf_clusters))
    return Stability(
        k=k,
        reference_seed=runs.reference.seed,
        customers=runs.customers,
        reference_insiders=ref.profiles[0].customers,
        runs=tuple(agreements),
        targets=config.quality,
    )


def score_variant_k(runs: StabilityRuns, *, variant: Variant, config: Config, k: int, spark: SparkSession) -> KScore:
    """``score_k`` with the variant's solver."""
    if variant.job_clustering:
        return score_k(runs, k=k, config=config)
    try:
        reference = cluster_variant_run(runs.reference, variant=variant, config=config, k=k, spark=spark)
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
    scores = [score_variant_k(runs, variant=variant, config=config, k=k, spark=spark) for k in sorted(set(grid))]
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
