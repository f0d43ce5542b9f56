"""The capture curve: the window revenue each ranking's first customers bring, at every head-count."""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence

from pyspark.sql import Column, DataFrame, SparkSession
from pyspark.sql import functions as F
from pyspark.sql import types as T

from insiders_spark.core.names import (
    CUSTOMER_ID,
    MODEL_SCORERS,
    REFERENCES,
)
from insiders_spark.evaluation.backtest.names import CURVE_SCHEMA, NEXT_REVENUE, POINT, RANK, RANK_KEY, SCORER
from insiders_spark.evaluation.backtest.result import BacktestResult, CurvePoint
from insiders_spark.spark.literals import literal_frame

log = logging.getLogger(__name__)


def head_counts(shares: Sequence[float], eligible: int) -> dict[float, int]:
    """Share -> customers, ``round(share × eligible)`` (at least one)."""
    return {share: max(1, round(share * eligible)) for share in shares}


def to_ranks(rankings: Mapping[str, DataFrame], outcomes: DataFrame) -> DataFrame:
    """(scorer, customer_id, rank, next_revenue) for every ranking, in one distributed sort.

    The rows are sorted by (scorer, rank key descending, customer_id) and indexed with
    ``zipWithIndex``; a scorer's ranks are its indices minus its first one (a k-row aggregate).
    """
    spark = outcomes.sparkSession
    stacked = None
    for name, ranking in rankings.items():
        frame = ranking.select(F.lit(name).alias(SCORER), CUSTOMER_ID, RANK_KEY)
        stacked = frame if stacked is None else stacked.unionByName(frame)
    if stacked is None:
        empty = T.StructType(
            [
                T.StructField(SCORER, T.StringType()),
                T.StructField(CUSTOMER_ID, T.LongType()),
                T.StructField(RANK, T.LongType()),
                T.StructField(NEXT_REVENUE, T.DoubleType()),
            ]
        )
        return literal_frame(spark, [], empty)
    indexed = stacked.orderBy(F.col(SCORER), F.col(RANK_KEY).desc(), F.col(CUSTOMER_ID)).zipWithIndex("position")
    first = indexed.groupBy(SCORER).agg(F.min("position").alias("first_position"))
    return (
        indexed.join(F.broadcast(first), on=SCORER, how="inner")
        .join(outcomes.select(CUSTOMER_ID, NEXT_REVENUE), on=CUSTOMER_ID, how="inner")
        .select(SCORER, CUSTOMER_ID, (F.col("position") - F.col("first_position")).alias(RANK), NEXT_REVENUE)
    )


def point_index(rank: Column, counts: Sequence[int]) -> Column:
    """Index of the first (ascending) head-count that includes a 0-based ``rank``; past the last, len."""
    bounds = sorted(set(counts))
    index = F.when(rank < bounds[0], F.lit(0))
    for i, bound in enumerate(bounds[1:], start=1):
        index = index.when(rank < bound, F.lit(i))
    return index.otherwise(F.lit(len(bounds)))


def capture_curve(ranks: DataFrame, *, counts: Mapping[float, int], window_revenue: float) -> tuple[CurvePoint, ...]:
    """Window revenue captured by each scorer's first ``n`` customers, for every head-count ``n``.

    One aggregation by (scorer, head-count bucket): at most scorers × head-counts rows reach the
    driver, where the buckets are summed cumulatively.
    """
    bounds = sorted(set(counts.values()))
    rows = (
        ranks.withColumn(POINT, point_index(F.col(RANK), bounds))
        .where(F.col(POINT) < len(bounds))
        .groupBy(SCORER, POINT)
        .agg(F.sum(NEXT_REVENUE).alias("revenue"))
        .collect()
    )
    by_scorer: dict[str, dict[int, float]] = {}
    for row in rows:
        by_scorer.setdefault(row[SCORER], {})[int(row[POINT])] = float(row["revenue"] or 0.0)
    points = []
    for scorer, buckets in by_scorer.items():
        cumulative, running = {}, 0.0
        for i, bound in enumerate(bounds):
            running += buckets.get(i, 0.0)
            cumulative[bound] = running
        for share, count in sorted(counts.items()):
            revenue = cumulative[count]
            points.append(
                CurvePoint(
                    scorer=scorer,
                    share=share,
                    head_count=count,
                    revenue=revenue,
                    revenue_share=revenue / window_revenue if window_revenue else 0.0,
                )
            )
    order = {name: i for i, name in enumerate((*REFERENCES, *MODEL_SCORERS))}
    return tuple(sorted(points, key=lambda p: (order.get(p.scorer, len(order)), p.share)))


def to_curve_frame(spark: SparkSession, result: BacktestResult) -> DataFrame:
    """The capture curve as the ``backtest`` output table (``CURVE_SCHEMA``)."""
    rows = []
    for p in result.curve:
        closed = None if p.scorer in REFERENCES else result.gap_closed(p.scorer, p.share)
        rows.append(
            (
                result.window.cutoff,
                result.window.horizon_days,
                p.scorer,
                float(p.share),
                int(p.head_count),
                float(p.revenue),
                float(p.revenue_share),
                None if closed is None else float(closed),
            )
        )
    return literal_frame(spark, rows, CURVE_SCHEMA)
