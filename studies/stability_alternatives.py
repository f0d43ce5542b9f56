"""Three ways to steadier segments, measured on the real log; none is the default (README, "Stability").

1. **Finer split grids**: the ISO 3 preferred numbers R5 (1, 1.6, 2.5, 4, 6.3) and R10 (ten steps a
   decade) instead of 1-2-5, so that the grid's Insiders' boundary can move in smaller steps.
   Measured as the embedding study measures a variant (silhouette, Insiders, 5 seed and 5
   bootstrap runs, ``embedding_study.leaf_study``) and, as ``quality_over_dates.py`` does, the four
   segmentation targets at the nine monthly as-of dates. The two grids exist only in this script:
   it adds them to the package's grid table for its own run.
2. **A size cap in the clustering** (the job's ``clustering.insiders_cap``, off by default): of the
   partitions the local solver's starts end at (``clustering.local_optima``), the cheapest whose top
   cluster (by mean revenue) holds at most ``quality.insiders_max_share`` of the customers. At the final date, without and with the 1-2-5
   grid, for the reference and 5 bootstrap runs: the Insiders of the optimum and of the capped
   partition, what the cap costs, and each run's agreement with the reference (ARI, Insiders
   Jaccard; the capped runs against the capped reference). And the four targets at the nine dates.
3. **A "born-again" tree**: the revenue tree fitted to the predictions of a bagged forest (50 trees,
   every feature at every split, depth 8, leaves ≥ 0.2% of the customers) rather than to the
   revenue itself: a smoother label. Measured as in 1.

    SPARK_LOCAL_IP=127.0.0.1 python benchmarks/stability_alternatives.py

Output: docs/stability_alternatives.md (and .json); about 15 minutes on 2 cores.
"""

from __future__ import annotations

import argparse
import contextlib
import datetime as dt
import json
import logging
import time
from pathlib import Path

from embedding_study import SEED_VALUE, STUDY_K, leaf_study
from pyspark.ml import Pipeline
from pyspark.ml.feature import VectorAssembler
from pyspark.ml.regression import RandomForestRegressor
from pyspark.sql import functions as F
from quality_over_dates import measure, over_dates
from real_log_study import DEFAULT_INPUT, start_study

from insiders_spark.core.config import load_config
from insiders_spark.core.grids import NAMED_GRIDS
from insiders_spark.core.names import LABEL_COLUMN, LEAF, MODEL_INPUT_COLUMNS
from insiders_spark.evaluation.quality import QualityTargets, 
from insiders_spark.evaluation.stability import BOOTSTRAP, agreement, fit_stability_runs, rank_leaf_clusters
from insiders_spark.features.table import prepare_customers
from insiders_spark.model.clustering import capped_partition, local_optima, optimum
from insiders_spark.model.embedding import (
    PREDICTED_LABEL,
    TREE_FEATURES,
    TREE_LABEL,
    configured_grid,
    fit_revenue_tree,
    min_instances_per_leaf,
    snapping_stages,
    tree_inputs,
    tree_label,
    tree_regressor,
)
from insiders_spark.spark.session import build_spark_session

log = logging.getLogger("stability_alternatives")
ROOT = Path(__file__).resolve().parents[1]

FINER_GRIDS = {"r5": (1.0, 1.6, 2.5, 4.0, 6.3), "r10": (1.0, 1.25, 1.6, 2.0, 2.5, 3.15, 4.0, 5.0, 6.3, 8.0)}
FOREST = {"numTrees": 50, "maxDepth": 8, "featureSubsetStrategy": "all", "min_leaf_share": 0.002}
BOOTSTRAPS = 5
STARTS = 200  # the solver's default starts (conf/base.toml)


def add_finer_grids() -> None:
    """Name the grids ``embedding.split_grid = "r5" | "r10"`` for this process only."""
    NAMED_GRIDS.update(FINER_GRIDS)


