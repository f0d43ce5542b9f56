"""KMeans on leaf points: sizes, reproducibility, silhouette against a direct computation."""

import numpy as np
import pytest
from pyspark.ml.linalg import Vectors
from pyspark.sql import functions as F
from sklearn.metrics import silhouette_score

from insiders_spark.core.config import ClusteringConfig
from insiders_spark.core.errors import ClusteringError
from insiders_spark.model.clustering import (
    KMEANS_CLUSTER,
    capped_partition,
    collect_points,
    fit_kmeans,
    local_optima,
    weighted_kmeans,
    with_kmeans_clusters,
)
from insiders_spark.model.embedding import EMBEDDING
from insiders_spark.model.silhouette import silhouette


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


# --- the local solver against every partition ------------------------------------------------


def _partitions(n: int, k: int):
    """Every partition of n points into exactly k non-empty clusters (restricted growth strings)."""
    labels = [0] * n

    def grow(i: int, used: int):
        if i == n:
            if used == k:
                yield np.array(labels)
            return
        if k - used > n - i:
            return
        for label in range(min(used + 1, k)):
            labels[i] = label
            yield from grow(i + 1, max(used, label + 1))

    yield from grow(0, 0)


def _cost(vectors: np.ndarray, weights: np.ndarray, labels: np.ndarray) -> float:
    total = 0.0
    for label in np.unique(labels):
        members = labels == label
        center = np.average(vectors[members], axis=0, weights=weights[members])
        total += float((weights[members] * ((vectors[members] - center) ** 2).sum(axis=1)).sum())
    return total


def _random_points(rng: np.random.Generator, n: int, leaf_like: bool) -> tuple[np.ndarray, np.ndarray]:
    if leaf_like:  # root-to-leaf codes: -1 / 0 / +1, some leaves far more crowded than others
        vectors = np.unique(rng.choice([-1.0, 0.0, 1.0], size=(n, 5)), axis=0)
    else:
        vectors = rng.normal(size=(n, 3))
    return vectors, rng.integers(1, 2_000, size=len(vectors)).astype(float)


@pytest.mark.parametrize("case", range(30))
def test_local_solver_finds_the_best_of_every_partition(case):
    rng = np.random.default_rng(case)
    vectors, weights = _random_points(rng, int(rng.integers(5, 10)), leaf_like=case % 2 == 1)
    k = int(rng.integers(2, len(vectors)))
    best = min(_cost(vectors, weights, labels) for labels in _partitions(len(vectors), k))
    labels, cost = weighted_kmeans(vectors, weights, k=k, starts=50, seed=case)
    assert sorted(set(labels.tolist())) == list(range(k))  # k clusters, none empty
    assert cost == pytest.approx(_cost(vectors, weights, labels), rel=1e-9)
    assert cost == pytest.approx(best, rel=1e-9)


def test_local_solver_gives_one_answer_for_every_seed():
    rng = np.random.default_rng(99)
    vectors, weights = _random_points(rng, 14, leaf_like=True)
    answers = {tuple(weighted_kmeans(vectors, weights, k=6, starts=100, seed=seed)[0].tolist()) for seed in range(8)}
    assert len(answers) == 1
    (labels,) = answers
    assert labels[0] == 0 and max(labels) == 5  # numbered by first appearance


def test_local_optima_are_distinct_single_move_optima_cheapest_first():
    rng = np.random.default_rng(7)
    vectors, weights = _random_points(rng, 12, leaf_like=True)
    k = 5
    optima = local_optima(vectors, weights, k=k, starts=300, seed=3)
    assert len(optima) > 1  # this set has alternatives, so the ordering below is tested
    keys = [tuple(labels.tolist()) for labels, _ in optima]
    assert len(set(keys)) == len(keys)
    costs = [cost for _, cost in optima]
    assert costs == sorted(costs)
    for labels, cost in optima:
        assert cost == pytest.approx(_cost(vectors, weights, labels), rel=1e-9)
        assert _single_move_optimal(vectors, weights, labels, k, cost)
    best, best_cost = weighted_kmeans(vectors, weights, k=k, starts=300, seed=3)
    assert best.tolist() == list(keys[0]) and best_cost == costs[0]


def test_local_solver_keeps_a_point_alone_rather_than_empty_a_cluster():
    # one crowded point far from three light ones: k = 4 leaves every point its own cluster
    vectors = np.array([[0.0, 0.0], [10.0, 0.0], [10.0, 0.1], [10.1, 0.0]])
    labels, cost = weighted_kmeans(vectors, np.array([1000.0, 1.0, 1.0, 1.0]), k=4, starts=3, seed=0)
    assert sorted(labels.tolist()) == [0, 1, 2, 3] and cost == 0.0
    with pytest.raises(ClusteringError, match="4 points into 5"):
        weighted_kmeans(vectors, np.ones(4), k=5, starts=3, seed=0)


# --- the size cap on the top cluster (clustering.insiders_cap) -------------------------------


