"""Training: fit the segmentation, measure its stability and, with ``--k auto``, choose k."""

from __future__ import annotations

import logging
from dataclasses import dataclass

from pyspark.sql import DataFrame

from insiders_spark.core.config import Config
from insiders_spark.core.errors import ClusteringError
from insiders_spark.evaluation.kselection import KSelection, score_grid
from insiders_spark.evaluation.stability import Stability, fit_stability_runs
from insiders_spark.model.embedding import fit_embedding
from insiders_spark.model.segmentation import SegmentationModel, fit_segmentation
from insiders_spark.model.store import CURRENT, MODELS, describe, new_version, save
from insiders_spark.runs.context import FittedRun, RunContext
from insiders_spark.runs.lineage import match_previous_model
from insiders_spark.storage.filesystem import remove_empty_folder

SCRATCH = "_scratch"  # under the run's staging folder: what a step saves only to read back

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Training:
    model: SegmentationModel
    clustered: DataFrame
    stability: Stability | None = None
    selection: KSelection | None = None
    stability_unmeasurable: str | None = None  # why the stability runs could not be compared

    def stability_failures(self) -> list[str] | None:
        """For the quality verdict: the missed stability targets; None when not measured."""
        if self.stability_unmeasurable:
            return [f"stability not measurable: {self.stability_unmeasurable}"]
        return None if self.stability is None else self.stability.failures()


def train_segmentation(features: DataFrame, config: Config, *, customers: int, scratch: str | None = None) -> Training:
    """Fit the segmentation; measure its stability and, with ``--k auto``, choose k first.

    The tree is fitted once. The stability runs use it as their reference and serve every k of
    the grid, so choosing k costs one set of runs; KMeans is then fitted at the chosen k (which
    may differ from the configured one, e.g. when the tree has fewer leaves than it).
    """
    seed, quality = config.job.seed, config.quality
    embedding = fit_embedding(features, config=config.embedding, seed=seed, customers=customers)
    if not (quality.stability or config.clustering.select_k):
        model, clustered = fit_segmentation(
            features, config=config, customers=customers, k=config.clustering.k, seed=seed, embedding=embedding
        )
        return Training(model, clustered)
    runs = fit_stability_runs(
        features,
        config=config,
        customers=customers,
        seed=seed,
        seeds=quality.stability_seeds,
        bootstraps=quality.stability_bootstraps,
        reference=embedding,
        scratch=scratch,
    )
    selection = None
    k = config.clustering.k
    if config.clustering.select_k:
        selection = score_grid(runs, grid=config.clustering.k_grid, config=config)
        k = selection.chosen
    model, clustered = fit_segmentation(
        features, config=config, customers=customers, k=k, seed=seed, embedding=embedding
    )
    try:
        stability = runs.stability(model.k, config=config)
    except ClusteringError as error:  # a resample's tree has fewer leaves than k: a result, not a crash
        log.warning("stability not measurable at k=%d: %s", model.k, error)
        return Training(model, clustered, selection=selection, stability_unmeasurable=str(error))
    log.info(
        "stability in %.1f s: bootstrap %s, revenue cut %s",
        stability.seconds,
        stability.bootstrap,
        stability.reference_revenue_cut,
    )
    return Training(model, clustered, stability, selection)


def train_for_run(ctx: RunContext, features: DataFrame, previous_version: str | None) -> FittedRun:
    """Fit the run's model (stage "segmentation"), carry the previous model's cluster numbers and
    names over (stage "match clusters"), and stage the model as a new version beside the run."""
    config, table = ctx.config, ctx.table
    with ctx.timer.stage("segmentation"):
        scratch = ctx.outputs.staged(SCRATCH)  # seen by the whole cluster, never published
        training = train_segmentation(features, config, customers=table.summary.with_purchases, scratch=scratch)
        remove_empty_folder(ctx.spark, scratch)
        model, clustered = training.model, table.hold(training.clustered)
        log.info("embedding: %s; KMeans: %s", model.embedding.describe(), model.kmeans.describe())
    if previous_version:
        with ctx.timer.stage("match clusters"):
            model, ctx.run_info["lineage"] = match_previous_model(
                ctx.spark, ctx.output, previous_version, model, clustered, config
            )
    version = new_version(table.as_of, ctx.outputs.run_id)
    description = describe(
        model, version=version, as_of=table.as_of, run_date=ctx.run_date, config_hash=config.fingerprint()
    )

    with ctx.timer.stage("save model"):  # before the rules and reasons, which read the saved tree's node values
        model = save(model, ctx.outputs.stage_folder(f"{MODELS}/{version}"), description)
    ctx.outputs.write_path(f"{MODELS}/{CURRENT}", version + "\n")
    ctx.published["model"] = ctx.outputs.live(f"{MODELS}/{version}")
    ctx.run_info.update(model_version=version, model_trained_as_of=table.as_of.isoformat())
    return FittedRun(
        model=model,
        clustered=clustered,
        profiles=model.profiles,
        stability=training.stability,
        selection=training.selection,
        stability_failures=training.stability_failures(),
    )
