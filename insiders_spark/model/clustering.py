"""KMeans on the leaf embedding, and the silhouette that measures it.

Customers in the same leaf share one embedding point, so KMeans works on the *distinct* points,
each weighted by the customers at it: the objective is exactly the customer-level one, and the
table is bounded by the tree (at most 2^max_depth rows), not by the number of customers.

The solver is KMeans on the driver over the bounded point table (:func:`weighted_kmeans`):
``N_INIT`` weighted k-means++ starts, each improved by single-point moves (Hartigan's rule) until no
move lowers the cost, all starts at once in numpy; the lowest cost wins. MLlib's own KMeans lands
in poorer local optima on these few, heavily weighted points (docs/method.md has the comparison).

``insiders_cap`` (a parameter, off by default) takes, of the partitions the starts end at
(:func:`local_optima`), the cheapest whose top cluster by mean revenue holds at most that share of
the customers. Customers get their cluster through their leaf (a broadcast join).
"""

from __future__ import annotations

from dataclasses import dataclass, replace

import numpy as np
from pyspark.sql import DataFrame
from pyspark.sql import functions as F
from pyspark.sql import types as T

from insiders_spark.core.errors import ClusteringError
from insiders_spark.core.names import LEAF
from insiders_spark.spark.literals import literal_frame

SOLVER = "local"  # as the model and the manifest name it
KMEANS_CLUSTER = "kmeans_cluster"  # KMeans' own cluster index, before ranking by revenue


@dataclass(frozen=True)
class EmbeddingPoints:
    """The distinct embedding points (one per occupied leaf), as driver-side arrays."""

    leaves: tuple[int, ...]
    vectors: np.ndarray  # one row per leaf
    customers: np.ndarray  # customers at each leaf
    revenue: np.ndarray | None = None  # their gross revenue (what ranks clusters; needed by the cap)


@dataclass(frozen=True)
class FittedKMeans:
    centers: np.ndarray  # k rows
    leaf_clusters: dict[int, int]  # leaf -> KMeans cluster index
    cost: float  # within-cluster sum of squared distances, over customers
    solver: str
    runs: int
    points: int
    cap: CapOutcome | None = None  # with insiders_cap

    def describe(self) -> dict:
        return {
            "solver": self.solver,
            "runs": self.runs,
            "points": self.points,
            "cost": round(self.cost, 6),
            **({"insiders_cap": self.cap.describe()} if self.cap is not None else {}),
        }


@dataclass(frozen=True)
class CapOutcome:
    """What ``insiders_cap`` did to one fit."""

    cap: float  # the largest share of customers the top cluster may hold
    optimum_top_share: float  # the top cluster's share in the cheapest partition
    binding: bool  # the optimum's top cluster was larger, so a costlier partition was taken
    fits: bool  # the partition taken has its top cluster within the cap
    cost_over_optimum: float  # the partition's cost / the optimum's - 1

    def describe(self) -> dict:
        return {
            "cap": self.cap,
            "optimum_top_share": round(self.optimum_top_share, 6),
            "binding": self.binding,
            "fits": self.fits,
            "cost_over_optimum": round(self.cost_over_optimum, 6),
        }


def nearest_center(vectors: np.ndarray, centers: np.ndarray) -> np.ndarray:
    distances = ((vectors[:, None, :] - centers[None, :, :]) ** 2).sum(axis=2)
    return distances.argmin(axis=1)


def weighted_cost(points: EmbeddingPoints, centers: np.ndarray) -> float:
    labels = nearest_center(points.vectors, centers)
    return float((points.customers * ((points.vectors - centers[labels]) ** 2).sum(axis=1)).sum())


N_INIT = 200  # starts; on the real log 200 found the best known cost in every fit (docs/method.md)
MOVES_PER_POINT = 100  # at most this many single-point moves per point and start


def fit_kmeans_to_points(
    points: EmbeddingPoints, *, k: int, seed: int, starts: int = N_INIT, insiders_cap: float = 0.0
) -> FittedKMeans:
    """KMeans with ``k`` clusters over the leaf points; the stability runs and the k selection fit
    many k on the same points through this call.

    ``insiders_cap`` > 0: of the partitions the starts end at, the cheapest whose top cluster holds
    at most that share of the customers (needs each point's revenue).
    """
    if len(points.leaves) < k:
        raise ClusteringError(
            f"the embedding has only {len(points.leaves)} distinct points (occupied tree leaves) for "
            f"k={k} clusters; lower --k or let the tree grow (embedding.max_depth, embedding.min_leaf_share)"
        )
    optima = local_optima(
        points.vectors, points.customers, k=k, starts=starts, seed=seed, max_moves=MOVES_PER_POINT * len(points.leaves)
    )
    cap = None
    if insiders_cap > 0:
        if points.revenue is None:
            raise ValueError("insiders_cap needs each point's revenue (a gross_revenue column)")
        labels, cap = capped_partition(optima, points.customers, points.revenue, k=k, cap=insiders_cap)
    else:
        labels, _ = optimum(optima)
    centers = cluster_centers(points.vectors, points.customers, labels, k)
    labels = nearest_center(points.vectors, centers)
    used = sorted(set(labels.tolist()))
    if len(used) < k:
        raise ClusteringError(f"KMeans left {k - len(used)} of {k} clusters empty; lower --k")
    return FittedKMeans(
        centers=centers,
        leaf_clusters={leaf: int(label) for leaf, label in zip(points.leaves, labels, strict=True)},
        cost=weighted_cost(points, centers),
        solver=SOLVER,
        runs=starts,
        points=len(points.leaves),
        cap=cap,
    )


