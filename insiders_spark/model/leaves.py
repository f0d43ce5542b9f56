"""The leaf table: customers and the sum of every profiled feature at each leaf of the revenue tree.

A customer's embedding point and KMeans cluster are functions of its leaf, so everything the job
measures about clusters is a sum over leaves: KMeans' weighted points, each cluster's size,
revenue and feature means (its profile), each leaf's rule support, and the silhouette over every
customer (``quality.leaf_silhouette``). One small aggregation gives the table (at most
2^max_depth rows reach the driver); the rest is driver arithmetic on it, for any k. The job's fit,
its score runs and the stability runs all go through it.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping

import numpy as np
from pyspark.ml.linalg import Vector
from pyspark.sql import DataFrame
from pyspark.sql import functions as F
from pyspark.sql import types as T

from insiders_spark.core.names import GROSS_REVENUE, LEAF
from insiders_spark.model.clustering import EmbeddingPoints
from insiders_spark.model.profiles import PROFILED_FEATURES

CUSTOMERS = "customers"

# leaf -> customers and the sum of each profiled feature (None: a feature the log does not give)
LeafSums = Mapping[int, Mapping[str, float | None]]


def profiled_features(columns: Iterable[str]) -> tuple[str, ...]:
    """The profiled features among ``columns`` (a log without product ids has no qty_products)."""
    present = set(columns)
    return tuple(name for name in PROFILED_FEATURES if name in present)


def leaf_aggregates(columns: Iterable[str] = PROFILED_FEATURES) -> list:
    """The table's aggregates, for a ``groupBy`` that has the leaf among its keys: the customers and
    the sum of each profiled feature among ``columns``."""
    return [F.count(F.lit(1)).alias(CUSTOMERS), *[F.sum(name).alias(name) for name in profiled_features(columns)]]


def leaf_sums(rows: Iterable) -> dict[int, dict[str, float | None]]:
    """Rows holding ``leaf``, ``customers`` and the feature sums (several rows may share a leaf,
    e.g. one per reference leaf) merged into one entry per leaf; a feature the rows lack is None."""
    sums: dict[int, dict[str, float | None]] = {}
    for row in rows:
        fields = row.asDict()
        leaf = sums.setdefault(int(fields[LEAF]), {CUSTOMERS: 0.0, **dict.fromkeys(PROFILED_FEATURES, 0.0)})
        for name in (CUSTOMERS, *PROFILED_FEATURES):
            value = fields.get(name)
            leaf[name] = None if value is None or leaf[name] is None else leaf[name] + float(value)
    return sums


def summarise_leaves(embedded: DataFrame) -> dict[int, dict[str, float | None]]:
    """The leaf table of an embedded customer table (one aggregation, one row per occupied leaf)."""
    aggregates = leaf_aggregates(embedded.columns)
    rows = embedded.groupBy(F.col(LEAF).cast(T.IntegerType()).alias(LEAF)).agg(*aggregates).collect()
    return leaf_sums(rows)


def leaf_points(sums: LeafSums, vectors: Mapping[int, Vector]) -> EmbeddingPoints:
    """KMeans' input: each occupied leaf's point (``LeafEmbedding.leaf_vectors``), customers, revenue."""
    leaves = tuple(sorted(sums))
    return EmbeddingPoints(
        leaves=leaves,
        vectors=np.array([vectors[leaf].toArray() for leaf in leaves]),
        customers=np.array([float(sums[leaf][CUSTOMERS]) for leaf in leaves]),
        revenue=np.array([float(sums[leaf][GROSS_REVENUE]) for leaf in leaves]),
    )


def cluster_summaries(sums: LeafSums, leaf_clusters: Mapping[int, int]) -> list[dict]:
    """Per cluster label (``leaf_clusters``: leaf -> label): customers, revenue and feature means,
    as ``profiles.build_profiles`` takes them. Leaves without a label hold no customer of a cluster."""
    summaries = []
    for label in sorted({leaf_clusters[leaf] for leaf in sums}):
        members = [sums[leaf] for leaf in sorted(sums) if leaf_clusters[leaf] == label]
        customers = sum(s[CUSTOMERS] for s in members)
        summaries.append(
            {
                "kmeans_cluster": label,
                "customers": int(customers),
                "revenue_total": sum(s[GROSS_REVENUE] for s in members),
                **{f"{name}_mean": _mean([s[name] for s in members], customers) for name in PROFILED_FEATURES},
            }
        )
    return summaries


def _mean(sums: list[float | None], customers: float) -> float | None:
    return None if any(value is None for value in sums) else sum(sums) / customers
