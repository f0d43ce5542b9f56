"""KMeans on the leaf embedding, and the silhouette that measures it.

Customers in the same leaf share one embedding point, so KMeans works on the *distinct* points,
each weighted by the customers at it: the objective is exactly the customer-level one, and the
table is bounded by the tree (at most 2^max_depth rows), not by the number of customers.

Two solvers minimise that objective:

* ``local`` (default): scikit-learn's KMeans on the driver over the bounded point table, greedy
  k-means++ with ``n_init`` starts, customer counts as sample weights.
* ``mllib``: MLlib's KMeans on the same weighted points (``weightCol``), one fit per seed from
  ``seed`` to ``seed + n_init - 1``, lowest cost kept.

On the real log MLlib's k-means|| initialisation lands in poor local optima on these few, heavily
weighted points (within-cluster cost 3,486 at best over 10 seeds against 2,247 for ``local``, and a
different answer for most seeds), so the default is ``local``; docs/embedding_study.md has the
numbers. Either way customers get their cluster through their leaf (a broadcast join), and the
silhouette is MLlib's ``ClusteringEvaluator`` over every customer.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from pyspark.ml.clustering import KMeans as MLlibKMeans
from pyspark.ml.evaluation import ClusteringEvaluator
from pyspark.ml.linalg import Vectors, VectorUDT
from pyspark.sql import DataFrame, SparkSession
from pyspark.sql import functions as F
from pyspark.sql import types as T

from insiders_spark.config import ClusteringConfig
from insiders_spark.embedding import EMBEDDING
from insiders_spark.schemas import LEAF

KMEANS_CLUSTER = "kmeans_cluster"  # KMeans' own cluster index, before ranking by revenue
POINT_WEIGHT = "point_customers"  # customers sharing one embedding point
SILHOUETTE_DISTANCE = "squaredEuclidean"  # what MLlib's ClusteringEvaluator measures by default


class ClusteringError(ValueError):
    """The embedding cannot hold the requested number of clusters."""


@dataclass(frozen=True)
class EmbeddingPoints:
    """The distinct embedding points (one per occupied leaf), as driver-side arrays."""

    leaves: tuple[int, ...]
    vectors: np.ndarray  # one row per leaf
    customers: np.ndarray  # customers at each leaf


@dataclass(frozen=True)
class FittedKMeans:
    centers: np.ndarray  # k rows
    leaf_clusters: dict[int, int]  # leaf -> KMeans cluster index
    cost: float  # within-cluster sum of squared distances, over customers
    solver: str
    runs: int
    points: int
    best_seed: int | None = None  # mllib: the seed of the winning run

    def describe(self) -> dict:
        return {
            "solver": self.solver,
            "runs": self.runs,
            "points": self.points,
            "cost": round(self.cost, 6),
            **({"best_seed": self.best_seed} if self.best_seed is not None else {}),
        }


def collect_points(embedded: DataFrame) -> EmbeddingPoints:
    """Group customers by leaf (one small aggregation; at most 2^max_depth rows come back)."""
    rows = (
        embedded.groupBy(LEAF)
        .agg(F.first(EMBEDDING).alias(EMBEDDING), F.count(F.lit(1)).alias(POINT_WEIGHT))
        .orderBy(LEAF)
        .collect()
    )
    return EmbeddingPoints(
        leaves=tuple(int(r[LEAF]) for r in rows),
        vectors=np.array([r[EMBEDDING].toArray() for r in rows]),
        customers=np.array([float(r[POINT_WEIGHT]) for r in rows]),
    )


def nearest_center(vectors: np.ndarray, centers: np.ndarray) -> np.ndarray:
    distances = ((vectors[:, None, :] - centers[None, :, :]) ** 2).sum(axis=2)
    return distances.argmin(axis=1)


def weighted_cost(points: EmbeddingPoints, centers: np.ndarray) -> float:
    labels = nearest_center(points.vectors, centers)
    return float((points.customers * ((points.vectors - centers[labels]) ** 2).sum(axis=1)).sum())


def fit_kmeans(embedded: DataFrame, *, config: ClusteringConfig, k: int, seed: int) -> FittedKMeans:
    """KMeans with ``k`` clusters over the customers' leaf positions."""
    return fit_kmeans_to_points(
        collect_points(embedded), config=config, k=k, seed=seed, spark=embedded.sparkSession
    )


