"""The published segments: each customer's cluster, why, their Insider history, control flag and
how certain their Insider status is."""

from __future__ import annotations

import datetime as dt
import logging

from pyspark.sql import DataFrame
from pyspark.sql import functions as F

from insiders_spark.core.config import Config
from insiders_spark.core.names import IS_INSIDER, LEAF, SEGMENT, WAITING_LIST
from insiders_spark.core.schemas import SEGMENTS_SCHEMA
from insiders_spark.model.explain import with_top_contributions
from insiders_spark.model.forest import InsiderVotes, with_no_confidence
from insiders_spark.model.profiles import ClusterProfile
from insiders_spark.model.programme import InsiderRule
from insiders_spark.model.segmentation import SegmentationModel, to_segments
from insiders_spark.segments.continuity import with_insider_history
from insiders_spark.segments.control import with_control_flag
from insiders_spark.spark.frames import conform

log = logging.getLogger(__name__)


def waiting_list_name(insiders_name: str) -> str:
    return f"{insiders_name} ({WAITING_LIST})"


def with_programme(segments: DataFrame, insiders: InsiderRule | None, *, insiders_name: str) -> DataFrame:
    """``is_insider`` by the programme's rule (``model.programme``): when it cuts the top cluster,
    the customers of cluster 1 beyond the programme's size keep their cluster and become its
    waiting list (``is_insider`` false, segment "Insiders (waiting list)")."""
    if insiders is None:
        return segments
    admitted = insiders.contains(f"`{LEAF}`")
    waiting = F.col(IS_INSIDER) & ~admitted
    return segments.withColumns(
        {
            SEGMENT: F.when(waiting, F.lit(waiting_list_name(insiders_name))).otherwise(F.col(SEGMENT)),
            IS_INSIDER: F.col(IS_INSIDER) & admitted,
        }
    )


def to_published_segments(
    clustered: DataFrame,
    model: SegmentationModel,
    profiles: list[ClusterProfile],
    previous: DataFrame | None,
    *,
    run_date: dt.date,
    config: Config,
    insiders: InsiderRule | None = None,
    votes: InsiderVotes | None = None,
) -> DataFrame:
    """The segments table (``SEGMENTS_SCHEMA``): assignment within the programme's size
    (``insiders``; None: cluster 1), reasons, Insider history, control flag and
    ``insider_confidence`` (from the bootstrap refits' ``votes``; null without them)."""
    return (
        to_segments(clustered, profiles)
        .transform(with_programme, insiders, insiders_name=config.segments.insiders_name)
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
        .transform(votes.with_confidence if votes is not None else with_no_confidence)
        .transform(conform, SEGMENTS_SCHEMA)
    )