def top_cluster_share(labels: np.ndarray, customers: np.ndarray, revenue: np.ndarray, k: int) -> float:
    """The share of customers in the cluster with the highest mean revenue (the Insiders-to-be;
    ties go to the lower label, as ``profiles.build_profiles`` ranks them)."""
    sizes = np.bincount(labels, weights=customers, minlength=k)
    totals = np.bincount(labels, weights=revenue, minlength=k)
    means = np.where(sizes > 0, totals / np.where(sizes > 0, sizes, 1.0), -np.inf)
    return float(sizes[int(np.argmax(means))] / customers.sum())


def capped_partition(
    optima: list[tuple[np.ndarray, float]], customers: np.ndarray, revenue: np.ndarray, *, k: int, cap: float
) -> tuple[np.ndarray, CapOutcome]:
    """Of ``optima`` (``local_optima``: cheapest first), the cheapest whose top cluster holds at
    most ``cap`` of the customers; the cheapest of all when none does."""
    best_labels, best_cost = optimum(optima)
    best_share = top_cluster_share(best_labels, customers, revenue, k)
    outcome = CapOutcome(
        cap=cap, optimum_top_share=best_share, binding=False, fits=best_share <= cap, cost_over_optimum=0.0
    )
    if outcome.fits:
        return best_labels, outcome
    for labels, cost in optima:
        if top_cluster_share(labels, customers, revenue, k) <= cap:
            over = cost / best_cost - 1 if best_cost > 0 else 0.0
            return labels, replace(outcome, binding=True, fits=True, cost_over_optimum=over)
    return best_labels, outcome


def weighted_kmeans(
    vectors: np.ndarray, weights: np.ndarray, *, k: int, starts: int, seed: int, max_moves: int = 10_000
) -> tuple[np.ndarray, float]:
    """The lowest-cost partition of a few weighted points into ``k`` non-empty clusters found from
    ``starts`` weighted k-means++ seedings, each improved by single-point moves until none lowers
    the cost (Hartigan's rule). Returns (labels, cost); labels are numbered by first appearance.

    A partition no single move improves is also one Lloyd's iterations leave as it is (not the
    reverse): a stricter local optimum, and on a few points nearly always the global one. All
    starts advance together as numpy arrays (starts × points × k): on ≤ 2^max_depth leaf points
    hundreds of starts take milliseconds. Among starts that end at the same lowest cost (to 1e-9),
    the partition with the smallest canonical labelling wins, so the answer does not depend on the
    seed once the optimum is found.
    """
    return optimum(local_optima(vectors, weights, k=k, starts=starts, seed=seed, max_moves=max_moves))


def optimum(optima: list[tuple[np.ndarray, float]]) -> tuple[np.ndarray, float]:
    """The lowest cost of ``local_optima``; among costs equal to 1e-9, the smallest canonical labelling."""
    lowest = optima[0][1]
    tied = [labels for labels, cost in optima if cost <= lowest * (1 + 1e-9) + 1e-12]
    return min(tied, key=lambda labels: labels.tolist()), lowest


def local_optima(
    vectors: np.ndarray, weights: np.ndarray, *, k: int, starts: int, seed: int, max_moves: int = 10_000
) -> list[tuple[np.ndarray, float]]:
    """Every distinct partition the starts of ``weighted_kmeans`` end at, as (canonical labels,
    cost), cheapest first. The alternatives to the optimum and what they cost (the stability
    studies look at them)."""
    x = np.asarray(vectors, dtype=np.float64)
    w = np.asarray(weights, dtype=np.float64)
    n = len(x)
    if not 1 <= k <= n:
        raise ClusteringError(f"cannot split {n} points into {k} non-empty clusters")
    rng = np.random.default_rng(seed)
    labels = _kmeans_plus_plus_labels(x, w, k=k, starts=max(1, starts), rng=rng)
    labels, costs = _single_point_moves(x, w, labels, k=k, max_moves=max_moves)
    cheapest: dict[tuple[int, ...], float] = {}
    for row, cost in zip(labels, costs.tolist(), strict=True):
        key = tuple(_canonical(row).tolist())
        cheapest[key] = min(cost, cheapest.get(key, np.inf))
    ranked = sorted(cheapest.items(), key=lambda item: (item[1], item[0]))
    return [(np.array(key, dtype=np.int64), float(cost)) for key, cost in ranked]


