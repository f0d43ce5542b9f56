"""From one run to the next: Insiders churn with optional hysteresis, and cluster identity.

Churn compares a run with the previous published run date: who entered the Insiders, who left, who
stayed, and since when each Insider has been one. With ``hysteresis_runs = N`` an Insider leaves
only after N consecutive runs outside cluster 1 (N = 1: leave at once, so ``is_insider`` is exactly
``cluster == 1`` within the programme's size: ``model.programme``).

Cluster identity across retrains: the new model's clusters are matched to the previous model's by
scoring the *same* current customers with both models and pairing clusters by the Jaccard index
of their customer sets (Hungarian assignment on the k x k contingency table, counted in Spark).
A new model numbers its clusters by revenue rank and names them from their profiles; a cluster
matched above ``refresh.match_min_jaccard`` then takes the previous cluster's number and name
(``profiles.carry_over_identity``; cluster 1 stays the highest revenue), so a small shift in the
clusters' means does not swap two groups' numbers or names under the tables that use them.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass

import numpy as np
from pyspark.sql import Column, DataFrame, SparkSession
from pyspark.sql import functions as F
from pyspark.sql import types as T
from scipy.optimize import linear_sum_assignment

from insiders_spark.core.names import (
    CLUSTER,
    CUSTOMER_ID,
    INSIDER_SINCE,
    IS_INSIDER,
    RUNS_OUTSIDE_INSIDERS,
    SEGMENT,
)
from insiders_spark.core.schemas import SEGMENTS_SCHEMA
from insiders_spark.spark.literals import literal_frame
from insiders_spark.storage.outputs import latest_published_date

PREVIOUS = "previous_"
_ADMITTED = "_admitted"


@dataclass(frozen=True)
class ChurnCounts:
    previous_run_date: str | None
    insiders: int
    entered: int
    left: int
    stayed: int
    in_grace: int  # Insiders kept only by the hysteresis (outside cluster 1 this run)

    def to_dict(self) -> dict:
        return dict(self.__dict__)


def previous_run_date(spark: SparkSession, output: str, table: str, run_date: dt.date) -> dt.date | None:
    """The latest published run date before ``run_date`` that has ``table`` (a partition folder, or a
    date's pointer on an object store: ``storage.outputs``)."""
    found = latest_published_date(spark, output, table, run_date.isoformat())
    return dt.date.fromisoformat(found) if found else None


def is_in_insiders_cluster(cluster: Column) -> Column:
    return cluster == 1


def with_insider_history(
    segments: DataFrame, previous: DataFrame | None, *, run_date: dt.date, hysteresis_runs: int
) -> DataFrame:
    """Add ``is_insider`` (with hysteresis), ``insider_since`` and ``runs_outside_insiders``.

    ``previous`` is the previous run's segments (customer_id, is_insider, insider_since,
    runs_outside_insiders), or None for a first run.
    """
    # admitted this run: the assignment's flag (cluster 1 within the programme's size), else cluster 1
    admitted = F.col(IS_INSIDER) if IS_INSIDER in segments.columns else is_in_insiders_cluster(F.col(CLUSTER))
    base = segments.withColumn(_ADMITTED, admitted).drop(IS_INSIDER, INSIDER_SINCE, RUNS_OUTSIDE_INSIDERS)
    if previous is None:
        history = T.StructType(
            [SEGMENTS_SCHEMA[name] for name in (CUSTOMER_ID, IS_INSIDER, INSIDER_SINCE, RUNS_OUTSIDE_INSIDERS)]
        )
        previous = literal_frame(segments.sparkSession, [], history)

    def earlier(name: str) -> Column:  # a partition written before the history columns existed has nulls
        column = F.col(name) if name in previous.columns else F.lit(None).cast(SEGMENTS_SCHEMA[name].dataType)
        return column.alias(f"{PREVIOUS}{name}")

    prior = previous.select(
        F.col(CUSTOMER_ID), earlier(IS_INSIDER), earlier(INSIDER_SINCE), earlier(RUNS_OUTSIDE_INSIDERS)
    )
    in_cluster = F.col(_ADMITTED)
    was_insider = F.coalesce(F.col(f"{PREVIOUS}{IS_INSIDER}"), F.lit(False))
    outside = F.when(in_cluster, F.lit(0)).otherwise(
        F.coalesce(F.col(f"{PREVIOUS}{RUNS_OUTSIDE_INSIDERS}"), F.lit(0)) + 1
    )
    is_insider = in_cluster | (was_insider & (outside < F.lit(hysteresis_runs)))
    since = F.when(
        is_insider,
        F.when(was_insider, F.col(f"{PREVIOUS}{INSIDER_SINCE}")).otherwise(F.lit(run_date).cast(T.DateType())),
    )
    return (
        base.join(prior, on=CUSTOMER_ID, how="left")
        .withColumn(IS_INSIDER, is_insider)
        .withColumn(INSIDER_SINCE, since)
        .withColumn(RUNS_OUTSIDE_INSIDERS, F.when(is_insider, outside.cast(T.IntegerType())))
        .drop(_ADMITTED, *[c for c in prior.columns if c != CUSTOMER_ID])
    )


def churn_counts(current: DataFrame, previous: DataFrame | None, previous_date: dt.date | None) -> ChurnCounts:
    """Entered / left / stayed, over the union of both runs' customers (one small aggregation)."""
    # in grace: an Insider by the hysteresis only (outside cluster 1, or on its waiting list, this run)
    grace = (
        F.coalesce(F.col(RUNS_OUTSIDE_INSIDERS), F.lit(0)) > 0
        if RUNS_OUTSIDE_INSIDERS in current.columns
        else F.col(CLUSTER) != 1
    )
    now = current.select(CUSTOMER_ID, F.col(IS_INSIDER).alias("now"), grace.alias("grace_now"))
    if previous is None:
        row = now.agg(
            F.count_if(F.col("now")).alias("insiders"),
            F.count_if(F.col("now") & F.col("grace_now")).alias("in_grace"),
        ).first()
        return ChurnCounts(None, row.insiders, row.insiders, 0, 0, row.in_grace)
    before = previous.select(CUSTOMER_ID, F.col(IS_INSIDER).alias("before"))
    now_flag = F.coalesce(F.col("now"), F.lit(False))
    before_flag = F.coalesce(F.col("before"), F.lit(False))
    row = (
        now.join(before, on=CUSTOMER_ID, how="full_outer")
        .agg(
            F.count_if(now_flag).alias("insiders"),
            F.count_if(now_flag & ~before_flag).alias("entered"),
            F.count_if(before_flag & ~now_flag).alias("left"),
            F.count_if(before_flag & now_flag).alias("stayed"),
            F.count_if(now_flag & F.col("grace_now")).alias("in_grace"),
        )
        .first()
    )
    return ChurnCounts(
        previous_date.isoformat() if previous_date else None,
        row.insiders,
        row.entered,
        row.left,
        row.stayed,
        row.in_grace,
    )


@dataclass(frozen=True)
class ClusterMatch:
    cluster: int
    segment: str
    previous_cluster: int | None
    previous_segment: str | None
    jaccard: float
    # the cluster's rank by mean revenue in its own model: its number before a retrain's carry-over
    # (pipeline._lineage) gave it the previous cluster's; None before that step
    revenue_rank: int | None = None

    def to_dict(self) -> dict:
        return dict(self.__dict__)


def match_clusters(current: DataFrame, previous: DataFrame, *, min_jaccard: float = 0.5) -> list[ClusterMatch]:
    """Pair each current cluster with the previous model's cluster holding most of the same customers.

    Both frames have ``customer_id, cluster, segment`` for the same customers; only the k x k
    contingency counts reach the driver.
    """
    pairs = (
        current.select(CUSTOMER_ID, F.col(CLUSTER).alias("now"), F.col(SEGMENT).alias("now_segment"))
        .join(
            previous.select(CUSTOMER_ID, F.col(CLUSTER).alias("before"), F.col(SEGMENT).alias("before_segment")),
            on=CUSTOMER_ID,
            how="inner",
        )
        .groupBy("now", "now_segment", "before", "before_segment")
        .count()
        .collect()
    )
    now_ids = sorted({r.now for r in pairs})
    before_ids = sorted({r.before for r in pairs})
    names_now = {r.now: r.now_segment for r in pairs}
    names_before = {r.before: r.before_segment for r in pairs}
    counts = np.zeros((len(now_ids), len(before_ids)))
    for r in pairs:
        counts[now_ids.index(r.now), before_ids.index(r.before)] = r["count"]
    sizes_now, sizes_before = counts.sum(axis=1), counts.sum(axis=0)
    jaccard = counts / (sizes_now[:, None] + sizes_before[None, :] - counts)
    rows, cols = linear_sum_assignment(-jaccard)
    matched = {now_ids[r]: (before_ids[c], float(jaccard[r, c])) for r, c in zip(rows, cols, strict=True)}
    result = []
    for cluster in now_ids:
        before, score = matched.get(cluster, (None, 0.0))
        if before is not None and score < min_jaccard:
            before = None
        result.append(
            ClusterMatch(
                cluster=cluster,
                segment=names_now[cluster],
                previous_cluster=before,
                previous_segment=names_before.get(before) if before is not None else None,
                jaccard=round(score, 4),
            )
        )
    return result