@contextlib.contextmanager
def born_again_trees():
    """While active, every revenue tree the package fits learns a bagged forest's prediction."""
    original = fit_revenue_tree

    def fit_to_forest(features, *, config, seed, customers):
        label, inputs, prediction = "forest_label", "forest_inputs", "forest_prediction"
        forest = RandomForestRegressor(
            featuresCol=inputs, labelCol=label, predictionCol=prediction, numTrees=FOREST["numTrees"],
            maxDepth=FOREST["maxDepth"], featureSubsetStrategy=FOREST["featureSubsetStrategy"],
            maxBins=config.max_bins, seed=seed,
            minInstancesPerNode=min_instances_per_leaf(customers, FOREST["min_leaf_share"]),
        )
        labelled = features.withColumn(label, tree_label(F.col(LABEL_COLUMN), config.label))
        fitted = Pipeline(stages=[VectorAssembler(inputCols=list(MODEL_INPUT_COLUMNS), outputCol=inputs), forest]).fit(labelled)
        smoothed = fitted.transform(labelled).drop(inputs, label)
        tree = tree_regressor(
            config, seed=seed, customers=customers, features_col=TREE_FEATURES,
            label_col=TREE_LABEL, prediction_col=PREDICTED_LABEL,
        ).setLeafCol(LEAF)
        grid = configured_grid(config)
        assembler = VectorAssembler(inputCols=tree_inputs(grid), outputCol=TREE_FEATURES)
        snapping = snapping_stages(grid)
        training = smoothed.withColumnRenamed(prediction, TREE_LABEL)
        return Pipeline(stages=[*snapping, assembler, tree]).fit(training)

    fit_revenue_tree = fit_to_forest
    try:
        yield
    finally:
        fit_revenue_tree = original


def capped_run(run, *, config, targets: QualityTargets) -> dict:
    """The optimum and the cheapest partition whose top cluster fits the cap, for one fitted run."""
    points = run.points()
    optima = local_optima(points.vectors, points.customers, k=STUDY_K, starts=STARTS, seed=run.seed)
    best, _ = optimum(optima)
    capped, outcome = capped_partition(optima, points.customers, points.revenue, k=STUDY_K, cap=targets.insiders_max_share)

    def describe(labels, cost_over_optimum: float):
        ranks, profiles = rank_leaf_clusters(run, dict(zip(points.leaves, labels.tolist())), config=config)
        return {
            "ranks": ranks,
            "insiders_share": round(profiles[0].customer_share, 4),
            "insiders_revenue_share": round(profiles[0].revenue_share, 4),
            "smallest_cluster_share": round(min(p.customer_share for p in profiles), 4),
            "silhouette": round(leaf_silhouette(points, ranks), 4),
            "cost_over_optimum": round(cost_over_optimum, 5),
            "misses": targets.profile_failures(profiles, silhouette=leaf_silhouette(points, ranks)),
        }

    return {
        "optima": len(optima),
        "optimum": describe(best, 0.0),
        "capped": describe(capped, outcome.cost_over_optimum) if outcome.fits else None,
    }


def cap_study(features, *, config, customers: int, targets: QualityTargets, bootstraps: int) -> list[dict]:
    runs = fit_stability_runs(features, config=config, customers=customers, seed=SEED_VALUE, seeds=0, bootstraps=bootstraps)
    reference = capped_run(runs.reference, config=config, targets=targets)
    rows = [{"run": "reference", **_strip(reference)}]
    for run in runs.perturbed:
        mine = capped_run(run, config=config, targets=targets)
        row = {"run": f"bootstrap {run.sample_seed}", **_strip(mine)}
        assert run.kind == BOOTSTRAP
        for choice in ("optimum", "capped"):
            if mine[choice] and reference[choice]:
                a = agreement(run, reference[choice]["ranks"], mine[choice]["ranks"])
                row[choice].update(ari=round(a.ari, 4), insiders_jaccard=round(a.insiders_jaccard, 4), insiders=a.insiders)
        rows.append(row)
    return rows


def _strip(result: dict) -> dict:
    return {k: ({kk: vv for kk, vv in v.items() if kk != "ranks"} if isinstance(v, dict) else v) for k, v in result.items()}


def cap_over_dates(spark, base, *, targets: QualityTargets, grids: list[str]) -> list[dict]:
    rows = []
    for as_of, customers, grid, config, features in over_dates(spark, base, grids):
        runs = fit_stability_runs(features, config=config, customers=customers, seed=SEED_VALUE, seeds=1, bootstraps=0)
        rows.append({"as_of": as_of.isoformat(), "split_grid": grid,
                     **_strip(capped_run(runs.reference, config=config, targets=targets))})
        log.info("%s", json.dumps(rows[-1]))
    return rows


