"""The published segments: each customer's cluster, why, their Insider history and control flag."""

from __future__ import annotations

import datetime as dt
import logging

from pyspark.sql import DataFrame

from insiders_spark.core.config import Config
from insiders_spark.core.schemas import SEGMENTS_SCHEMA
from insiders_spark.model.explain import with_top_contributions
from insiders_spark.model.profiles import ClusterProfile
from insiders_spark.model.segmentation import SegmentationModel, to_segments
from insiders_spark.segments.continuity import with_insider_history
from insiders_spark.segments.control import with_control_flag
from insiders_spark.spark.frames import conform

log = logging.getLogger(__name__)


def to_published_segments(
    clustered: DataFrame,
    model: SegmentationModel,
    profiles: list[ClusterProfile],
    previous: DataFrame | None,
    *,
    run_date: dt.date,
    config: Config,
) -> DataFrame:
    """The segments table (``SEGMENTS_SCHEMA``): assignment, reasons, Insider history, control flag."""
    return (
        to_segments(clustered, profiles)
        .transform(
            with_top_contributions,
            model.embedding.tree,
            top=config.segments.top_features,
            feature_names=model.embedding.inputs,
        )
        .transform(
            with_insider_history,
            previous,
            run_date=run_date,
            hysteresis_runs=config.refresh.insider_hysteresis_runs,
        )
        .transform(
            with_control_flag,
            salt=config.control.salt,
            share=config.control.share,
            scope=config.control.scope,
        )
        .transform(conform, SEGMENTS_SCHEMA)
    )
