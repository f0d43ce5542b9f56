"""KMeans on the leaf points (``model.clustering``) and the silhouette that measures it
(``model.silhouette``): sizes, cost, reproducibility, the solver against every partition, the
cap on the top cluster, and the exact silhouette from the leaf table against MLlib and scikit-learn."""

import numpy as np
import pytest
from pyspark.ml.linalg import Vectors
from pyspark.sql import functions as F
from sklearn.metrics import silhouette_score

from insiders_spark.core.errors import ClusteringError
from insiders_spark.core.names import CUSTOMER_ID, GROSS_REVENUE, LEAF
from insiders_spark.model.clustering import (
    KMEANS_CLUSTER,
    EmbeddingPoints,
    capped_partition,
    fit_kmeans_to_points,
    local_optima,
    weighted_kmeans,
    with_kmeans_clusters,
)
from insiders_spark.model.embedding import EMBEDDING
from insiders_spark.model.leaves import leaf_points, summarise_leaves
from insiders_spark.model.profiles import PROFILED_FEATURES
from insiders_spark.model.silhouette import leaf_silhouette, silhouette

# Six leaf points: three tight pairs far apart, with uneven head-counts; each customer spends the
# amount of its leaf.
POINTS = {
    0: ([0.0, 0.0], 30, 10.0), 1: ([0.0, 1.0], 10, 20.0),
    2: ([10.0, 0.0], 25, 5.0), 3: ([10.0, 1.0], 5, 100.0),
    4: ([0.0, 20.0], 12, 1.0), 5: ([1.0, 20.0], 18, 2.0),
}  # fmt: skip
VECTORS = {leaf: Vectors.dense(vector) for leaf, (vector, _, _) in POINTS.items()}


def _table(points=POINTS) -> EmbeddingPoints:
    return EmbeddingPoints(
        leaves=tuple(points),
        vectors=np.array([vector for vector, _, _ in points.values()]),
        customers=np.array([float(count) for _, count, _ in points.values()]),
        revenue=np.array([count * spend for _, count, spend in points.values()]),
    )


@pytest.fixture(scope="module")
def embedded(spark):
    """One row per customer: its leaf, the leaf's point, and the profiled features (revenue set,
    the others 1.0), as ``LeafEmbedding.transform`` gives them."""
    others = [name for name in PROFILED_FEATURES if name != GROSS_REVENUE]
    rows, customer = [], 0
    for leaf, (vector, count, spend) in POINTS.items():
        for _ in range(count):
            rows.append((customer, leaf, Vectors.dense(vector), spend, *[1.0] * len(others)))
            customer += 1
    return spark.createDataFrame(rows, [CUSTOMER_ID, LEAF, EMBEDDING, GROSS_REVENUE, *others]).cache()


def test_the_leaf_table_weights_each_point_by_its_customers(embedded):
    points = leaf_points(summarise_leaves(embedded), VECTORS)
    assert points.leaves == (0, 1, 2, 3, 4, 5)
    assert points.customers.tolist() == [30, 10, 25, 5, 12, 18]
    assert points.revenue.tolist() == pytest.approx([300.0, 200.0, 125.0, 500.0, 12.0, 36.0])
    np.testing.assert_array_equal(points.vectors, _table().vectors)


def test_three_obvious_groups(embedded):
    fitted = fit_kmeans_to_points(_table(), k=3, seed=1, starts=3)
    clusters = fitted.leaf_clusters
    assert clusters[0] == clusters[1] and clusters[2] == clusters[3] and clusters[4] == clusters[5]
    assert len(set(clusters.values())) == 3
    clustered = with_kmeans_clusters(embedded, fitted)
    sizes = sorted(r["count"] for r in clustered.groupBy(KMEANS_CLUSTER).count().collect())
    assert sizes == [30, 30, 40] and sum(sizes) == embedded.count()
    # the cost is over customers: each pair's customers around their weighted centre
    assert fitted.cost == pytest.approx(
        30 * 0.25**2 + 10 * 0.75**2 + 25 * (1 / 6) ** 2 + 5 * (5 / 6) ** 2 + 12 * 0.6**2 + 18 * 0.4**2
    )
    assert fitted.describe() == {"solver": "local", "runs": 3, "points": 6, "cost": round(fitted.cost, 6)}


def test_same_seed_same_clusters():
    first = fit_kmeans_to_points(_table(), k=4, seed=5, starts=2)
    second = fit_kmeans_to_points(_table(), k=4, seed=5, starts=2)
    assert first.leaf_clusters == second.leaf_clusters
    np.testing.assert_array_equal(first.centers, second.centers)


def test_too_few_points_for_k():
    with pytest.raises(ClusteringError, match=r"only 6 distinct points \(occupied tree leaves\) for k=7"):
        fit_kmeans_to_points(_table(), k=7, seed=1)


