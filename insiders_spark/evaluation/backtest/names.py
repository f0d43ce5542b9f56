"""The backtest's column names, feature lists and output schema."""

from __future__ import annotations

import logging

from pyspark.sql import types as T

from insiders_spark.core.names import (
    FUTURE_REVENUE_TREE,
    FUTURE_REVENUE_TREE_TREND,
    GROSS_REVENUE,
    MODEL_INPUT_COLUMNS,
)

log = logging.getLogger(__name__)


TRAINING_CUTOFF = "the training cut-off"

NEXT_REVENUE = "next_revenue"  # revenue in the window after the cut-off
REVENUE_RECENT = "revenue_recent"  # revenue in the last h days up to a table's as-of date
REVENUE_PREVIOUS = "revenue_previous"  # revenue in the h days before those
REVENUE_DECAYED = "revenue_decayed"  # every purchase weighted by 2^(-age / h)
RETURNS_RATE = "returns_rate"
IS_GUEST_VALUE = "is_guest_value"  # is_guest as 0/1, for the tree
FUTURE_LABEL = "future_label"
FUTURE_FEATURES = "future_features"
FUTURE_PREDICTION = "future_prediction"

SCORER = "scorer"
RANK_KEY = "rank_key"  # array<double>, compared element by element, larger first
RANK = "rank"  # 0-based position in a scorer's order
POINT = "point"  # index of the first head-count point that includes the customer
HEAD_COUNT_SHARE = "head_count_share"

STUDY_FEATURES: tuple[str, ...] = (*MODEL_INPUT_COLUMNS, GROSS_REVENUE, IS_GUEST_VALUE)
TREND_FEATURES: tuple[str, ...] = (*STUDY_FEATURES, REVENUE_RECENT, REVENUE_PREVIOUS, REVENUE_DECAYED, RETURNS_RATE)
FUTURE_TREE_INPUTS: dict[str, tuple[str, ...]] = {
    FUTURE_REVENUE_TREE: STUDY_FEATURES,
    FUTURE_REVENUE_TREE_TREND: TREND_FEATURES,
}

# Every 1% of the eligible customers, for the chart; the report's table shows [backtest]'s.
CHART_SHARES: tuple[float, ...] = tuple(i / 100 for i in range(1, 101))
CURVE_SCHEMA = T.StructType(
    [
        T.StructField("cutoff", T.DateType(), False),
        T.StructField("horizon_days", T.IntegerType(), False),
        T.StructField(SCORER, T.StringType(), False),
        T.StructField(HEAD_COUNT_SHARE, T.DoubleType(), False),
        T.StructField("head_count", T.LongType(), False),
        T.StructField("revenue_captured", T.DoubleType(), False),
        T.StructField("revenue_share", T.DoubleType(), False),
        T.StructField("gap_closed", T.DoubleType(), True),  # null for the references
    ]
)
