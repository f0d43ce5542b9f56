"""The silhouette of a clustering of the leaf embedding: exactly from the leaf table, or by MLlib.

Squared Euclidean distances, as MLlib's ``ClusteringEvaluator`` measures by default, in the
embedding KMeans clusters in.
"""

from __future__ import annotations

from collections.abc import Mapping

import numpy as np
from pyspark.ml.evaluation import ClusteringEvaluator
from pyspark.sql import DataFrame

from insiders_spark.model.clustering import KMEANS_CLUSTER, EmbeddingPoints
from insiders_spark.model.embedding import EMBEDDING

SILHOUETTE_DISTANCE = "squaredEuclidean"  # what MLlib's ClusteringEvaluator measures by default


def silhouette(clustered: DataFrame, *, prediction_col: str = KMEANS_CLUSTER) -> float:
    """Mean silhouette over customers, with MLlib's squared Euclidean distance."""
    evaluator = ClusteringEvaluator(
        featuresCol=EMBEDDING,
        predictionCol=prediction_col,
        metricName="silhouette",
        distanceMeasure=SILHOUETTE_DISTANCE,
    )
    return float(evaluator.evaluate(clustered))


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
