"""The steps between the model and the commit: quarantine, small tables, quality, segments.

Each step stages its outputs through ``ctx.outputs`` and records where they will be live in
``ctx.published``; the background ones run beside the main line (``ctx.background``).
"""

from __future__ import annotations

import logging
from dataclasses import replace

from insiders_spark.cleaning.rules import to_quarantine
from insiders_spark.core.errors import AccountingError, RunDateConflictError
from insiders_spark.core.names import PROFILES, QUARANTINE, RULES, SEGMENTS, TRAIN
from insiders_spark.evaluation.quality import SilhouetteCheck, check_silhouette, quality_verdict
from insiders_spark.model.explain import RuleRow, to_rule_rows, to_rules_frame
from insiders_spark.model.profiles import to_profiles_frame
from insiders_spark.model.programme_size import size_programme
from insiders_spark.model.segmentation import silhouette_of
from insiders_spark.model.silhouette import SILHOUETTE_DISTANCE
from insiders_spark.runs.context import FittedRun, RunContext
from insiders_spark.runs.lineage import previous_segments_info
from insiders_spark.segments.assignment import to_published_segments
from insiders_spark.segments.confidence import InsiderConfidence, summarise_confidence
from insiders_spark.segments.continuity import churn_counts, previous_run_date
from insiders_spark.storage import filesystem
from insiders_spark.storage.outputs import partition_path, read_partition

log = logging.getLogger(__name__)


def check_run_date(ctx: RunContext) -> None:
    """A train run may not describe a run date whose segments another model assigned."""
    if ctx.mode == TRAIN and filesystem.exists(ctx.spark, partition_path(ctx.output, SEGMENTS, ctx.outputs.run_date)):
        raise RunDateConflictError(
            f"run date {ctx.outputs.run_date} already has published segments: a train run would replace that "
            "date's profiles, rules, report and manifest with a new model's while its segments stay the "
            "old model's. Give the train run another --run-date, or use --mode train-and-score to refit "
            "and publish that date's segments too"
        )


def stage_quarantine(ctx: RunContext) -> None:
    """The set-aside lines, on the second thread (a second pass over the input); then the input's
    checks that need only the counts: its encoding, and the quarantine's thresholds.

    A run failing later still stages the quarantine first (leaving ``ctx.background`` waits), so
    the failed run's quarantine can be read.
    """
    accounting = ctx.table.accounting

    def write_quarantine() -> None:
        if accounting.quarantined_total:
            ctx.outputs.write_table(to_quarantine(ctx.table.quarantine_lines), QUARANTINE)
            check_quarantine_written(ctx)
        else:
            ctx.outputs.clear_table(QUARANTINE)

    if accounting.quarantined_total:
        ctx.published[QUARANTINE] = ctx.outputs.live(ctx.outputs.partition(QUARANTINE))
    ctx.background.run("quarantine", write_quarantine)
    if accounting.undecodable:
        log.warning(
            "%s lines hold text that is not valid %s (shown as U+FFFD): is the input in another "
            "encoding (e.g. --encoding ISO-8859-1)?",
            f"{accounting.undecodable:,}",
            ctx.config.input.encoding,
        )
    accounting.check_thresholds(ctx.config.quarantine)


def check_quarantine_written(ctx: RunContext) -> None:
    """The quarantine is a second pass over the input: it must hold the lines the first pass counted.

    Counting the staged parquet reads only its footers. A difference means the input changed
    between the two passes (a drop rewritten or appended to during the run)."""
    accounting = ctx.table.accounting
    staged = ctx.outputs.staged(ctx.outputs.partition(QUARANTINE))
    written = ctx.spark.read.parquet(staged).count() if filesystem.exists(ctx.spark, staged) else 0
    if written != accounting.quarantined_total:
        raise AccountingError(
            f"the quarantine holds {written:,} lines but the run counted {accounting.quarantined_total:,} set "
            "aside: the input changed while the run read it (a file rewritten or appended to during the run?). "
            "Nothing was published; run again once the input is complete."
        )


def stage_profiles_and_rules(ctx: RunContext, fitted: FittedRun) -> list[RuleRow]:
    """The profiles and the leaf rules of the run's clusters, staged on the second thread."""
    model = fitted.model
    rules = to_rule_rows(
        model.leaf_sums,
        model.embedding.tree,
        model.kmeans.leaf_clusters,
        fitted.profiles,
        feature_names=model.embedding.inputs,
    )

    def write_small_tables() -> None:
        ctx.outputs.write_table(to_profiles_frame(ctx.spark, fitted.profiles), PROFILES)
        ctx.outputs.write_table(to_rules_frame(ctx.spark, rules), RULES)

    ctx.background.run("write profiles and rules", write_small_tables)
    return rules