def test_silhouette_from_the_leaf_table_equals_mllib_and_sklearn_over_every_customer(embedded):
    fitted = fit_kmeans_to_points(_table(), k=3, seed=1, starts=2)
    clustered = with_kmeans_clusters(embedded, fitted)
    exact = leaf_silhouette(_table(), fitted.leaf_clusters)
    assert exact == pytest.approx(silhouette(clustered), abs=1e-9)
    rows = clustered.select(EMBEDDING, KMEANS_CLUSTER).collect()
    vectors = np.array([r[EMBEDDING].toArray() for r in rows])
    labels = np.array([r[KMEANS_CLUSTER] for r in rows])
    assert exact == pytest.approx(silhouette_score(vectors, labels, metric="sqeuclidean"), abs=1e-9)
    assert 0.0 < exact <= 1.0


def test_leaf_silhouette_scores_a_lone_customer_zero_and_needs_two_clusters():
    # one customer alone in its cluster scores 0; the two at the other point score 1
    table = EmbeddingPoints(leaves=(0, 1), vectors=np.array([[0.0], [1.0]]), customers=np.array([1.0, 2.0]))
    assert leaf_silhouette(table, {0: 0, 1: 1}) == pytest.approx(2 / 3)
    with pytest.raises(ValueError, match="at least two clusters"):
        leaf_silhouette(table, {0: 0, 1: 0})


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
    # leaf-like: root-to-leaf codes -1 / 0 / +1; either way some points far more crowded than others
    vectors = np.unique(rng.choice([-1.0, 0.0, 1.0], size=(n, 5)), axis=0) if leaf_like else rng.normal(size=(n, 3))
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
    others = [name for name in PROFILED_FEATURES if name != GROSS_REVENUE]
    rows, customer = [], 0
    for leaf in range(7):
        for _ in range(int(customers[leaf])):
            rows.append(
                (customer, leaf, Vectors.dense(vectors[leaf].tolist()), float(spend[leaf]), *[1.0] * len(others))
            )
            customer += 1
    frame = spark.createDataFrame(rows, [CUSTOMER_ID, LEAF, EMBEDDING, GROSS_REVENUE, *others])
    return frame, {leaf: Vectors.dense(vectors[leaf].tolist()) for leaf in range(7)}, customers * spend


def _top_cluster_share(clustered) -> float:
    sizes = (
        clustered.groupBy(KMEANS_CLUSTER)
        .agg(F.count(F.lit(1)).alias("n"), F.avg(GROSS_REVENUE).alias("mean"))
        .collect()
    )
    top = max(sizes, key=lambda r: r["mean"])
    return top["n"] / sum(r["n"] for r in sizes)


def test_cap_through_spark_keeps_the_top_cluster_within_the_share(spark):
    embedded, vectors, revenue = _revenue_points(spark)
    points = leaf_points(summarise_leaves(embedded), vectors)
    assert points.revenue.tolist() == pytest.approx(revenue.tolist())
    free = fit_kmeans_to_points(points, k=3, seed=1)
    capped = fit_kmeans_to_points(points, k=3, seed=1, insiders_cap=0.3)
    assert _top_cluster_share(with_kmeans_clusters(embedded, free)) > 0.5
    assert _top_cluster_share(with_kmeans_clusters(embedded, capped)) <= 0.3
    assert capped.cost > free.cost and free.cap is None
    described = capped.describe()["insiders_cap"]
    assert described["binding"] and described["fits"] and described["optimum_top_share"] > 0.5
    assert described["cost_over_optimum"] == pytest.approx(capped.cost / free.cost - 1, abs=1e-6)


def test_a_cap_no_partition_meets_keeps_the_optimum_and_says_so():
    """The six points have one local optimum at k = 3; its top cluster by mean revenue (leaves 2
    and 3: 625 over 30 customers) holds 30% of the customers."""
    capped = fit_kmeans_to_points(_table(), k=3, seed=1, insiders_cap=0.2)
    assert capped.leaf_clusters == fit_kmeans_to_points(_table(), k=3, seed=1).leaf_clusters
    assert capped.describe()["insiders_cap"] == {
        "cap": 0.2, "optimum_top_share": 0.3, "binding": False, "fits": False, "cost_over_optimum": 0.0,
    }  # fmt: skip
    within = fit_kmeans_to_points(_table(), k=3, seed=1, insiders_cap=0.3).describe()["insiders_cap"]
    assert within["fits"] and not within["binding"]
    table = _table()
    without_revenue = EmbeddingPoints(leaves=table.leaves, vectors=table.vectors, customers=table.customers)
    with pytest.raises(ValueError, match="revenue"):
        fit_kmeans_to_points(without_revenue, k=3, seed=1, insiders_cap=0.3)
