"""The rankings: each orders the eligible customers by a rank key (compared field by field, larger first)."""

from __future__ import annotations

import logging
from collections.abc import Sequence

from pyspark.ml import Pipeline, PipelineModel
from pyspark.ml.feature import VectorAssembler
from pyspark.sql import Column, DataFrame
from pyspark.sql import functions as F
from pyspark.sql import types as T

from insiders_spark.core.config import EmbeddingConfig
from insiders_spark.core.names import (
    BASELINE,
    BASELINE_REGISTERED,
    CLUSTER,
    CUSTOMER_ID,
    FORESIGHT,
    GROSS_REVENUE,
    IS_GUEST,
)
from insiders_spark.evaluation.backtest.names import (
    FUTURE_FEATURES,
    FUTURE_LABEL,
    FUTURE_PREDICTION,
    NEXT_REVENUE,
    RANK_KEY,
)
from insiders_spark.evaluation.clv import EXPECTED_REVENUE
from insiders_spark.model.embedding import PREDICTED_LABEL, tree_regressor

log = logging.getLogger(__name__)


def rank_key(*values: Column) -> Column:
    return F.array(*[v.cast(T.DoubleType()) for v in values])


def registered_first(guests_last: bool) -> list[Column]:
    return [F.when(F.col(IS_GUEST), F.lit(0.0)).otherwise(F.lit(1.0))] if guests_last else []


def reference_rankings(eligible: DataFrame) -> dict[str, DataFrame]:
    """The baseline, its registered-first variant and perfect foresight."""
    past, future = F.col(GROSS_REVENUE), F.col(NEXT_REVENUE)
    return {
        BASELINE: eligible.select(CUSTOMER_ID, rank_key(past).alias(RANK_KEY)),
        FORESIGHT: eligible.select(CUSTOMER_ID, rank_key(future, past).alias(RANK_KEY)),
        BASELINE_REGISTERED: eligible.select(CUSTOMER_ID, rank_key(*registered_first(True), past).alias(RANK_KEY)),
    }


def segments_ranking(segmented: DataFrame, *, guests_last: bool) -> DataFrame:
    """Cluster rank (1 first), then the tree's predicted value, then past revenue."""
    return segmented.select(
        CUSTOMER_ID,
        rank_key(*registered_first(guests_last), -F.col(CLUSTER), F.col(PREDICTED_LABEL), F.col(GROSS_REVENUE)).alias(
            RANK_KEY
        ),
    )


def fit_future_revenue_tree(
    training: DataFrame, *, feature_columns: Sequence[str], config: EmbeddingConfig, seed: int, customers: int
) -> PipelineModel:
    """A regression tree from features at an earlier cut-off to the revenue that followed it
    (``FUTURE_LABEL``, raw revenue: a leaf predicts its customers' mean future revenue)."""
    assembler = VectorAssembler(inputCols=list(feature_columns), outputCol=FUTURE_FEATURES)
    regressor = tree_regressor(
        config,
        seed=seed,
        customers=customers,
        features_col=FUTURE_FEATURES,
        label_col=FUTURE_LABEL,
        prediction_col=FUTURE_PREDICTION,
    )
    return Pipeline(stages=[assembler, regressor]).fit(training)


def future_tree_ranking(model: PipelineModel, eligible: DataFrame, *, guests_last: bool) -> DataFrame:
    return model.transform(eligible).select(
        CUSTOMER_ID,
        rank_key(*registered_first(guests_last), F.col(FUTURE_PREDICTION), F.col(GROSS_REVENUE)).alias(RANK_KEY),
    )


def clv_ranking(eligible: DataFrame, scored: DataFrame, *, guests_last: bool) -> DataFrame:
    """The expected revenue of the horizon (``with_clv``'s), then past revenue. With ``guests_last``
    guests rank after registered customers like the models' (BG/NBD cannot know that a guest is
    never seen again; the job does, and the reference should be as strong as it can be)."""
    value = F.coalesce(F.col(EXPECTED_REVENUE), F.lit(0.0))  # every eligible customer has a summary row
    return eligible.join(scored.select(CUSTOMER_ID, EXPECTED_REVENUE), on=CUSTOMER_ID, how="left").select(
        CUSTOMER_ID, rank_key(*registered_first(guests_last), value, F.col(GROSS_REVENUE)).alias(RANK_KEY)
    )
