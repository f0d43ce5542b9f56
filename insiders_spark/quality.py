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
target in :class:`QualityTargets` at once.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass

import numpy as np
from pyspark.sql import DataFrame
from pyspark.sql import functions as F

from insiders_spark.clustering import KMEANS_CLUSTER, SILHOUETTE_DISTANCE, EmbeddingPoints, silhouette
from insiders_spark.config import QualityConfig
from insiders_spark.embedding import EMBEDDING
from insiders_spark.profiles import ClusterProfile
from insiders_spark.schemas import CUSTOMER_ID

SKLEARN_METRIC = "sqeuclidean"  # scikit-learn's name for MLlib's squaredEuclidean
DEFAULT_SAMPLE_ROWS = 2_000


@dataclass(frozen=True)
class QualityTargets:
    """What issue 7 asks of the segmentation on the real log, all at once."""

    silhouette: float = 0.75
    min_cluster_share: float = 0.01  # every cluster holds at least this share of customers
    insiders_max_share: float = 0.10  # the Insiders are at most this share of customers ...
    insiders_min_revenue_share: float = 0.50  # ... with at least this share of the revenue
    ari: float = 0.90  # every perturbed run (seed or bootstrap) agrees with the reference at least this much
    insiders_jaccard: float = 0.90

    @classmethod
    def from_config(cls, quality: QualityConfig) -> QualityTargets:
        return cls(
            silhouette=quality.min_silhouette,
            min_cluster_share=quality.min_cluster_share,
            insiders_max_share=quality.insiders_max_share,
            insiders_min_revenue_share=quality.insiders_min_revenue_share,
            ari=quality.min_ari,
            insiders_jaccard=quality.min_insiders_jaccard,
        )

    def to_dict(self) -> dict:
        return asdict(self)

    def segmentation_failures(
        self,
        *,
        silhouette: float,
        smallest_cluster_share: float,
        insiders_share: float,
        insiders_revenue_share: float,
    ) -> list[str]:
        """The targets a segmentation misses, each as a short sentence (empty: all met)."""
        failures = []
        if silhouette < self.silhouette:
            failures.append(f"silhouette {silhouette:.3f} < {self.silhouette}")
        if smallest_cluster_share < self.min_cluster_share:
            failures.append(f"smallest cluster {smallest_cluster_share:.2%} < {self.min_cluster_share:.0%}")
        if insiders_share > self.insiders_max_share:
            failures.append(f"Insiders {insiders_share:.1%} of customers > {self.insiders_max_share:.0%}")
        if insiders_revenue_share < self.insiders_min_revenue_share:
            failures.append(
                f"Insiders {insiders_revenue_share:.1%} of revenue < {self.insiders_min_revenue_share:.0%}"
            )
        return failures

    def profile_failures(self, profiles: Sequence[ClusterProfile], *, silhouette: float) -> list[str]:
        """``segmentation_failures`` of ranked profiles (the Insiders first)."""
        return self.segmentation_failures(
            silhouette=silhouette,
            smallest_cluster_share=min(p.customer_share for p in profiles),
            insiders_share=profiles[0].customer_share,
            insiders_revenue_share=profiles[0].revenue_share,
        )

    def stability_failures(self, *, ari_min: float, jaccard_min: float) -> list[str]:
        failures = []
        if ari_min < self.ari:
            failures.append(f"stability ARI {ari_min:.3f} < {self.ari}")
        if jaccard_min < self.insiders_jaccard:
            failures.append(f"Insiders Jaccard {jaccard_min:.3f} < {self.insiders_jaccard}")
        return failures


def quality_verdict(
    *,
    profiles: Sequence[ClusterProfile],
    silhouette: float,
    stability_failures: Sequence[str] | None,
    targets: QualityTargets = QualityTargets(),
) -> dict:
    """The manifest's verdict: every target, what missed it (``stability_failures``: from
    ``Stability.failures()``; None when stability was not measured, which is then said)."""
    failures = targets.profile_failures(profiles, silhouette=silhouette)
    failures += ["stability not measured"] if stability_failures is None else list(stability_failures)
    return {"targets": targets.to_dict(), "meets_targets": not failures, "failures": failures}


@dataclass(frozen=True)
class SilhouetteCheck:
    """The full-population silhouette next to scikit-learn's on a bounded sample."""

    mllib: float  # over every customer: MLlib's ClusteringEvaluator's value (the job computes it exactly from the leaf table)
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


def leaf_silhouette(points: EmbeddingPoints, leaf_clusters: Mapping[int, int]) -> float:
    """The silhouette over *customers* (squared Euclidean), exactly, from the leaf table alone.

    Customers at one leaf share its point, so every customer-level average distance is a weighted
    sum over at most 2^max_depth points. Same definition as MLlib's ``ClusteringEvaluator`` and
    scikit-learn: a(i) averages over the *other* customers of i's cluster, b(i) is the smallest
    mean distance to another cluster, a customer alone in its cluster scores 0. Costs
    O(leaves^2) on the driver whatever the number of customers. The k grid and the job's reported
    silhouette use it; the tests check it against MLlib's over every customer.
    """
    labels = np.array([leaf_clusters[leaf] for leaf in points.leaves])
    clusters = sorted(set(labels.tolist()))
    if len(clusters) < 2:
        raise ValueError("the silhouette needs at least two clusters")
    weights = points.customers
    distances = ((points.vectors[:, None, :] - points.vectors[None, :, :]) ** 2).sum(axis=2)
    # summed distance from each point to each cluster's customers, and each cluster's customers
    to_cluster = np.stack([distances[:, labels == c] @ weights[labels == c] for c in clusters], axis=1)
    sizes = np.array([weights[labels == c].sum() for c in clusters])
    own = np.array([clusters.index(c) for c in labels.tolist()])
    scores = np.zeros(len(labels))
    for i, cluster in enumerate(own):
        if sizes[cluster] <= 1:
            continue  # alone in its cluster: 0
        a = to_cluster[i, cluster] / (sizes[cluster] - 1)
        b = min(to_cluster[i, c] / sizes[c] for c in range(len(clusters)) if c != cluster)
        scores[i] = 0.0 if a == b else (1 - a / b if a < b else b / a - 1)
    return float((weights * scores).sum() / weights.sum())


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

    rows = (
        bounded_sample(clustered.select(CUSTOMER_ID, EMBEDDING, prediction_col), key=CUSTOMER_ID, max_rows=max_rows, seed=seed)
        .collect()
    )
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