def fit_kmeans_to_points(
    points: EmbeddingPoints,
    *,
    config: ClusteringConfig,
    k: int,
    seed: int,
    spark: SparkSession | None = None,
) -> FittedKMeans:
    """KMeans with ``k`` clusters over already collected leaf points (``mllib`` needs ``spark``).

    The stability study and the k selection fit many k on the same points through this call.
    """
    if len(points.leaves) < k:
        raise ClusteringError(
            f"the embedding has only {len(points.leaves)} distinct points (occupied tree leaves) for "
            f"k={k} clusters; lower --k or let the tree grow (embedding.max_depth, embedding.min_leaf_share)"
        )
    best_seed = None
    if config.solver == "mllib":
        if spark is None:
            raise ValueError("clustering.solver = 'mllib' needs a SparkSession")
        centers, best_seed = _mllib_centers(spark, points, config=config, k=k, seed=seed)
    else:
        centers = _local_centers(points, config=config, k=k, seed=seed)
    labels = nearest_center(points.vectors, centers)
    used = sorted(set(labels.tolist()))
    if len(used) < k:
        raise ClusteringError(f"KMeans left {k - len(used)} of {k} clusters empty; lower --k")
    return FittedKMeans(
        centers=centers,
        leaf_clusters={leaf: int(label) for leaf, label in zip(points.leaves, labels)},
        cost=weighted_cost(points, centers),
        solver=config.solver,
        runs=config.n_init,
        points=len(points.leaves),
        best_seed=best_seed,
    )


def _local_centers(points: EmbeddingPoints, *, config: ClusteringConfig, k: int, seed: int) -> np.ndarray:
    from sklearn.cluster import KMeans

    model = KMeans(
        n_clusters=k, n_init=config.n_init, max_iter=config.max_iter, tol=config.tol, random_state=seed
    ).fit(points.vectors, sample_weight=points.customers)
    return model.cluster_centers_


def _mllib_centers(
    spark: SparkSession, points: EmbeddingPoints, *, config: ClusteringConfig, k: int, seed: int
) -> tuple[np.ndarray, int]:
    schema = T.StructType(
        [T.StructField(EMBEDDING, VectorUDT(), False), T.StructField(POINT_WEIGHT, T.DoubleType(), False)]
    )
    table = spark.createDataFrame(
        [(Vectors.dense(v), float(w)) for v, w in zip(points.vectors, points.customers)], schema
    ).cache()
    try:
        runs = {}
        for run_seed in range(seed, seed + config.n_init):
            model = MLlibKMeans(
                featuresCol=EMBEDDING,
                weightCol=POINT_WEIGHT,
                k=k,
                seed=run_seed,
                maxIter=config.max_iter,
                tol=config.tol,
                initSteps=config.init_steps,
            ).fit(table)
            runs[run_seed] = np.array(model.clusterCenters())
    finally:
        table.unpersist()
    best = min(runs, key=lambda s: (weighted_cost(points, runs[s]), s))
    return runs[best], best


def with_kmeans_clusters(embedded: DataFrame, fitted: FittedKMeans) -> DataFrame:
    """Each customer's KMeans cluster, through its leaf."""
    schema = T.StructType(
        [T.StructField(LEAF, T.IntegerType(), False), T.StructField(KMEANS_CLUSTER, T.IntegerType(), False)]
    )
    mapping = embedded.sparkSession.createDataFrame(list(fitted.leaf_clusters.items()), schema)
    return embedded.join(F.broadcast(mapping), on=LEAF, how="inner")


def silhouette(clustered: DataFrame, *, prediction_col: str = KMEANS_CLUSTER) -> float:
    """Mean silhouette over customers, with MLlib's squared Euclidean distance."""
    evaluator = ClusteringEvaluator(
        featuresCol=EMBEDDING,
        predictionCol=prediction_col,
        metricName="silhouette",
        distanceMeasure=SILHOUETTE_DISTANCE,
    )
    return float(evaluator.evaluate(clustered))
