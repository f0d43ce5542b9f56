"""From one model to the next: match a retrained model's clusters to the previous model's."""

from __future__ import annotations

import dataclasses
import datetime as dt
import json
import logging

from pyspark.sql import DataFrame, SparkSession

from insiders_spark.core.config import Config
from insiders_spark.core.names import MANIFEST_FILE, RUNS, SCORE
from insiders_spark.core.schemas import CUSTOMER_FEATURES_SCHEMA
from insiders_spark.model.profiles import carry_over_identity
from insiders_spark.model.segmentation import SegmentationModel, to_segments
from insiders_spark.model.store import load
from insiders_spark.segments.continuity import match_clusters
from insiders_spark.storage import filesystem
from insiders_spark.storage.outputs import partition_path

log = logging.getLogger(__name__)


def match_previous_model(
    spark: SparkSession,
    output: str,
    previous_version: str,
    model: SegmentationModel,
    clustered: DataFrame,
    config: Config,
) -> tuple[SegmentationModel, dict]:
    """Match the new clusters to the previous model's, both scoring today's customers, and give each
    matched cluster the previous one's number and name (``profiles.carry_over_identity``).

    Returns the model with its clusters so numbered and the manifest's ``lineage``. Lineage only
    informs: a previous model that cannot be read is a warning, and the new model keeps its own
    numbers.
    """
    try:
        previous_model, _ = load(spark, output, previous_version)
        features = clustered.select(*[f.name for f in CUSTOMER_FEATURES_SCHEMA.fields])
        matches = match_clusters(
            to_segments(clustered, model.profiles),
            previous_model.transform(features),
            min_jaccard=config.refresh.match_min_jaccard,
        )
    except Exception as error:
        log.warning("cannot compare with the previous model %s: %s", previous_version, error)
        return model, {"previous_model_version": previous_version, "matches": [], "error": str(error)}
    carried = {m.cluster: (m.previous_cluster, m.previous_segment) for m in matches if m.previous_cluster is not None}
    relabelled = carry_over_identity(model.profiles, carried)
    now = {p.kmeans_cluster: p for p in relabelled}
    by_number = {p.cluster: now[p.kmeans_cluster] for p in model.profiles}
    records = []
    for match in matches:
        profile = by_number[match.cluster]
        record = dataclasses.replace(
            match, cluster=profile.cluster, segment=profile.segment, revenue_rank=match.cluster
        )
        if record.previous_cluster is None:
            log.warning(
                "cluster %d (%s) matches no cluster of model %s", record.cluster, record.segment, previous_version
            )
        elif (record.previous_cluster, record.previous_segment) != (record.cluster, record.segment):
            log.warning(
                "cluster %d (%s) is cluster %d (%s) of model %s (Jaccard %.2f) but could not keep its number and "
                "name (cluster 1 is always the highest revenue)",
                record.cluster,
                record.segment,
                record.previous_cluster,
                record.previous_segment,
                previous_version,
                record.jaccard,
            )
        records.append(record)
    succeeded = {m.previous_cluster for m in matches if m.previous_cluster is not None}
    ended = [
        {"previous_cluster": p.cluster, "previous_segment": p.segment}
        for p in previous_model.profiles
        if p.cluster not in succeeded
    ]
    for gone in ended:
        log.warning(
            "cluster %d (%s) of model %s has no successor in the new model",
            gone["previous_cluster"],
            gone["previous_segment"],
            previous_version,
        )
    lineage = {
        "previous_model_version": previous_version,
        "matches": [r.to_dict() for r in sorted(records, key=lambda r: r.cluster)],
        "previous_clusters_without_successor": ended,
    }
    return dataclasses.replace(model, profiles=relabelled), lineage


def previous_segments_info(spark: SparkSession, output: str, previous_date: dt.date, mode: str, run_info: dict) -> dict:
    """Which model assigned the segments churn is counted against. A score run with another model
    than theirs (a rollback, ``--model-version``) compares cluster numbers of two models that no
    lineage paired: said in the manifest and the log."""
    manifest = f"{partition_path(output, RUNS, previous_date.isoformat())}/{MANIFEST_FILE}"
    version = (
        json.loads(filesystem.read_text(spark, manifest)).get("model_version")
        if filesystem.exists(spark, manifest)
        else None
    )
    if mode == SCORE and version is not None and version != run_info["model_version"]:
        log.warning(
            "the segments of %s were assigned by model %s, today's by model %s: churn compares the cluster "
            "numbers of two models that no training run paired",
            previous_date,
            version,
            run_info["model_version"],
        )
    return {"run_date": previous_date.isoformat(), "model_version": version}
