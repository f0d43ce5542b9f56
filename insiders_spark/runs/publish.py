"""A run's steps, in order, from the customer table to the commit of everything it staged."""

from __future__ import annotations

import datetime as dt
import json
import logging
import time
from dataclasses import dataclass, field

from insiders_spark.core.names import MANIFEST_FILE, METRICS_FILE, RUNS, SCORE
from insiders_spark.model.profiles import ClusterProfile
from insiders_spark.model.store import current_version
from insiders_spark.runs.backtest_stage import stage_backtest
from insiders_spark.runs.context import RunContext
from insiders_spark.runs.manifest import provenance, run_metrics
from insiders_spark.runs.report_stage import stage_report
from insiders_spark.runs.score import score_for_run
from insiders_spark.runs.steps import (
    check_run_date,
    measure_quality,
    size_the_programme,
    stage_profiles_and_rules,
    stage_quarantine,
    stage_segments,
)
from insiders_spark.runs.tracking import track_training
from insiders_spark.runs.train import train_for_run
from insiders_spark.storage.catalog import register_partitions

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class RunResult:
    run_date: dt.date
    as_of: dt.date
    profiles: list[ClusterProfile]
    metrics: dict
    outputs: dict[str, str] = field(default_factory=dict)


def publish(ctx: RunContext, *, model_version: str | None) -> RunResult:
    """Every step of a run after the read, each staging its outputs; then the commit."""
    ctx.run_info.update(run_id=ctx.outputs.run_id, mode=ctx.mode)
    check_run_date(ctx)
    stage_quarantine(ctx)
    features = ctx.table.hold(ctx.table.features().cache())
    previous_version = current_version(ctx.spark, ctx.output)
    if ctx.mode == SCORE:
        fitted = score_for_run(ctx, features, model_version)
    else:
        fitted = train_for_run(ctx, features, previous_version)
    ctx.run_info["previous_model_version"] = previous_version
    fitted = size_the_programme(ctx, fitted)
    rules = stage_profiles_and_rules(ctx, fitted)
    silhouette, check, verdict = measure_quality(ctx, fitted)
    confidence = stage_segments(ctx, fitted)
    backtest, backtest_error = stage_backtest(ctx, k=fitted.model.k)

    model = fitted.model
    metrics = run_metrics(
        ctx.spark,
        ctx.config,
        run_date=ctx.run_date,
        table=ctx.table,
        profiles=fitted.profiles,
        embedding=model.embedding.describe(),
        kmeans=model.kmeans.describe(),
        silhouette_score=silhouette,
    )
    metrics["quality"] = {
        **verdict,
        "silhouette": check.to_dict(),
        "stability": fitted.stability.to_dict() if fitted.stability else None,
    }
    metrics["programme"] = fitted.programme.describe()
    metrics["insiders"].update(
        cluster_customers=metrics["insiders"]["customers"],
        **fitted.programme.insiders.describe(),
        confidence=confidence.describe() if confidence is not None else None,
    )
    if fitted.selection is not None:
        metrics["k_selection"] = fitted.selection.to_dict()
    if backtest is not None:
        metrics["backtest"] = {"measured": True, **backtest.describe()}
    elif backtest_error is not None:
        metrics["backtest"] = {"measured": False, "error": backtest_error}
    stage_report(
        ctx,
        fitted,
        metrics,
        check=check,
        rules=rules,
        backtest=backtest,
        backtest_error=backtest_error,
        confidence=confidence,
    )
    result = commit(ctx, fitted.profiles, metrics)
    if ctx.mode != SCORE:  # after the commit: tracking reports on published outputs, and never fails the run
        track_training(ctx.spark, ctx.config, model, result.metrics, result.outputs)
    return result


def commit(ctx: RunContext, profiles: list[ClusterProfile], metrics: dict) -> RunResult:
    """Wait for the background stages, write the metrics and the manifest, and publish it all."""
    outputs, published = ctx.outputs, ctx.published
    ctx.background.wait()  # the quarantine, the model and the small tables are staged (or the run fails here)
    published[RUNS] = outputs.live(f"{outputs.partition(RUNS)}/{MANIFEST_FILE}")
    metrics.update(ctx.run_info)
    metrics["durations_s"] = dict(ctx.timer.durations)
    metrics["total_s"] = round(time.perf_counter() - ctx.started, 3)
    metrics["outputs"] = dict(published)
    outputs.write_file(RUNS, METRICS_FILE, json.dumps(metrics, indent=2) + "\n")
    manifest = {**metrics, **provenance(ctx.config, ctx.table)}
    outputs.write_file(RUNS, MANIFEST_FILE, json.dumps(manifest, indent=2) + "\n")
    outputs.commit(last=RUNS)
    database = ctx.config.output.catalog_database
    if database:  # after the commit: a failure here fails the run, and the published files stay whole
        register_partitions(
            ctx.spark, database, ctx.output, outputs.run_date, outputs.published_partitions(), outputs.layout
        )
    for name, path in published.items():
        log.info("published %s: %s", name, path)
    return RunResult(
        run_date=ctx.run_date, as_of=ctx.table.as_of, profiles=profiles, metrics=manifest, outputs=published
    )
