"""The quality targets of a segmentation, and the silhouette measured twice.

The silhouette is measured over every customer, in the embedding the job clusters in, with MLlib's
squared Euclidean distance: exactly, from the leaf table (``leaf_silhouette``: customers at one leaf
share its point), which gives MLlib's ``ClusteringEvaluator``'s value (the tests check it) without
another pass over the customers. It is cross-checked by scikit-learn's
``silhouette_score(metric="sqeuclidean")`` (the same distance) on a bounded, seeded sample of
customers: the ``max_rows`` customers with the smallest seeded hash of their id (the same ones
however the table is partitioned), so at most ``max_rows`` rows ever reach the driver.

A high silhouette alone is cheap on a tree embedding (a shallow tree with a few big leaves, or one
cluster per leaf, scores near 1.0), so a segmentation counts as good only when it meets every
target of ``[quality]`` at once.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
from pyspark.sql import DataFrame
from pyspark.sql import functions as F

from insiders_spark.core.config import QualityConfig
from insiders_spark.core.names import CUSTOMER_ID
from insiders_spark.model.clustering import KMEANS_CLUSTER
from insiders_spark.model.embedding import EMBEDDING
from insiders_spark.model.profiles import ClusterProfile
from insiders_spark.model.silhouette import SILHOUETTE_DISTANCE, silhouette

SKLEARN_METRIC = "sqeuclidean"  # scikit-learn's name for MLlib's squaredEuclidean
DEFAULT_SAMPLE_ROWS = 2_000


def targets_dict(targets: QualityConfig) -> dict:
    """The targets as the manifest records them."""
    return {
        "silhouette": targets.min_silhouette,
        "min_cluster_share": targets.min_cluster_share,
        "insiders_max_share": targets.insiders_max_share,
        "insiders_min_revenue_share": targets.insiders_min_revenue_share,
        "ari": targets.min_ari,
        "insiders_jaccard": targets.min_insiders_jaccard,
    }


def segmentation_failures(
    targets: QualityConfig,
    *,
    silhouette: float,
    smallest_cluster_share: float,
    insiders_share: float,
    insiders_revenue_share: float,
) -> list[str]:
    """The targets a segmentation misses, each as a short sentence (empty: all met)."""
    failures = []
    if silhouette < targets.min_silhouette:
        failures.append(f"silhouette {silhouette:.3f} < {targets.min_silhouette}")
    if smallest_cluster_share < targets.min_cluster_share:
        failures.append(f"smallest cluster {smallest_cluster_share:.2%} < {targets.min_cluster_share:.0%}")
    if insiders_share > targets.insiders_max_share:
        failures.append(f"Insiders {insiders_share:.1%} of customers > {targets.insiders_max_share:.0%}")
    if insiders_revenue_share < targets.insiders_min_revenue_share:
        failures.append(f"Insiders {insiders_revenue_share:.1%} of revenue < {targets.insiders_min_revenue_share:.0%}")
    return failures


def profile_failures(
    targets: QualityConfig,
    profiles: Sequence[ClusterProfile],
    *,
    silhouette: float,
    insiders: tuple[float, float] | None = None,
) -> list[str]:
    """``segmentation_failures`` of ranked profiles (the Insiders first); ``insiders``: the
    programme's Insiders' (share of customers, share of revenue) when not the whole cluster 1."""
    customer_share, revenue_share = insiders or (profiles[0].customer_share, profiles[0].revenue_share)
    return segmentation_failures(
        targets,
        silhouette=silhouette,
        smallest_cluster_share=min(p.customer_share for p in profiles),
        insiders_share=customer_share,
        insiders_revenue_share=revenue_share,
    )


def stability_failures(targets: QualityConfig, *, ari_min: float, jaccard_min: float) -> list[str]:
    failures = []
    if ari_min < targets.min_ari:
        failures.append(f"stability ARI {ari_min:.3f} < {targets.min_ari}")
    if jaccard_min < targets.min_insiders_jaccard:
        failures.append(f"Insiders Jaccard {jaccard_min:.3f} < {targets.min_insiders_jaccard}")
    return failures


def bootstrap_failures(targets: QualityConfig, *, job: dict, reference: dict) -> list[str]:
    """The bootstrap refits' targets, on their 10th percentile (``stability.summary`` dicts): at the
    ``[quality]`` thresholds, and at least the revenue cut's (what the data allows)."""
    failures = []
    for key, name, threshold in (
        ("ari", "ARI", targets.min_ari),
        ("insiders_jaccard", "Insiders Jaccard", targets.min_insiders_jaccard),
    ):
        p10 = job[key]["p10"]
        if p10 < threshold:
            failures.append(f"bootstrap {name} p10 {p10:.3f} < {threshold}")
        if reference.get(key) and p10 < reference[key]["p10"]:
            failures.append(f"bootstrap {name} p10 {p10:.3f} < the revenue cut's {reference[key]['p10']:.3f}")
    return failures