def cluster_centers(vectors: np.ndarray, weights: np.ndarray, labels: np.ndarray, k: int) -> np.ndarray:
    """The weighted mean of each cluster's points (every cluster non-empty)."""
    onehot = np.eye(k)[labels]
    return (onehot * weights[:, None]).T @ vectors / (onehot.T @ weights)[:, None]


def _canonical(labels: np.ndarray) -> np.ndarray:
    """Clusters renumbered in order of their first point, so equal partitions compare equal."""
    numbers: dict[int, int] = {}
    return np.array([numbers.setdefault(label, len(numbers)) for label in labels.tolist()], dtype=np.int64)


def _kmeans_plus_plus_labels(
    x: np.ndarray, w: np.ndarray, *, k: int, starts: int, rng: np.random.Generator
) -> np.ndarray:
    """Weighted k-means++ seeds for every start (a point with probability ∝ customers × squared
    distance to the nearest seed so far), each point labelled with its nearest seed: (starts, n)."""
    n = len(x)
    squared = ((x[:, None, :] - x[None, :, :]) ** 2).sum(axis=2)
    seeds = np.empty((starts, k), dtype=np.int64)
    seeds[:, 0] = rng.choice(n, size=starts, p=w / w.sum())
    nearest = squared[seeds[:, 0]]
    for j in range(1, k):
        mass = w[None, :] * nearest
        total = mass.sum(axis=1, keepdims=True)
        # every point already a seed (duplicates only): any point not yet chosen will do
        unchosen = np.ones((starts, n))
        np.put_along_axis(unchosen, seeds[:, :j], 0.0, axis=1)
        mass = np.where(total > 0, mass, unchosen)
        cumulative = mass.cumsum(axis=1)
        draw = rng.random(starts)[:, None] * cumulative[:, -1:]
        seeds[:, j] = np.minimum((cumulative <= draw).sum(axis=1), n - 1)
        nearest = np.minimum(nearest, squared[seeds[:, j]])
    return squared[seeds].argmin(axis=1)  # a seed is at distance 0 from itself: no cluster is empty


def _single_point_moves(
    x: np.ndarray, w: np.ndarray, labels: np.ndarray, *, k: int, max_moves: int
) -> tuple[np.ndarray, np.ndarray]:
    """Per start, the single move of one point to another cluster that lowers the cost most, until
    none does (or ``max_moves``). Moving a point of weight ``v`` from cluster A (weight W_A, squared
    distance d_A to its centre) to B changes the cost by v·W_B/(W_B+v)·d_B − v·W_A/(W_A−v)·d_A; a
    point alone in its cluster stays, so every cluster keeps a point. Returns (labels, costs)."""
    starts = len(labels)
    eye = np.eye(k)
    rows = np.arange(starts)
    labels = labels.copy()

    def state(labels: np.ndarray) -> tuple:
        onehot = eye[labels]  # (starts, n, k)
        mass = np.einsum("snk,n->sk", onehot, w)
        centers = np.einsum("snk,n,nd->skd", onehot, w, x) / mass[:, :, None]
        squared = np.maximum(  # (starts, n, k), without a (starts, n, k, dimensions) intermediate
            (x**2).sum(axis=1)[None, :, None]
            - 2 * np.einsum("nd,skd->snk", x, centers)
            + (centers**2).sum(axis=2)[:, None, :],
            0.0,
        )
        own = np.take_along_axis(squared, labels[:, :, None], axis=2)[:, :, 0]
        return mass, squared, own, (w[None, :] * own).sum(axis=1)

    for _ in range(max_moves):
        mass, squared, own, cost = state(labels)
        own_mass = np.take_along_axis(mass, labels, axis=1)
        rest = own_mass - w[None, :]
        alone = rest <= 0
        leaving = np.where(alone, -np.inf, w[None, :] * own_mass / np.where(alone, 1.0, rest) * own)
        joining = w[None, :, None] * mass[:, None, :] / (mass[:, None, :] + w[None, :, None]) * squared
        change = joining - leaving[:, :, None]
        np.put_along_axis(change, labels[:, :, None], np.inf, axis=2)
        flat = change.reshape(starts, -1)
        best = flat.argmin(axis=1)
        improves = flat[rows, best] < -1e-9 * (1.0 + cost)
        if not improves.any():
            return labels, cost
        point, cluster = np.divmod(best[improves], k)
        labels[np.flatnonzero(improves), point] = cluster
    return labels, state(labels)[3]


def with_kmeans_clusters(embedded: DataFrame, fitted: FittedKMeans) -> DataFrame:
    """Each customer's KMeans cluster, through its leaf."""
    schema = T.StructType(
        [T.StructField(LEAF, T.IntegerType(), False), T.StructField(KMEANS_CLUSTER, T.IntegerType(), False)]
    )
    mapping = literal_frame(embedded.sparkSession, fitted.leaf_clusters.items(), schema)
    return embedded.join(F.broadcast(mapping), on=LEAF, how="inner")