def grids_over_dates(spark, base, *, targets: QualityTargets, grids: list[str]) -> list[dict]:
    rows = []
    for as_of, customers, grid, config, features in over_dates(spark, base, grids):
        result = measure(features, config=config, customers=customers, targets=targets)
        rows.append({"as_of": as_of.isoformat(), "split_grid": grid, **result})
        log.info("%s", json.dumps(rows[-1]))
    return rows


# --- the page ---------------------------------------------------------------------------------


def _pct(value) -> str:
    return "–" if value is None else f"{value:.1%}"


def _mm(summary) -> str:
    return "–" if not summary else f"{summary['min']:.3f} / {summary['mean']:.3f}"


def _verdict(misses: list[str]) -> str:
    return "yes" if not misses else "no: " + "; ".join(misses)


def render(result: dict) -> str:
    meta = result["meta"]
    lines = [
        "# Three ways to steadier segments, none adopted as the default",
        "",
        f"Real log (UCI Online Retail, CC BY 4.0), k = {STUDY_K}, seed {SEED_VALUE}; Spark {meta['spark']}, "
        f"{meta['master']}; {meta['minutes']:.1f} min on {meta['date']}. Generated by "
        "`benchmarks/stability_alternatives.py` (its docstring says what each measures). For the default and "
        "the 1-2-5 grid under the same measures see `embedding_study.md` and `quality_over_dates.md`.",
        "",
        "## 1 and 3: finer grids and a born-again tree, at the final date",
        "",
        "Stability: worst / mean of 5 seed and 5 bootstrap runs against the reference, over every customer.",
        "",
        "| variant | leaves | silhouette | smallest cluster | Insiders' customers | Insiders' revenue | seed ARI | "
        "seed Jaccard | bootstrap ARI | bootstrap Jaccard |",
        "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for row in result["variants"]:
        silhouette = row["silhouette_mllib"] if row["silhouette_mllib"] is not None else row["silhouette_leaf_table"]
        lines.append(
            f"| {row['name']} | {row['leaves']} | {'–' if silhouette is None else f'{silhouette:.3f}'} | "
            f"{_pct(row['smallest_cluster_share'])} | {_pct(row['insiders_share'])} | {_pct(row['insiders_revenue_share'])} | "
            f"{_mm(row['seed_ari'])} | {_mm(row['seed_jaccard'])} | {_mm(row['bootstrap_ari'])} | {_mm(row['bootstrap_jaccard'])} |"
        )
    lines += ["", "## 1: finer grids over the year (the four segmentation targets)", "",
              "| as of | split_grid | silhouette | smallest cluster | Insiders | Insiders' customers | Insiders' revenue | all four met |",
              "|---|---|---:|---:|---:|---:|---:|---|"]
    for row in result["grids_over_dates"]:
        lines.append(
            f"| {row['as_of']} | {row['split_grid']} | {row['silhouette']:.3f} | {_pct(row['smallest_cluster_share'])} | "
            f"{row['insiders']:,} | {_pct(row['insiders_share'])} | {_pct(row['insiders_revenue_share'])} | {_verdict(row['misses'])} |"
        )
    lines += _met_counts(result["grids_over_dates"], lambda row: row["misses"])
    lines += ["", "## 2: a size cap on the top cluster", "",
              f"Optimum: the cheapest partition the solver's {STARTS} starts end at (the job's). Capped: the cheapest "
              "of them whose top cluster holds ≤ 10% of the customers; its cost over the optimum's. Bootstrap runs "
              "are compared with the reference of the same kind (optimum with optimum, capped with capped).", ""]
    for grid, rows in result["cap_final_date"].items():
        lines += [f"At the final date, split_grid {grid}:", "",
                  "| run | optimum: Insiders' customers / revenue | ARI | Jaccard | capped: Insiders' customers / revenue | "
                  "cost over optimum | ARI | Jaccard |",
                  "|---|---:|---:|---:|---:|---:|---:|---:|"]
        for row in rows:
            o, c = row["optimum"], row["capped"] or {}
            lines.append(
                f"| {row['run']} | {_pct(o['insiders_share'])} / {_pct(o['insiders_revenue_share'])} | "
                f"{o.get('ari', '–')} | {o.get('insiders_jaccard', '–')} | "
                f"{_pct(c.get('insiders_share'))} / {_pct(c.get('insiders_revenue_share'))} | "
                f"{_pct(c.get('cost_over_optimum'))} | {c.get('ari', '–')} | {c.get('insiders_jaccard', '–')} |"
            )
        lines.append("")
    lines += ["Over the year (capped partition; silhouette exact from the leaf table):", "",
              "| as of | split_grid | capped: Insiders' customers | Insiders' revenue | cost over optimum | silhouette | all four met |",
              "|---|---|---:|---:|---:|---:|---|"]
    for row in result["cap_over_dates"]:
        c = row["capped"]
        if c is None:
            lines.append(f"| {row['as_of']} | {row['split_grid']} | no partition fits the cap | – | – | – | no |")
            continue
        lines.append(
            f"| {row['as_of']} | {row['split_grid']} | {_pct(c['insiders_share'])} | {_pct(c['insiders_revenue_share'])} | "
            f"{_pct(c['cost_over_optimum'])} | {c['silhouette']:.3f} | {_verdict(c['misses'])} |"
        )
    lines += _met_counts(result["cap_over_dates"], lambda row: row["capped"]["misses"] if row["capped"] else ["none fits"])
    return "\n".join(lines) + "\n"


def _met_counts(rows: list[dict], misses) -> list[str]:
    lines = ["", "| split_grid | dates meeting all four |", "|---|---:|"]
    for grid in dict.fromkeys(row["split_grid"] for row in rows):
        mine = [row for row in rows if row["split_grid"] == grid]
        lines.append(f"| {grid} | {sum(1 for row in mine if not misses(row))} of {len(mine)} |")
    return lines


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--input", default=str(DEFAULT_INPUT))
    parser.add_argument("--out", default=str(ROOT / "docs" / "stability_alternatives.md"))
    args = parser.parse_args(argv)
    start_study()
    add_finer_grids()

    started = time.perf_counter()
    base = load_config(env="test", overrides={"input.path": args.input})
    targets = QualityTargets.from_config(base.quality)
    spark = build_spark_session("insiders-stability-alternatives", base.spark)
    try:
        table = prepare_customers(spark, base)
        features = table.features().cache()
        customers = table.summary.with_purchases
        variants = []
        for grid in FINER_GRIDS:
            config = load_config(env="test", overrides={"input.path": args.input, "embedding.split_grid": grid})
            variants.append(leaf_study(f"grid_{grid}", f"split_grid {grid}", features, config=config,
                                       customers=customers, seeds=5, bootstraps=BOOTSTRAPS))
        with born_again_trees():
            variants.append(leaf_study("born_again", "tree fitted to a bagged forest's prediction", features,
                                       config=base, customers=customers, seeds=5, bootstraps=BOOTSTRAPS))
        cap_final = {}
        for grid in ("none", "1-2-5"):
            config = load_config(env="test", overrides={"input.path": args.input, "embedding.split_grid": grid})
            cap_final[grid] = cap_study(features, config=config, customers=customers, targets=targets, bootstraps=BOOTSTRAPS)
        features.unpersist()
        table.unpersist()
        result = {
            "variants": variants,
            "grids_over_dates": grids_over_dates(spark, base, targets=targets, grids=list(FINER_GRIDS)),
            "cap_final_date": cap_final,
            "cap_over_dates": cap_over_dates(spark, base, targets=targets, grids=["none", "1-2-5"]),
        }
        result["meta"] = {"spark": spark.version, "master": spark.sparkContext.master, "date": dt.date.today().isoformat(),
                          "minutes": (time.perf_counter() - started) / 60, "customers": customers, "forest": FOREST}
    finally:
        spark.stop()
    out = Path(args.out)
    out.write_text(render(result))
    out.with_suffix(".json").write_text(json.dumps(result, indent=1, default=str) + "\n")
    log.info("wrote %s", out)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
