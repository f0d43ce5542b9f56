"""Scoring with a persisted model: today's customers in its clusters, keeping its numbers and names."""

from __future__ import annotations

import dataclasses
import logging

from pyspark.sql import DataFrame

from insiders_spark.model.leaves import cluster_summaries, summarise_leaves
from insiders_spark.model.profiles import ClusterProfile
from insiders_spark.model.segmentation import SegmentationModel
from insiders_spark.model.store import load
from insiders_spark.runs.context import FittedRun, RunContext

log = logging.getLogger(__name__)


def rescore_profiles(model: SegmentationModel) -> list[ClusterProfile]:
    """Today's sizes and means for a persisted model's clusters (``model.leaf_sums``: the leaf table
    of the customers it scored today), keeping its numbers and names."""
    trained = model.profiles
    by_kmeans = {s["kmeans_cluster"]: s for s in cluster_summaries(model.leaf_sums, model.kmeans.leaf_clusters)}
    customers = sum(s["customers"] for s in by_kmeans.values())
    revenue = sum(s["revenue_total"] for s in by_kmeans.values())
    profiles = []
    for profile in trained:
        summary = by_kmeans.get(profile.kmeans_cluster)
        if summary is None:  # nobody in this cluster today
            profiles.append(
                dataclasses.replace(profile, customers=0, customer_share=0.0, revenue_total=0.0, revenue_share=0.0)
            )
            continue
        stats = {k: float(v) for k, v in summary.items() if k.endswith("_mean")}
        profiles.append(
            dataclasses.replace(
                profile,
                customers=int(summary["customers"]),
                customer_share=summary["customers"] / customers,
                revenue_total=float(summary["revenue_total"]),
                revenue_share=float(summary["revenue_total"]) / revenue if revenue else 0.0,
                **stats,
            )
        )
    return profiles


def score_for_run(ctx: RunContext, features: DataFrame, model_version: str | None) -> FittedRun:
    """Load the model to score with (``model_version``, else the current one) and place today's
    customers in its clusters (stage "load model")."""
    with ctx.timer.stage("load model"):
        model, description = load(ctx.spark, ctx.output, model_version)
        log.info("scoring with model %s (trained as of %s)", description["version"], description["trained_as_of"])
        clustered = ctx.table.hold(model.embed(features).cache())
        model = dataclasses.replace(model, leaf_sums=summarise_leaves(clustered))  # today's customers
        profiles = rescore_profiles(model)
    ctx.run_info.update(model_version=description["version"], model_trained_as_of=description["trained_as_of"])
    return FittedRun(model=model, clustered=clustered, profiles=profiles)