def quality_verdict(
    *,
    profiles: Sequence[ClusterProfile],
    silhouette: float,
    stability_failures: Sequence[str] | None,
    targets: QualityConfig,
    insiders: tuple[float, float] | None = None,
) -> dict:
    """The manifest's verdict: every target, what missed it (``stability_failures``: from
    ``Stability.failures()``; None when stability was not measured, which is then said;
    ``insiders``: as ``profile_failures``)."""
    failures = profile_failures(targets, profiles, silhouette=silhouette, insiders=insiders)
    failures += ["stability not measured"] if stability_failures is None else list(stability_failures)
    return {"targets": targets_dict(targets), "meets_targets": not failures, "failures": failures}


@dataclass(frozen=True)
class SilhouetteCheck:
    """The full-population silhouette next to scikit-learn's on a bounded sample."""

    mllib: float  # over every customer: MLlib's ClusteringEvaluator's value (computed exactly from the leaf table)
    customers: int
    sample: float | None  # scikit-learn on the sample (None: the sample held a single cluster)
    sample_rows: int
    sample_seed: int
    distance: str = SILHOUETTE_DISTANCE  # MLlib's name
    sklearn_metric: str = SKLEARN_METRIC  # the same distance, scikit-learn's name

    @property
    def difference(self) -> float | None:
        return None if self.sample is None else self.sample - self.mllib

    def to_dict(self) -> dict:
        return {
            "mllib": round(self.mllib, 4),
            "customers": self.customers,
            "distance": self.distance,
            "sample": None if self.sample is None else round(self.sample, 4),
            "sample_rows": self.sample_rows,
            "sample_seed": self.sample_seed,
            "sample_metric": f"sklearn.metrics.silhouette_score(metric={self.sklearn_metric!r})",
            "difference": None if self.difference is None else round(self.difference, 4),
        }


def bounded_sample(frame: DataFrame, *, key: str, max_rows: int, seed: int) -> DataFrame:
    """A seeded random sample of ``max_rows`` rows without replacement (every row when there are
    fewer): the rows whose hash of (``seed``, ``key``) is smallest; ``key`` must be unique.

    The same rows whatever the partitioning (Spark's ``sample`` draws per partition, so another
    partitioning drew other customers), and one bounded pass: each partition keeps its
    ``max_rows`` smallest (a top-k), the driver merges them.
    """
    if max_rows < 1:
        raise ValueError(f"max_rows = {max_rows}: at least one row is needed")
    return frame.orderBy(F.xxhash64(F.lit(seed), F.col(key)), F.col(key)).limit(max_rows)


def sample_silhouette(
    clustered: DataFrame,
    *,
    max_rows: int = DEFAULT_SAMPLE_ROWS,
    seed: int,
    prediction_col: str = KMEANS_CLUSTER,
) -> tuple[float | None, int]:
    """scikit-learn's silhouette (squared Euclidean) on a bounded sample; (value, rows sampled)."""
    from sklearn.metrics import silhouette_score

    rows = bounded_sample(
        clustered.select(CUSTOMER_ID, EMBEDDING, prediction_col), key=CUSTOMER_ID, max_rows=max_rows, seed=seed
    ).collect()
    labels = np.array([r[prediction_col] for r in rows])
    if len(set(labels.tolist())) < 2 or len(rows) <= len(set(labels.tolist())):
        return None, len(rows)
    vectors = np.array([r[EMBEDDING].toArray() for r in rows])
    return float(silhouette_score(vectors, labels, metric=SKLEARN_METRIC)), len(rows)


def check_silhouette(
    clustered: DataFrame,
    *,
    customers: int,
    seed: int,
    max_rows: int = DEFAULT_SAMPLE_ROWS,
    prediction_col: str = KMEANS_CLUSTER,
    mllib: float | None = None,
) -> SilhouetteCheck:
    """MLlib's silhouette over ``clustered`` (or the value already computed, ``mllib``), and the
    sample cross-check. ``clustered`` holds the embedding and the cluster of every customer, as
    ``fit_segmentation`` returns it."""
    full = silhouette(clustered, prediction_col=prediction_col) if mllib is None else mllib
    value, rows = sample_silhouette(clustered, max_rows=max_rows, seed=seed, prediction_col=prediction_col)
    return SilhouetteCheck(mllib=full, customers=customers, sample=value, sample_rows=rows, sample_seed=seed)