def size_the_programme(ctx: RunContext, fitted: FittedRun) -> FittedRun:
    """The programme's Insiders on the run's customers (``model.programme``): cluster 1, cut to its
    most valuable ``segments.programme_share`` of the customers when it is larger; and what the
    bound cost."""
    share = ctx.config.segments.programme_share
    programme = size_programme(
        fitted.model, fitted.clustered, insiders_cluster=fitted.profiles[0].kmeans_cluster, share=share
    )
    if programme.binding:
        log.warning(
            "programme size: cluster 1 (%s customers, %.1f%%) is larger than %.0f%% of the customers: its %s most "
            "valuable are the Insiders, with %.1f%% of the revenue (cluster 1: %.1f%%)",
            f"{programme.cluster.customers:,}",
            100 * programme.cluster.customer_share,
            100 * share,
            f"{programme.insiders.customers:,}",
            100 * programme.insiders.revenue_share,
            100 * programme.cluster.revenue_share,
        )
    return replace(fitted, programme=programme)


def measure_quality(ctx: RunContext, fitted: FittedRun) -> tuple[float, SilhouetteCheck, dict]:
    """The silhouette over every customer, its sample cross-check, and the verdict on every target."""
    config, profiles = ctx.config, fitted.profiles
    with ctx.timer.stage("silhouette"):
        score = silhouette_of(fitted.model, occupied_clusters=sum(p.customers > 0 for p in profiles))
        check = check_silhouette(
            fitted.clustered,
            customers=ctx.table.summary.with_purchases,
            seed=config.job.seed,
            max_rows=config.quality.silhouette_sample_rows,
            mllib=score,
        )
        log.info(
            "k=%d: silhouette %.3f (%s; scikit-learn on %d sampled customers: %s)",
            len(profiles),
            score,
            SILHOUETTE_DISTANCE,
            check.sample_rows,
            "-" if check.sample is None else f"{check.sample:.3f}",
        )
    insiders = fitted.programme.insiders if fitted.programme is not None else None
    verdict = quality_verdict(
        profiles=profiles,
        silhouette=score,
        stability_failures=fitted.stability_failures,
        targets=config.quality,
        insiders=(insiders.customer_share, insiders.revenue_share) if insiders is not None else None,
    )
    if verdict["failures"]:
        log.warning("quality targets missed: %s", "; ".join(verdict["failures"]))
    return score, check, verdict


def stage_segments(ctx: RunContext, fitted: FittedRun) -> InsiderConfidence | None:
    """The segments partition (not for a train run) with each customer's Insider history against
    the previous run date and ``insider_confidence``, the Insiders' churn and how certain they are;
    the profiles and rules staged beside it."""
    spark, output, run_date = ctx.spark, ctx.output, ctx.run_date
    confidence = None
    with ctx.timer.stage("write"):
        if ctx.mode != TRAIN:
            previous_date = previous_run_date(spark, output, SEGMENTS, run_date)
            previous = read_partition(spark, output, SEGMENTS, previous_date) if previous_date else None
            if previous_date:
                ctx.run_info["previous_segments"] = previous_segments_info(
                    spark, output, previous_date, ctx.mode, ctx.run_info
                )
            segments = to_published_segments(
                fitted.clustered,
                fitted.model,
                fitted.profiles,
                previous,
                run_date=run_date,
                config=ctx.config,
                insiders=fitted.programme.rule if fitted.programme is not None else None,
                votes=fitted.stability.votes if fitted.stability is not None else None,
            )
            ctx.published[SEGMENTS] = ctx.outputs.write_table(segments, SEGMENTS)
            staged = spark.read.parquet(ctx.outputs.staged(ctx.outputs.partition(SEGMENTS)))
            churn = churn_counts(staged, previous, previous_date)
            ctx.run_info["churn"] = churn.to_dict()
            log.info("Insiders churn: %s", churn.to_dict())
            confidence = summarise_confidence(staged)
            if confidence is not None:
                log.info("Insiders by confidence: %s", confidence.describe())
        ctx.published[PROFILES] = ctx.outputs.live(ctx.outputs.partition(PROFILES))
        ctx.published[RULES] = ctx.outputs.live(ctx.outputs.partition(RULES))
    return confidence
