"""KMeans on leaf points: sizes, reproducibility, silhouette against a direct computation."""

import dataclasses

import numpy as np
import pytest
from sklearn.metrics import silhouette_score

from insiders_spark.clustering import (
    KMEANS_CLUSTER,
    ClusteringError,
    collect_points,
    fit_kmeans,
    silhouette,
    with_kmeans_clusters,
)
from insiders_spark.config import ClusteringConfig
from insiders_spark.embedding import EMBEDDING
from pyspark.ml.linalg import Vectors


def _embedded(spark):
    """Customers on six leaf points: three tight pairs far apart, with uneven head-counts."""
    points = {
        0: ([0.0, 0.0], 30), 1: ([0.0, 1.0], 10),
        2: ([10.0, 0.0], 25), 3: ([10.0, 1.0], 5),
        4: ([0.0, 20.0], 12), 5: ([1.0, 20.0], 18),
    }
    rows = []
    customer = 0
    for leaf, (vector, count) in points.items():
        for _ in range(count):
            rows.append((customer, leaf, Vectors.dense(vector)))
            customer += 1
    return spark.createDataFrame(rows, ["customer_id", "leaf", EMBEDDING])


@pytest.mark.parametrize("solver", ["local", "mllib"])
def test_three_obvious_groups(spark, solver):
    embedded = _embedded(spark)
    fitted = fit_kmeans(embedded, config=ClusteringConfig(solver=solver, n_init=3), k=3, seed=1)
    clusters = fitted.leaf_clusters
    assert clusters[0] == clusters[1] and clusters[2] == clusters[3] and clusters[4] == clusters[5]
    assert len(set(clusters.values())) == 3
    clustered = with_kmeans_clusters(embedded, fitted)
    sizes = sorted(r["count"] for r in clustered.groupBy(KMEANS_CLUSTER).count().collect())
    assert sizes == [30, 30, 40] and sum(sizes) == embedded.count()
    # the cost is over customers: 10 and 30 customers half a unit off... computed directly
    assert fitted.cost == pytest.approx(30 * 0.25**2 + 10 * 0.75**2 + 25 * (1 / 6) ** 2 + 5 * (5 / 6) ** 2 + 12 * 0.6**2 + 18 * 0.4**2)


def test_same_seed_same_clusters(spark):
    embedded = _embedded(spark)
    config = ClusteringConfig(n_init=2)
    first = fit_kmeans(embedded, config=config, k=4, seed=5)
    second = fit_kmeans(embedded, config=config, k=4, seed=5)
    assert first.leaf_clusters == second.leaf_clusters
    np.testing.assert_array_equal(first.centers, second.centers)


def test_too_few_points_for_k(spark):
    with pytest.raises(ClusteringError, match="only 6 distinct points"):
        fit_kmeans(_embedded(spark), config=ClusteringConfig(), k=7, seed=1)


def test_silhouette_equals_a_direct_computation(spark):
    embedded = _embedded(spark)
    fitted = fit_kmeans(embedded, config=ClusteringConfig(), k=3, seed=1)
    clustered = with_kmeans_clusters(embedded, fitted)
    rows = clustered.select(EMBEDDING, KMEANS_CLUSTER).collect()
    vectors = np.array([r[EMBEDDING].toArray() for r in rows])
    labels = np.array([r[KMEANS_CLUSTER] for r in rows])
    direct = silhouette_score(vectors, labels, metric="sqeuclidean")
    measured = silhouette(clustered)
    assert -1.0 <= measured <= 1.0
    assert measured == pytest.approx(direct, abs=1e-9)


def test_points_are_weighted_by_customers(spark):
    points = collect_points(_embedded(spark))
    assert points.leaves == (0, 1, 2, 3, 4, 5)
    assert points.customers.tolist() == [30, 10, 25, 5, 12, 18]