def _single_move_optimal(vectors, weights, labels, k, cost) -> bool:
    """No single point moves to another cluster (keeping k non-empty) at a lower cost."""
    for i in range(len(labels)):
        if (labels == labels[i]).sum() == 1:
            continue
        for other in set(range(k)) - {int(labels[i])}:
            moved = labels.copy()
            moved[i] = other
            if _cost(vectors, weights, moved) < cost * (1 - 1e-9):
                return False
    return True


def _top_share(labels, weights, revenue) -> float:
    clusters = np.unique(labels)
    means = [revenue[labels == c].sum() / weights[labels == c].sum() for c in clusters]
    top = clusters[int(np.argmax(means))]
    return float(weights[labels == top].sum() / weights.sum())


def test_cap_takes_the_cheapest_single_move_optimum_whose_top_cluster_fits():
    binding = 0
    for case in range(40):
        rng = np.random.default_rng(case)
        vectors, weights = _random_points(rng, int(rng.integers(6, 9)), leaf_like=case % 2 == 1)
        k = int(rng.integers(2, min(5, len(vectors))))
        revenue = weights * rng.lognormal(0.0, 1.5, size=len(weights))
        optima = local_optima(vectors, weights, k=k, starts=300, seed=case)
        cap = 0.7 * _top_share(optima[0][0], weights, revenue)
        labels, outcome = capped_partition(optima, weights, revenue, k=k, cap=cap)
        # independently: every partition no single move improves, the cheapest whose top cluster fits
        fitting = [
            cost
            for candidate in _partitions(len(vectors), k)
            if _top_share(candidate, weights, revenue) <= cap
            and _single_move_optimal(vectors, weights, candidate, k, cost := _cost(vectors, weights, candidate))
        ]
        if not fitting:
            assert not outcome.fits and not outcome.binding
            continue
        assert outcome.fits and outcome.binding and _top_share(labels, weights, revenue) <= cap
        assert _cost(vectors, weights, labels) == pytest.approx(min(fitting), rel=1e-9)
        assert outcome.cost_over_optimum == pytest.approx(_cost(vectors, weights, labels) / optima[0][1] - 1, abs=1e-9)
        binding += 1
    assert binding >= 5  # the cap changed the answer often enough for the comparison to mean something


def test_cap_leaves_a_fitting_optimum_alone():
    rng = np.random.default_rng(3)
    vectors, weights = _random_points(rng, 8, leaf_like=False)
    optima = local_optima(vectors, weights, k=3, starts=200, seed=1)
    labels, outcome = capped_partition(optima, weights, weights * 2.0, k=3, cap=0.99)
    assert labels.tolist() == weighted_kmeans(vectors, weights, k=3, starts=200, seed=1)[0].tolist()
    assert outcome.fits and not outcome.binding and outcome.cost_over_optimum == 0.0


def _revenue_points(spark):
    """Seven points, 5-39 customers each, spending 1-100 apiece; at k = 3 the cheapest partition's
    top cluster holds 58% of the customers."""
    rng = np.random.default_rng(11)
    vectors = rng.normal(size=(7, 2))
    customers = rng.integers(5, 40, size=7)
    spend = rng.choice([1.0, 5.0, 20.0, 100.0], size=7)
    rows, customer = [], 0
    for leaf in range(7):
        for _ in range(int(customers[leaf])):
            rows.append((customer, leaf, Vectors.dense(vectors[leaf].tolist()), float(spend[leaf])))
            customer += 1
    return spark.createDataFrame(rows, ["customer_id", "leaf", EMBEDDING, "gross_revenue"]), customers * spend


def _top_cluster_share_of(clustered) -> float:
    sizes = clustered.groupBy(KMEANS_CLUSTER).agg(F.count("*").alias("n"), F.avg("gross_revenue").alias("mean")).collect()
    top = max(sizes, key=lambda r: r["mean"])
    return top["n"] / sum(r["n"] for r in sizes)


def test_cap_through_spark_keeps_the_top_cluster_within_the_share(spark):
    embedded, revenue = _revenue_points(spark)
    points = collect_points(embedded)
    assert points.revenue.tolist() == pytest.approx(revenue.tolist())
    free = fit_kmeans(embedded, config=ClusteringConfig(), k=3, seed=1)
    capped = fit_kmeans(embedded, config=ClusteringConfig(insiders_cap=0.3), k=3, seed=1)
    assert _top_cluster_share_of(with_kmeans_clusters(embedded, free)) > 0.5
    assert _top_cluster_share_of(with_kmeans_clusters(embedded, capped)) <= 0.3
    assert capped.cost > free.cost and free.cap is None
    described = capped.describe()["insiders_cap"]
    assert described["binding"] and described["fits"] and described["optimum_top_share"] > 0.5
    assert described["cost_over_optimum"] == pytest.approx(capped.cost / free.cost - 1, abs=1e-6)
    with pytest.raises(ValueError, match="revenue"):
        fit_kmeans(embedded.drop("gross_revenue"), config=ClusteringConfig(insiders_cap=0.3), k=3, seed=1)
