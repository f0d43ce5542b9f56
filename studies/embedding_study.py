"""Embedding study on the real log: which embedding, tree and solver the job should cluster in.

For every variant, on the same customers (the real log, as of its last invoice date):

* the silhouette at k = 9 (MLlib ``ClusteringEvaluator`` over every customer, squared Euclidean),
  the smallest cluster, the Insiders' share of customers and of revenue;
* stability: ARI and Insiders Jaccard of 5 seed runs and of the bootstrap refits (20, the job's)
  against the reference, beside the revenue cut's (``insiders_spark.evaluation.stability``);
* the k the ``--k auto`` rule picks for that variant (``insiders_spark.evaluation.kselection``);
* whether it meets every quality target at once (``[quality]``).

Variants change one thing of the default at a time: the tree's depth, min_leaf_share and max_bins
(configuration overrides), and what left the job (``studies.variants``: the leaf-path encoding, the
label, the split grid, the KMeans solver and its starts); plus a random-forest multi-hot embedding
(MLlib RandomForestRegressor with leafCol -> one-hot per tree -> MLlib KMeans on the customers)
and a revenue ladder for scale.

Reproduce, from the repository root (about 25 minutes on 2 cores; the page and the raw numbers go
to studies/output/embedding_study.md and .json; the findings are docs/studies/embedding_study.md):

    python -m studies.embedding_study

Options: --only NAME[,NAME] (a subset of variants), --seeds (5) and --bootstraps (20), --update
(recompute the --only variants and replace them in the last run's JSON), --render-only, --input,
--synthetic LINES (a quick run on a synthetic log), --out.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import json
import logging
import math
import platform
import time
from pathlib import Path
from typing import Any

from pyspark.ml import Pipeline, PipelineModel
from pyspark.ml.clustering import KMeans, KMeansModel
from pyspark.ml.feature import OneHotEncoder, VectorAssembler
from pyspark.ml.functions import vector_to_array
from pyspark.ml.regression import RandomForestRegressor
from pyspark.sql import Column, DataFrame
from pyspark.sql import functions as F

from insiders_spark.core.config import Config, QualityConfig, load_config
from insiders_spark.core.names import CUSTOMER_ID, LABEL_COLUMN, MODEL_INPUT_COLUMNS
from insiders_spark.evaluation import Contingency, Stability
from insiders_spark.evaluation.kselection import DEFAULT_GRID
from insiders_spark.evaluation.quality import segmentation_failures
from insiders_spark.evaluation.stability import (
    BOOTSTRAP,
    DEFAULT_BOOTSTRAPS,
    DEFAULT_SEEDS,
    SEED,
    RunAgreement,
    bootstrap_resample,
    spread,
)
from insiders_spark.features import prepare_customers
from insiders_spark.model import fit_segmentation
from insiders_spark.model.clustering import with_kmeans_clusters
from insiders_spark.model.embedding import EMBEDDING, TREE_FEATURES, TREE_LABEL, min_instances_per_leaf, tree_label
from insiders_spark.model.profiles import PROFILED_FEATURES, build_profiles, summarise_clusters
from insiders_spark.model.silhouette import silhouette
from insiders_spark.spark import build_spark_session
from studies.common import input_path, start_study, study_parser
from studies.variant_runs import cluster_variant_run, fit_variant_runs, score_variant_grid, score_variant_k
from studies.variants import (
    MLLIB,
    MLLIB_INIT_STEPS,
    MLLIB_MAX_ITER,
    MLLIB_TOL,
    PATH,
    PATH_DEPTH,
    PATH_GAIN,
    RAW,
    Variant,
)

log = logging.getLogger("embedding_study")

STUDY_K = 9
SEED_VALUE = 42

# name -> (what changes, configuration overrides, variant); the first is the job's default
LEAF_VARIANTS: dict[str, tuple[str, dict[str, Any], Variant]] = {
    "default": ("", {}, Variant()),  # described from the configuration (default_description)
    "path_depth": ("encoding path_depth (split weight halves per level)", {}, Variant(encoding=PATH_DEPTH)),
    "path_gain": ("encoding path_gain (split weight = share of variance explained)", {}, Variant(encoding=PATH_GAIN)),
    "raw_label": ("label gross_revenue (raw, as the study)", {}, Variant(label=RAW)),
    "depth_3": ("max_depth 3", {"embedding.max_depth": 3}, Variant()),
    "depth_5": ("max_depth 5", {"embedding.max_depth": 5}, Variant()),
    "depth_6": ("max_depth 6", {"embedding.max_depth": 6}, Variant()),
    "leaf_0.005": ("min_leaf_share 0.005", {"embedding.min_leaf_share": 0.005}, Variant()),
    "leaf_0.02": ("min_leaf_share 0.02", {"embedding.min_leaf_share": 0.02}, Variant()),
    "leaf_0.05": ("min_leaf_share 0.05", {"embedding.min_leaf_share": 0.05}, Variant()),
    "bins_16": ("max_bins 16 (coarser split candidates)", {"embedding.max_bins": 16}, Variant()),
    "bins_64": ("max_bins 64", {"embedding.max_bins": 64}, Variant()),
    "n_init_20": ("local solver with 20 starts", {}, Variant(starts=20)),
    "mllib": ("MLlib KMeans solver (weightCol, 20 seeds)", {}, Variant(solver=MLLIB, starts=20)),
    "grid_1_2_5": ("tree inputs snapped to the 1-2-5 grid (split_grid)", {}, Variant(split_grid="1-2-5")),
}
GRID_SKIPPED = {"mllib"}  # 20 MLlib fits per (run, k): the grid would take an hour; k = 9 only

FOREST_TREES = 20
FOREST_DEPTH = 4
FOREST_LEAVES = "forest_leaves"
FOREST_PREDICTION = "forest_prediction"
KMEANS_PREDICTION = "forest_cluster"
RANKED = "ranked_cluster"
REFERENCE_RANKED = "reference_cluster"


# --- random-forest multi-hot (study only) -----------------------------------------------------


@dataclasses.dataclass(frozen=True)
class ForestSegmentation:
    """RF leaves one-hot per tree, KMeans on the customers, clusters ranked by mean revenue."""

    embedding: PipelineModel
    kmeans: KMeansModel
    rank: dict[int, int]  # KMeans cluster -> revenue rank (1 = Insiders)
    profiles: list

    def clustered(self, frame: DataFrame) -> DataFrame:
        mapping = frame.sparkSession.createDataFrame(list(self.rank.items()), [KMEANS_PREDICTION, RANKED])
        return self.kmeans.transform(self.embedding.transform(frame)).join(
            F.broadcast(mapping), on=KMEANS_PREDICTION, how="inner"
        )


def fit_forest(features: DataFrame, *, config: Config, customers: int, k: int, seed: int) -> ForestSegmentation:
    tree_index = [f"forest_leaf_{t}" for t in range(FOREST_TREES)]
    one_hot = [f"forest_onehot_{t}" for t in range(FOREST_TREES)]
    labelled = features.withColumn(TREE_LABEL, tree_label(F.col(LABEL_COLUMN)))
    forest = Pipeline(
        stages=[
            VectorAssembler(inputCols=list(MODEL_INPUT_COLUMNS), outputCol=TREE_FEATURES),
            RandomForestRegressor(
                featuresCol=TREE_FEATURES,
                labelCol=TREE_LABEL,
                predictionCol=FOREST_PREDICTION,
                leafCol=FOREST_LEAVES,
                numTrees=FOREST_TREES,
                maxDepth=FOREST_DEPTH,
                maxBins=config.embedding.max_bins,
                minInstancesPerNode=min_instances_per_leaf(customers, config.embedding.min_leaf_share),
                seed=seed,
            ),
        ]
    ).fit(labelled)

    def split_leaves(frame: DataFrame) -> DataFrame:
        leaves = vector_to_array(F.col(FOREST_LEAVES))
        return frame.select("*", *[leaves[t].alias(name) for t, name in enumerate(tree_index)])

    encoder = Pipeline(
        stages=[
            OneHotEncoder(inputCols=tree_index, outputCols=one_hot, dropLast=False),
            VectorAssembler(inputCols=one_hot, outputCol=EMBEDDING),
        ]
    ).fit(split_leaves(forest.transform(features)))
    embedding = _ForestEmbedding(forest, encoder, split_leaves)
    embedded = embedding.transform(features).cache()
    kmeans = KMeans(
        featuresCol=EMBEDDING,
        predictionCol=KMEANS_PREDICTION,
        k=k,
        seed=seed,
        maxIter=MLLIB_MAX_ITER,
        tol=MLLIB_TOL,
        initSteps=MLLIB_INIT_STEPS,
    ).fit(embedded)
    profiles = build_profiles(
        summarise_clusters(kmeans.transform(embedded), cluster_col=KMEANS_PREDICTION),
        insiders_name=config.segments.insiders_name,
    )
    embedded.unpersist()
    return ForestSegmentation(embedding, kmeans, {p.kmeans_cluster: p.cluster for p in profiles}, profiles)


class _ForestEmbedding:
    """forest -> per-tree leaf columns -> one-hot -> assembled ``embedding`` (a transformer)."""

    def __init__(self, forest: PipelineModel, encoder: PipelineModel, split_leaves) -> None:
        self.forest, self.encoder, self.split_leaves = forest, encoder, split_leaves

    def transform(self, frame: DataFrame) -> DataFrame:
        return self.encoder.transform(self.split_leaves(self.forest.transform(frame)))


def forest_study(features: DataFrame, *, config: Config, customers: int, seeds: int, bootstraps: int) -> dict:
    started = time.perf_counter()
    reference = fit_forest(features, config=config, customers=customers, k=STUDY_K, seed=SEED_VALUE)
    clustered = reference.clustered(features).cache()
    value = silhouette(clustered, prediction_col=RANKED)
    referenced = clustered.select(CUSTOMER_ID, *PROFILED_FEATURES, F.col(RANKED).alias(REFERENCE_RANKED)).cache()
    clustered.unpersist()
    agreements = []
    plans = [(SEED, SEED_VALUE + i, None) for i in range(1, seeds + 1)]
    plans += [(BOOTSTRAP, SEED_VALUE, SEED_VALUE + b) for b in range(1, bootstraps + 1)]
    for kind, seed, sample_seed in plans:
        training = referenced if sample_seed is None else bootstrap_resample(referenced, seed=sample_seed).cache()
        trained_on = customers if sample_seed is None else training.count()
        other = fit_forest(training, config=config, customers=trained_on, k=STUDY_K, seed=seed)
        table = Contingency.from_pairs(
            (r[REFERENCE_RANKED], r[RANKED], r["count"])
            for r in other.clustered(referenced).groupBy(REFERENCE_RANKED, RANKED).count().collect()
        )
        agreements.append(
            RunAgreement(
                kind=kind,
                seed=seed if sample_seed is None else sample_seed,  # a bootstrap run: its resample's seed
                tree_index=None,
                training_customers=trained_on,
                ari=table.adjusted_rand_index(),
                insiders_jaccard=table.jaccard(1, 1),
                insiders=table.other_sizes().get(1, 0),
            )
        )
        log.info(
            "forest %s seed=%s sample=%s: ARI %.3f Jaccard %.3f",
            kind,
            seed,
            sample_seed,
            agreements[-1].ari,
            agreements[-1].insiders_jaccard,
        )
        if training is not referenced:
            training.unpersist()
    referenced.unpersist()
    stability = Stability(
        STUDY_K, SEED_VALUE, customers, reference.profiles[0].customers, tuple(agreements), config.quality
    )
    insiders = reference.profiles[0]
    return _row(
        name="forest_multihot",
        targets=config.quality,
        what=f"random forest ({FOREST_TREES} trees, depth {FOREST_DEPTH}) leaves one-hot per tree, MLlib KMeans "
        "on customers (one k-means|| fit)",
        leaves=None,
        silhouette=value,
        exact_silhouette=None,
        smallest=min(p.customer_share for p in reference.profiles),
        insiders_share=insiders.customer_share,
        insiders_revenue=insiders.revenue_share,
        stability=stability,
        auto=None,
        seconds=time.perf_counter() - started,
    )


# --- for scale: a revenue ladder without any embedding -----------------------------------------


def revenue_ladder_study(features: DataFrame, *, config: Config, customers: int, bootstraps: int) -> dict:
    """Nine groups cut on gross revenue alone, as large as the default's clusters (top first).

    Not an embedding and not a candidate (it ignores every other feature): it shows how stable a
    nine-group split of these customers can be when only the cut points move. The cut points are
    exact quantiles of the (resampled) revenue; every customer is then assigned by them.
    """
    started = time.perf_counter()
    model, clustered = fit_segmentation(features, config=config, customers=customers, k=STUDY_K, seed=SEED_VALUE)
    clustered.unpersist()
    sizes = [p.customers for p in model.profiles]  # revenue rank order, Insiders first
    below = [1 - sum(sizes[: i + 1]) / customers for i in range(len(sizes) - 1)]  # share below each cut

    def ladder(frame: DataFrame) -> Column:
        cuts = frame.approxQuantile(LABEL_COLUMN, below, 0.0)  # exact; one value per cut
        return 1 + sum((F.col(LABEL_COLUMN) <= F.lit(cut)).cast("int") for cut in cuts)

    referenced = features.select(CUSTOMER_ID, LABEL_COLUMN, ladder(features).alias(REFERENCE_RANKED)).cache()
    summary = referenced.groupBy(REFERENCE_RANKED).agg(
        F.count(F.lit(1)).alias("n"), F.sum(LABEL_COLUMN).alias("revenue")
    )
    by_group = {r[REFERENCE_RANKED]: (r["n"], r["revenue"]) for r in summary.collect()}
    total_revenue = sum(revenue for _, revenue in by_group.values())
    agreements = []
    for b in range(1, bootstraps + 1):
        resample = bootstrap_resample(referenced, seed=SEED_VALUE + b).cache()
        trained_on = resample.count()
        table = Contingency.from_pairs(
            (r[REFERENCE_RANKED], r[RANKED], r["count"])
            for r in referenced.withColumn(RANKED, ladder(resample)).groupBy(REFERENCE_RANKED, RANKED).count().collect()
        )
        resample.unpersist()
        agreements.append(
            RunAgreement(
                kind=BOOTSTRAP,
                seed=SEED_VALUE + b,  # the resample's
                tree_index=None,
                training_customers=trained_on,
                ari=table.adjusted_rand_index(),
                insiders_jaccard=table.jaccard(1, 1),
                insiders=table.other_sizes().get(1, 0),
            )
        )
    referenced.unpersist()
    stability = Stability(STUDY_K, SEED_VALUE, customers, by_group[1][0], tuple(agreements), config.quality)
    return _row(
        name="revenue_ladder (baseline)",
        targets=config.quality,
        what="for scale, not an embedding: nine groups cut on gross revenue alone at the default's cluster "
        "sizes (exact quantiles); no tree and no KMeans, so no seed runs and no silhouette",
        leaves=None,
        silhouette=None,
        exact_silhouette=None,
        smallest=min(n for n, _ in by_group.values()) / customers,
        insiders_share=by_group[1][0] / customers,
        insiders_revenue=by_group[1][1] / total_revenue,
        stability=stability,
        auto=None,
        seconds=time.perf_counter() - started,
    )


# --- leaf-path variants -----------------------------------------------------------------------


def leaf_study(
    name: str,
    what: str,
    features: DataFrame,
    *,
    config: Config,
    customers: int,
    seeds: int,
    bootstraps: int,
    variant: Variant | None = None,
    grid_of_k: bool = True,
) -> dict:
    """One variant of the leaf-path embedding, measured at k = 9 and over the k grid."""
    started = time.perf_counter()
    variant = variant or Variant()
    spark = features.sparkSession
    inputs = variant.inputs(features)
    runs = fit_variant_runs(
        inputs, variant=variant, config=config, customers=customers, seed=SEED_VALUE, seeds=seeds, bootstraps=bootstraps
    )
    at_k = score_variant_k(runs, variant=variant, config=config, k=STUDY_K, spark=spark)
    mllib_value = None
    if at_k.error is None and variant.job_tree and variant.encoding == PATH:  # the job's embedding transforms
        reference = cluster_variant_run(runs.reference, variant=variant, config=config, k=STUDY_K, spark=spark)
        embedded = runs.reference.embedding.transform(inputs)
        mllib_value = silhouette(with_kmeans_clusters(embedded, reference.kmeans))
    auto = None
    if grid_of_k:
        selection = score_variant_grid(
            runs, variant=variant, config=config, grid=DEFAULT_GRID, spark=spark, fallback_k=STUDY_K
        )
        chosen = selection.score(selection.chosen)
        auto = {
            "chosen": selection.chosen,
            "fallback": selection.fallback,
            "reason": selection.reason,
            "qualifying": [s.k for s in selection.scores if s.qualifies],
            "chosen_score": chosen.to_dict() if chosen else None,
            "grid": [s.to_dict() for s in selection.scores],
        }
    leaf_aris = [Contingency(r.overlap).adjusted_rand_index() for r in runs.perturbed if r.kind == BOOTSTRAP]
    row = _row(
        name=name,
        what=what,
        targets=config.quality,
        leaves=len(runs.reference.leaf_sums),
        silhouette=mllib_value,
        exact_silhouette=at_k.silhouette,
        smallest=at_k.smallest_cluster_share,
        insiders_share=at_k.insiders_share,
        insiders_revenue=at_k.insiders_revenue_share,
        stability=at_k.stability,
        auto=auto,
        seconds=time.perf_counter() - started,
        error=at_k.error,
    )
    row["bootstrap_leaf_ari"] = spread(leaf_aris) or None
    return row


def _row(
    *,
    name: str,
    what: str,
    targets: QualityConfig,
    leaves: int | None,
    silhouette: float | None,
    exact_silhouette: float | None,
    smallest: float | None,
    insiders_share: float | None,
    insiders_revenue: float | None,
    stability: Stability | None,
    auto: dict | None,
    seconds: float,
    error: str | None = None,
) -> dict:
    measured = silhouette if silhouette is not None else exact_silhouette
    if error:
        failures = [f"cannot fit k={STUDY_K}: {error}"]
    else:
        failures = segmentation_failures(
            targets,
            silhouette=measured if measured is not None else math.inf,  # no embedding: not judged
            smallest_cluster_share=smallest,
            insiders_share=insiders_share,
            insiders_revenue_share=insiders_revenue,
        ) + (stability.failures() if stability else [])

    def summary(kind: str, attribute: str) -> dict | None:
        runs = stability.of_kind(kind) if stability else ()
        return spread([getattr(r, attribute) for r in runs]) or None

    return {
        "name": name,
        "what": what,
        "leaves": leaves,
        "silhouette_mllib": None if silhouette is None else round(silhouette, 4),
        "silhouette_leaf_table": None if exact_silhouette is None else round(exact_silhouette, 4),
        "smallest_cluster_share": None if smallest is None else round(smallest, 4),
        "insiders_share": None if insiders_share is None else round(insiders_share, 4),
        "insiders_revenue_share": None if insiders_revenue is None else round(insiders_revenue, 4),
        "seed_ari": summary(SEED, "ari"),
        "seed_jaccard": summary(SEED, "insiders_jaccard"),
        "bootstrap_ari": summary(BOOTSTRAP, "ari"),
        "bootstrap_jaccard": summary(BOOTSTRAP, "insiders_jaccard"),
        "stability": stability.to_dict() if stability else None,
        "meets_targets": not failures,
        "failures": failures,
        "auto_k": auto,
        "seconds": round(seconds, 1),
    }


# --- the page ---------------------------------------------------------------------------------


def _f(value, digits=3):
    return "–" if value is None else f"{value:.{digits}f}"


def _p(value, digits=1):
    return "–" if value is None else f"{value:.{digits}%}"


def _mm(summary):
    """min / p10 / median (``stability.spread``); a row of an older JSON: min / mean."""
    if not summary:
        return "–"
    if "p10" not in summary:
        return f"{summary['min']:.3f} / {summary['mean']:.3f} (mean)"
    return f"{summary['min']:.3f} / {summary['p10']:.3f} / {summary['median']:.3f}"


def render(rows: list[dict], meta: dict) -> str:
    lines = [
        "# Embedding study",
        "",
        "Which embedding the job should cluster customers in, measured on the real log "
        f"({meta['customers']:,} customers, as of {meta['as_of']}; UCI Online Retail, CC BY 4.0). "
        f"Generated by `python -m studies.embedding_study` on {meta['date']} in {meta['minutes']:.0f} min "
        f"(Spark {meta['spark']}, {meta['master']}; a shared 2-core machine)"
        + (f"; rows re-run since: {', '.join(meta['updated'])}." if meta.get("updated") else "."),
        "",
        "Reproduce from the repository root (one command; the module docstring has the options):",
        "",
        "```bash",
        f"python -m studies.embedding_study --seeds {meta['seeds']} --bootstraps {meta['bootstraps']}",
        "```",
        "",
        "## How each variant is measured",
        "",
        f"* One setting of the default changes at a time; k = {STUDY_K} (the study's) and seed {SEED_VALUE}.",
        "* **Silhouette**: MLlib `ClusteringEvaluator` over every customer, squared Euclidean distance, "
        "in the variant's own embedding (for the leaf-path variants also computed exactly from the leaf "
        "table, `insiders_spark.model.leaf_silhouette`; the two agree to 1e-9 in every row where both exist).",
        "* **Smallest cluster** and **Insiders** (the top mean-revenue cluster): share of customers; "
        "Insiders also share of gross revenue.",
        f"* **Stability**: {meta['seeds']} seed runs (KMeans seeds "
        f"{SEED_VALUE + 1}…{SEED_VALUE + meta['seeds']}) and {meta['bootstraps']} bootstrap runs (the job's tree: "
        "the trees of one MLlib random forest, each on a Poisson(1) resample; a variant's own tree: refitted on "
        "hash-keyed resamples), every customer assigned by the refitted model, each compared with the "
        "reference over every customer: adjusted Rand index (ARI) of the clusters and Jaccard of the Insiders "
        "(cut to the programme's size, as the job's). Shown as min / p10 / median.",
        "* **Targets** (`[quality]`, all at once): silhouette ≥ 0.75, every cluster ≥ 1% of "
        "customers, Insiders ≤ 10% of customers with ≥ 50% of revenue, ARI ≥ 0.9 and Insiders Jaccard ≥ 0.9 "
        "on every seed run and on the bootstrap runs' p10, which must also reach the revenue cut's p10.",
        "* **Bootstrap leaf ARI** (diagnostic): agreement of the bootstrap trees' *leaves* with the "
        "reference tree's leaves, before any clustering; KMeans only merges leaves, so clusters of leaves "
        "are stable only as far as the leaves are.",
        "",
        f"## At k = {STUDY_K}",
        "",
        "| variant | leaves | silhouette | smallest cluster | Insiders customers | Insiders revenue | "
        "seed ARI | seed Jaccard | bootstrap ARI | bootstrap Jaccard | bootstrap leaf ARI | all targets | s |",
        "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---|---:|",
    ]
    for r in rows:
        verdict = "yes" if r["meets_targets"] else "no"
        lines.append(
            f"| {r['name']} | {r['leaves'] if r['leaves'] is not None else '–'} | {_f(r['silhouette_mllib'])} | "
            f"{_p(r['smallest_cluster_share'], 2)} | {_p(r['insiders_share'])} | {_p(r['insiders_revenue_share'])} | "
            f"{_mm(r['seed_ari'])} | {_mm(r['seed_jaccard'])} | {_mm(r['bootstrap_ari'])} | "
            f"{_mm(r['bootstrap_jaccard'])} | {_mm(r.get('bootstrap_leaf_ari'))} | {verdict} | {r['seconds']:.0f} |"
        )
    lines += ["", "What each variant changes, and what it misses at k = 9:", ""]
    for r in rows:
        missed = "; ".join(r["failures"]) if r["failures"] else "nothing: meets every target"
        lines.append(f"* **{r['name']}**: {r['what']}. Misses: {missed}.")
    lines += [
        "",
        "## With k chosen by the `--k auto` rule",
        "",
        "The rule (`insiders_spark.evaluation.kselection`): the smallest k in 4…16 that meets every target at once; "
        "if none does, the configured k (9) is kept.",
        "",
        "| variant | chosen k | qualifying k | silhouette | smallest cluster | Insiders customers | "
        "Insiders revenue | ARI worst | Jaccard worst |",
        "|---|---:|---|---:|---:|---:|---:|---:|---:|",
    ]
    for r in rows:
        auto = r["auto_k"]
        if not auto:
            lines.append(f"| {r['name']} | – (k = {STUDY_K} only) | – | | | | | | |")
            continue
        s = auto["chosen_score"] or {}
        chosen = f"{auto['chosen']}" + (" (fallback)" if auto["fallback"] else "")
        lines.append(
            f"| {r['name']} | {chosen} | {', '.join(map(str, auto['qualifying'])) or 'none'} | "
            f"{_f(s.get('silhouette'))} | {_p(s.get('smallest_cluster_share'), 2)} | {_p(s.get('insiders_share'))} | "
            f"{_p(s.get('insiders_revenue_share'))} | {_f(s.get('ari_min'))} | {_f(s.get('insiders_jaccard_min'))} |"
        )
    default = next((r for r in rows if r["name"] == "default"), None)
    if default and default["auto_k"]:
        lines += [
            "",
            "### The default's whole grid",
            "",
            "| k | silhouette | smallest cluster | Insiders customers | Insiders revenue | ARI worst / mean | "
            "Jaccard worst / mean | misses |",
            "|---:|---:|---:|---:|---:|---:|---:|---|",
        ]
        for g in default["auto_k"]["grid"]:
            lines.append(
                f"| {g['k']} | {_f(g['silhouette'])} | {_p(g['smallest_cluster_share'], 2)} | "
                f"{_p(g['insiders_share'])} | {_p(g['insiders_revenue_share'])} | "
                f"{_f(g['ari_min'])} / {_f(g['ari_mean'])} | "
                f"{_f(g['insiders_jaccard_min'])} / {_f(g['insiders_jaccard_mean'])} | "
                f"{'; '.join(g['failures']) or '–'} |"
            )
    return "\n".join(lines) + "\n"


# --- main -------------------------------------------------------------------------------------


def default_description(config: Config) -> str:
    e = config.embedding
    job = Variant()
    return (
        f"{job.encoding}, {job.label}, depth {e.max_depth}, min_leaf_share {e.min_leaf_share}, "
        f"max_bins {e.max_bins}, split_grid {job.split_grid}, {job.solver} solver ({job.starts} starts)"
    )


def main(argv: list[str] | None = None) -> int:
    parser = study_parser("embedding_study", __doc__)
    parser.add_argument("--seeds", type=int, default=DEFAULT_SEEDS)
    parser.add_argument("--bootstraps", type=int, default=DEFAULT_BOOTSTRAPS)
    parser.add_argument("--only", default="", help="comma-separated variant names (default: all)")
    parser.add_argument(
        "--update", action="store_true", help="recompute only the --only variants and replace them in OUT.json"
    )
    parser.add_argument("--render-only", action="store_true", help="re-render OUT.md from OUT.json")
    args = parser.parse_args(argv)
    page, raw = Path(args.out + ".md"), Path(args.out + ".json")
    if args.render_only:
        saved = json.loads(raw.read_text())
        page.write_text(render(saved["rows"], saved["meta"]))
        return 0
    start_study()

    started = time.perf_counter()
    path = input_path(args)
    base = load_config(env="test", overrides={"input.path": path})
    spark = build_spark_session("insiders-embedding-study", base.spark)
    try:
        table = prepare_customers(spark, base)
        features = table.features().cache()
        customers = table.summary.with_purchases
        wanted = {n for n in args.only.split(",") if n}
        rows = []
        for name, (what, overrides, variant) in LEAF_VARIANTS.items():
            if wanted and name not in wanted:
                continue
            config = load_config(env="test", overrides={"input.path": path, **overrides})
            what = what or default_description(config)
            log.info("variant %s: %s", name, what)
            row = leaf_study(
                name,
                what,
                features,
                config=config,
                customers=customers,
                seeds=args.seeds,
                bootstraps=args.bootstraps,
                variant=variant,
                grid_of_k=name not in GRID_SKIPPED,
            )
            rows.append(row)
            log.info(
                "variant %s: %s", name, json.dumps({k: v for k, v in row.items() if k not in ("auto_k", "stability")})
            )
        if not wanted or "forest_multihot" in wanted:
            rows.append(
                forest_study(features, config=base, customers=customers, seeds=args.seeds, bootstraps=args.bootstraps)
            )
        if not wanted or "revenue_ladder" in wanted:
            rows.append(revenue_ladder_study(features, config=base, customers=customers, bootstraps=args.bootstraps))
        meta = {
            "customers": customers,
            "as_of": table.as_of.isoformat(),
            "input": path,
            "date": dt.date.today().isoformat(),
            "minutes": (time.perf_counter() - started) / 60,
            "spark": spark.version,
            "master": spark.sparkContext.master,
            "python": platform.python_version(),
            "seeds": args.seeds,
            "bootstraps": args.bootstraps,
        }
        page.parent.mkdir(parents=True, exist_ok=True)
        if args.update:
            saved = json.loads(raw.read_text())
            fresh = {r["name"]: r for r in rows}
            updated = sorted({*saved["meta"].get("updated", []), *fresh})
            rows = [fresh.pop(r["name"], r) for r in saved["rows"]] + list(fresh.values())
            meta = {**saved["meta"], "updated": updated}
        page.write_text(render(rows, meta))
        raw.write_text(json.dumps({"meta": meta, "rows": rows}, indent=1) + "\n")
        log.info("wrote %s", page)
    finally:
        spark.stop()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
