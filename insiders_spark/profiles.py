"""Cluster profiles, the revenue ranking that makes cluster 1 the Insiders, and segment names.

Only k rows (one per cluster) reach the driver. Ranking and naming are plain Python on those rows,
so the rules are easy to read and to test.

Naming rule (from what a cluster *is*, never from its id):

* rank 1 by mean gross revenue -> ``Insiders``;
* otherwise, with the population's customer-weighted means as the yardstick
  (value = mean gross revenue, recency = mean days since last purchase):

  ===================  ==========================  =========================
  value vs population  recency vs population       name
  ===================  ==========================  =========================
  at or above          at or below (recent)        Loyal
  at or above          above (lapsing)             At risk
  below                at or below, ≥ 2 invoices   Promising
  below                at or below, < 2 invoices   New
  below                above, up to twice          Hibernating
  below                more than twice             Lost
  ===================  ==========================  =========================

* clusters that get the same name are told apart by revenue rank: ``Hibernating``,
  ``Hibernating (2)``, ...
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Sequence
from dataclasses import asdict, dataclass

from pyspark.sql import DataFrame, SparkSession
from pyspark.sql import functions as F
from pyspark.sql import types as T

from insiders_spark.schemas import (
    AVG_TICKET,
    CLUSTER,
    FREQUENCY,
    GROSS_REVENUE,
    IS_INSIDER,
    QTY_INVOICES,
    QTY_ITEMS,
    QTY_PRODUCTS,
    QTY_RETURNS,
    RECENCY_DAYS,
    SEGMENT,
)

PROFILED_FEATURES: tuple[str, ...] = (
    GROSS_REVENUE,
    RECENCY_DAYS,
    QTY_INVOICES,
    QTY_ITEMS,
    QTY_PRODUCTS,
    FREQUENCY,
    QTY_RETURNS,
    AVG_TICKET,
)

PROFILE_SCHEMA = T.StructType(
    [
        T.StructField(CLUSTER, T.IntegerType(), False),
        T.StructField(SEGMENT, T.StringType(), False),
        T.StructField(IS_INSIDER, T.BooleanType(), False),
        T.StructField("customers", T.LongType(), False),
        T.StructField("customer_share", T.DoubleType(), False),
        T.StructField("revenue_total", T.DoubleType(), False),
        T.StructField("revenue_share", T.DoubleType(), False),
        *[T.StructField(f"{name}_mean", T.DoubleType(), False) for name in PROFILED_FEATURES],
        T.StructField("kmeans_cluster", T.IntegerType(), False),
    ]
)


@dataclass(frozen=True)
class ClusterProfile:
    cluster: int
    segment: str
    is_insider: bool
    customers: int
    customer_share: float
    revenue_total: float
    revenue_share: float
    gross_revenue_mean: float
    recency_days_mean: float
    qty_invoices_mean: float
    qty_items_mean: float
    qty_products_mean: float
    frequency_mean: float
    qty_returns_mean: float
    avg_ticket_mean: float
    kmeans_cluster: int


def summarise_clusters(scored: DataFrame, *, cluster_col: str) -> list[dict]:
    """Per KMeans cluster: size, revenue and the mean of every feature (k rows to the driver)."""
    rows = (
        scored.groupBy(cluster_col)
        .agg(
            F.count(F.lit(1)).alias("customers"),
            F.sum(GROSS_REVENUE).alias("revenue_total"),
            *[F.avg(name).alias(f"{name}_mean") for name in PROFILED_FEATURES],
        )
        .collect()
    )
    return [{**row.asDict(), "kmeans_cluster": int(row[cluster_col])} for row in rows]


def segment_base_name(profile: dict, population: dict) -> str:
    """The name a cluster's profile earns against the population (see the module docstring)."""
    valuable = profile["gross_revenue_mean"] >= population["gross_revenue_mean"]
    recency, typical = profile["recency_days_mean"], population["recency_days_mean"]
    if valuable:
        return "Loyal" if recency <= typical else "At risk"
    if recency <= typical:
        return "Promising" if profile["qty_invoices_mean"] >= 2 else "New"
    return "Hibernating" if recency <= 2 * typical else "Lost"


def build_profiles(summaries: Sequence[dict], *, insiders_name: str = "Insiders") -> list[ClusterProfile]:
    """Rank clusters by mean gross revenue (1 = highest), name them, add shares."""
    if not summaries:
        raise ValueError("no clusters to profile")
    ordered = sorted(summaries, key=lambda s: (-s["gross_revenue_mean"], s["kmeans_cluster"]))
    customers = sum(s["customers"] for s in ordered)
    revenue = sum(s["revenue_total"] for s in ordered)
    population = {
        name: sum(s[name] * s["customers"] for s in ordered) / customers
        for name in ("gross_revenue_mean", "recency_days_mean")
    }
    seen: Counter[str] = Counter()
    profiles = []
    for rank, summary in enumerate(ordered, start=1):
        base = insiders_name if rank == 1 else segment_base_name(summary, population)
        seen[base] += 1
        name = base if seen[base] == 1 else f"{base} ({seen[base]})"
        profiles.append(
            ClusterProfile(
                cluster=rank,
                segment=name,
                is_insider=rank == 1,
                customers=int(summary["customers"]),
                customer_share=summary["customers"] / customers,
                revenue_total=float(summary["revenue_total"]),
                revenue_share=float(summary["revenue_total"]) / revenue if revenue else 0.0,
                **{f"{n}_mean": float(summary[f"{n}_mean"]) for n in PROFILED_FEATURES},
                kmeans_cluster=int(summary["kmeans_cluster"]),
            )
        )
    return profiles


def to_profiles_frame(spark: SparkSession, profiles: Sequence[ClusterProfile]) -> DataFrame:
    return spark.createDataFrame([tuple(asdict(p).values()) for p in profiles], PROFILE_SCHEMA)


def with_clusters(scored: DataFrame, profiles: Sequence[ClusterProfile], *, cluster_col: str) -> DataFrame:
    """Replace KMeans' cluster index by the revenue rank, and add the segment and Insider flag."""
    spark = scored.sparkSession
    schema = T.StructType(
        [
            T.StructField(cluster_col, T.IntegerType(), False),
            T.StructField(CLUSTER, T.IntegerType(), False),
            T.StructField(SEGMENT, T.StringType(), False),
            T.StructField(IS_INSIDER, T.BooleanType(), False),
        ]
    )
    mapping = spark.createDataFrame(
        [(p.kmeans_cluster, p.cluster, p.segment, p.is_insider) for p in profiles], schema
    )
    return scored.join(F.broadcast(mapping), on=cluster_col, how="inner").drop(cluster_col)
