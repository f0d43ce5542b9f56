"""The driver solver's KMeans as an MLlib ``KMeansModel``, so the whole segmentation is one pipeline.

PySpark has no public constructor for a ``KMeansModel``. MLlib's own ``KMeans`` builds one with
exactly the solver's centres when fitted on a frame holding just those k points with
``initMode="random"``: the random start draws all k rows (a sample of k out of k), every point is
then its own cluster's only member, so each centre stays the point itself, bit for bit, and
Lloyd's iterations stop at once (the centres do not move).

The draw shuffles the rows (with a permutation that depends on the seed and k only), so MLlib's
cluster index i may hold the solver's centre j. A first fit reveals that permutation
(``clusterCenters`` in MLlib's order); a second fit on the rows put in the inverse order gives
MLlib's index i to the solver's centre i, so the model predicts the very cluster numbers the
profiles carry (``kmeans_cluster``). Should a Spark version shuffle otherwise, the solver's
clusters are renumbered to MLlib's order instead (a warning; the partition is the same).

:func:`matched_to_model` then predicts every leaf point with the model. MLlib and numpy compute
distances in other orders of operations, so a leaf exactly halfway between two centres could go
either way: such a leaf takes the model's cluster (a warning; the cost is the same). Any other
disagreement is a bug and fails the fit.
"""

from __future__ import annotations

import logging
from dataclasses import replace

import numpy as np
from pyspark.ml.clustering import KMeans, KMeansModel
from pyspark.ml.linalg import Vector, VectorUDT
from pyspark.sql import SparkSession
from pyspark.sql import types as T

from insiders_spark.core.errors import ClusteringError
from insiders_spark.core.names import LEAF
from insiders_spark.model.clustering import KMEANS_CLUSTER, FittedKMeans
from insiders_spark.model.embedding import EMBEDDING
from insiders_spark.spark.literals import literal_frame

log = logging.getLogger(__name__)

TIE_TOLERANCE = 1e-9  # relative: two squared distances this close are a tie


def _fit_on_centers(spark: SparkSession, centers: np.ndarray, order: list[int], seed: int) -> KMeansModel:
    schema = T.StructType([T.StructField(EMBEDDING, VectorUDT(), False)])
    points = literal_frame(spark, [(centers[i].tolist(),) for i in order], schema)  # in this order, exactly
    kmeans = KMeans(
        k=len(centers),
        initMode="random",
        maxIter=1,
        tol=0.0,
        seed=seed,
        solver="row",
        featuresCol=EMBEDDING,
        predictionCol=KMEANS_CLUSTER,
    )
    return kmeans.fit(points)


def _positions(model: KMeansModel, centers: np.ndarray) -> list[int]:
    """For each of the model's clusters, the solver's cluster with exactly that centre."""
    positions = []
    for center in model.clusterCenters():
        same = np.flatnonzero((centers == np.asarray(center)).all(axis=1))
        if len(same) != 1:
            raise ClusteringError("MLlib's KMeans did not keep the solver's centres exactly")
        positions.append(int(same[0]))
    if sorted(positions) != list(range(len(centers))):
        raise ClusteringError("MLlib's KMeans merged centres of the solver: two clusters share a centre")
    return positions


def to_kmeans_model(spark: SparkSession, fitted: FittedKMeans, *, seed: int) -> tuple[KMeansModel, FittedKMeans]:
    """An MLlib ``KMeansModel`` with exactly ``fitted``'s centres, and ``fitted`` numbered as it is
    (unchanged unless MLlib could not be given the solver's order)."""
    centers = np.asarray(fitted.centers, dtype=np.float64)
    k = len(centers)
    model = _fit_on_centers(spark, centers, list(range(k)), seed)
    positions = _positions(model, centers)
    if positions != list(range(k)):
        order = [0] * k
        for index, position in enumerate(positions):
            order[position] = index  # row `position` goes where the draw will take it from
        model = _fit_on_centers(spark, centers, order, seed)
        positions = _positions(model, centers)
    if positions != list(range(k)):
        log.warning("MLlib's KMeans numbers the clusters in another order: the solver's are renumbered to match")
        renumber = {solver: index for index, solver in enumerate(positions)}
        fitted = replace(
            fitted,
            centers=centers[positions],
            leaf_clusters={leaf: renumber[c] for leaf, c in fitted.leaf_clusters.items()},
        )
    return model, fitted


def predict_leaves(spark: SparkSession, model: KMeansModel, leaf_vectors: dict[int, Vector]) -> dict[int, int]:
    """Leaf -> the model's cluster for that leaf's point (one small Spark job)."""
    schema = T.StructType([T.StructField(LEAF, T.IntegerType(), False), T.StructField(EMBEDDING, VectorUDT(), False)])
    points = literal_frame(spark, leaf_vectors.items(), schema)
    return {
        row[LEAF]: int(row[KMEANS_CLUSTER]) for row in model.transform(points).select(LEAF, KMEANS_CLUSTER).collect()
    }


def matched_to_model(
    spark: SparkSession, fitted: FittedKMeans, model: KMeansModel, leaf_vectors: dict[int, Vector]
) -> FittedKMeans:
    """``fitted`` with each leaf in the model's cluster: the same unless a leaf is at a tie."""
    predicted = predict_leaves(spark, model, {leaf: leaf_vectors[leaf] for leaf in fitted.leaf_clusters})
    differ = {leaf: cluster for leaf, cluster in predicted.items() if cluster != fitted.leaf_clusters[leaf]}
    if not differ:
        return fitted
    centers = np.asarray(fitted.centers)
    for leaf, cluster in differ.items():
        point = np.asarray(leaf_vectors[leaf].toArray())
        mine, theirs = (float(((point - centers[c]) ** 2).sum()) for c in (fitted.leaf_clusters[leaf], cluster))
        if abs(mine - theirs) > TIE_TOLERANCE * max(mine, theirs, 1.0):
            raise ClusteringError(
                f"MLlib's KMeansModel puts leaf {leaf} in cluster {cluster}, the solver in "
                f"{fitted.leaf_clusters[leaf]} (squared distances {theirs} and {mine}): not a tie"
            )
        log.warning(
            "leaf %d is as near to cluster %d as to %d: it takes MLlib's choice",
            leaf,
            cluster,
            fitted.leaf_clusters[leaf],
        )
    return replace(fitted, leaf_clusters={**fitted.leaf_clusters, **differ})
