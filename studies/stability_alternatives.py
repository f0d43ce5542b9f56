"""Three ways to steadier segments, measured on the real log; none is the default.

1. **Finer split grids** (``studies.variants``): the ISO 3 preferred numbers R5 (1, 1.6, 2.5, 4,
   6.3) and R10 (ten steps a decade) instead of 1-2-5, so that the grid's Insiders' boundary can
   move in smaller steps. Measured as the embedding study measures a variant (silhouette,
   Insiders, 5 seed runs and the bootstrap runs, ``studies.embedding_study.leaf_study``) and, as
   ``studies.quality_over_dates`` does, the four segmentation targets at the nine monthly as-of
   dates.
2. **A size cap in the clustering** (``fit_kmeans_to_points(..., insiders_cap=...)``, off in the
   job): of the partitions the local solver's starts end at, the cheapest whose top cluster (by
   mean revenue) holds at most ``quality.insiders_max_share`` of the customers. At the final date,
   without and with the 1-2-5 grid, for the reference and the bootstrap runs (the job's forest
   refits): the Insiders of the optimum and of the capped partition, what the cap costs, and each
   run's agreement with the reference (ARI, Jaccard of the top clusters, no programme cut; the
   capped runs against the capped reference). And the four targets at the nine dates.
3. **A "born-again" tree** (``studies.variants.BornAgain``): the revenue tree fitted to the
   predictions of a bagged forest (50 trees, every feature at every split, depth 8, leaves ≥ 0.2%
   of the customers) rather than to the revenue itself: a smoother label. Measured as in 1.

    python -m studies.stability_alternatives [--bootstraps 20]

--bootstraps: the bootstrap runs (default: the job's, 20; 0 leaves the reference alone in the cap
study). About 15 minutes on 2 cores with 5 bootstrap runs, before the job's forest refits; writes
studies/output/stability_alternatives.md and .json (the findings: docs/studies/stability_alternatives.md).
"""

from __future__ import annotations

import datetime as dt
import json
import logging
import time

from pyspark.sql import DataFrame, SparkSession

from insiders_spark.core.config import Config, load_config
from insiders_spark.evaluation import Contingency, fit_stability_runs
from insiders_spark.evaluation.quality import profile_failures
from insiders_spark.evaluation.stability import BOOTSTRAP, DEFAULT_BOOTSTRAPS, LeafRun, rank_leaf_clusters
from insiders_spark.features import prepare_customers
from insiders_spark.model import fit_kmeans_to_points, leaf_silhouette
from insiders_spark.model.clustering import N_INIT
from insiders_spark.spark import build_spark_session
from studies.common import input_path, start_study, study_parser, write_study
from studies.embedding_study import SEED_VALUE, STUDY_K, leaf_study
from studies.quality_over_dates import measure, over_dates
from studies.split_grids import NAMED_GRIDS, with_split_grid
from studies.variants import BornAgain, Variant

log = logging.getLogger("stability_alternatives")

FINER_GRIDS = ("r5", "r10")
CAPPED_GRIDS = ("none", "1-2-5")
FOREST = BornAgain(trees=50, max_depth=8, feature_subset="all", min_leaf_share=0.002)
SEEDS = 5


def capped_run(run: LeafRun, *, config: Config) -> dict:
    """The optimum and the cheapest partition whose top cluster fits the cap, for one fitted run."""
    points = run.points()
    cap = config.quality.insiders_max_share
    best = fit_kmeans_to_points(points, k=STUDY_K, seed=run.seed, starts=N_INIT)
    capped = fit_kmeans_to_points(points, k=STUDY_K, seed=run.seed, starts=N_INIT, insiders_cap=cap)

    def describe(leaf_clusters: dict[int, int], cost_over_optimum: float) -> dict:
        ranks, profiles = rank_leaf_clusters(run, leaf_clusters, config=config)
        value = leaf_silhouette(points, ranks)
        return {
            "ranks": ranks,
            "insiders_share": round(profiles[0].customer_share, 4),
            "insiders_revenue_share": round(profiles[0].revenue_share, 4),
            "smallest_cluster_share": round(min(p.customer_share for p in profiles), 4),
            "silhouette": round(value, 4),
            "cost_over_optimum": round(cost_over_optimum, 5),
            "misses": profile_failures(config.quality, profiles, silhouette=value),
        }

    outcome = capped.cap
    return {
        "optimum": describe(best.leaf_clusters, 0.0),
        "capped": describe(capped.leaf_clusters, outcome.cost_over_optimum) if outcome.fits else None,
    }


def top_cluster_agreement(run: LeafRun, reference_ranks: dict[int, int], run_ranks: dict[int, int]) -> dict:
    """``run``'s partition against the reference's over every customer (each leaf -> its rank):
    ARI, the Jaccard of the top clusters (rank 1, whole: no programme cut) and the run's top cluster."""
    table = Contingency.from_pairs((reference_ranks[a], run_ranks[b], n) for (a, b), n in run.overlap.items())
    return {
        "ari": round(table.adjusted_rand_index(), 4),
        "insiders_jaccard": round(table.jaccard(1, 1), 4),
        "insiders": table.other_sizes().get(1, 0),
    }


def cap_study(features: DataFrame, *, config: Config, customers: int, bootstraps: int) -> list[dict]:
    """The reference and each bootstrap run (tree ``i`` of the job's forest), optimum and capped."""
    runs = fit_stability_runs(
        features,
        config=config,
        customers=customers,
        seed=SEED_VALUE,
        seeds=0 if bootstraps else 1,
        bootstraps=bootstraps,
    )
    reference = capped_run(runs.reference, config=config)
    rows = [{"run": "reference", **_strip(reference)}]
    for run in (r for r in runs.perturbed if r.kind == BOOTSTRAP):
        mine = capped_run(run, config=config)
        row = {"run": f"bootstrap tree {run.tree_index}", **_strip(mine)}
        for choice in ("optimum", "capped"):
            if mine[choice] and reference[choice]:
                row[choice].update(top_cluster_agreement(run, reference[choice]["ranks"], mine[choice]["ranks"]))
        rows.append(row)
    return rows


def _strip(result: dict) -> dict:
    """``result`` without the leaf ranks (for the page and the JSON)."""
    return {
        k: ({kk: vv for kk, vv in v.items() if kk != "ranks"} if isinstance(v, dict) else v) for k, v in result.items()
    }


def cap_over_dates(spark: SparkSession, config: Config, *, grids: list[str]) -> list[dict]:
    rows = []
    for as_of, customers, grid, features in over_dates(spark, config, grids):
        runs = fit_stability_runs(features, config=config, customers=customers, seed=SEED_VALUE, seeds=1, bootstraps=0)
        rows.append(
            {"as_of": as_of.isoformat(), "split_grid": grid, **_strip(capped_run(runs.reference, config=config))}
        )
        log.info("%s", json.dumps(rows[-1]))
    return rows


def grids_over_dates(spark: SparkSession, config: Config, *, grids: list[str]) -> list[dict]:
    rows = []
    for as_of, customers, grid, features in over_dates(spark, config, grids):
        result = measure(features, config=config, customers=customers, targets=config.quality)
        rows.append({"as_of": as_of.isoformat(), "split_grid": grid, **result})
        log.info("%s", json.dumps(rows[-1]))
    return rows


# --- the page ---------------------------------------------------------------------------------


def _pct(value) -> str:
    return "–" if value is None else f"{value:.1%}"


def _mm(summary) -> str:
    return "–" if not summary else f"{summary['min']:.3f} / {summary['p10']:.3f} / {summary['median']:.3f}"


def _verdict(misses: list[str]) -> str:
    return "yes" if not misses else "no: " + "; ".join(misses)


def render(result: dict) -> str:
    meta = result["meta"]
    lines = [
        "# Three ways to steadier segments, none adopted as the default",
        "",
        f"Real log (UCI Online Retail, CC BY 4.0), k = {STUDY_K}, seed {SEED_VALUE}; Spark {meta['spark']}, "
        f"{meta['master']}; {meta['minutes']:.1f} min on {meta['date']}. Generated by "
        "`python -m studies.stability_alternatives` (its docstring says what each measures). For the default and "
        "the 1-2-5 grid under the same measures see `embedding_study.md` and `quality_over_dates.md`.",
        "",
        "## 1 and 3: finer grids and a born-again tree, at the final date",
        "",
        f"Stability: min / p10 / median of {SEEDS} seed and {meta['bootstraps']} bootstrap runs against the "
        "reference, over every customer (Insiders cut to the programme's size, as the job's).",
        "",
        "| variant | leaves | silhouette | smallest cluster | Insiders' customers | Insiders' revenue | seed ARI | "
        "seed Jaccard | bootstrap ARI | bootstrap Jaccard |",
        "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for row in result["variants"]:
        silhouette = row["silhouette_mllib"] if row["silhouette_mllib"] is not None else row["silhouette_leaf_table"]
        lines.append(
            f"| {row['name']} | {row['leaves']} | {'–' if silhouette is None else f'{silhouette:.3f}'} | "
            f"{_pct(row['smallest_cluster_share'])} | {_pct(row['insiders_share'])} | "
            f"{_pct(row['insiders_revenue_share'])} | {_mm(row['seed_ari'])} | {_mm(row['seed_jaccard'])} | "
            f"{_mm(row['bootstrap_ari'])} | {_mm(row['bootstrap_jaccard'])} |"
        )
    lines += [
        "",
        "## 1: finer grids over the year (the four segmentation targets)",
        "",
        "| as of | split_grid | silhouette | smallest cluster | Insiders | Insiders' customers | Insiders' revenue | "
        "all four met |",
        "|---|---|---:|---:|---:|---:|---:|---|",
    ]
    for row in result["grids_over_dates"]:
        lines.append(
            f"| {row['as_of']} | {row['split_grid']} | {row['silhouette']:.3f} | "
            f"{_pct(row['smallest_cluster_share'])} | {row['insiders']:,} | {_pct(row['insiders_share'])} | "
            f"{_pct(row['insiders_revenue_share'])} | {_verdict(row['misses'])} |"
        )
    lines += _met_counts(result["grids_over_dates"], lambda row: row["misses"])
    lines += [
        "",
        "## 2: a size cap on the top cluster",
        "",
        f"Optimum: the cheapest partition the solver's {N_INIT} starts end at (the job's). Capped: the cheapest "
        "of them whose top cluster holds ≤ 10% of the customers; its cost over the optimum's. Bootstrap runs "
        "are compared with the reference of the same kind (optimum with optimum, capped with capped).",
        "",
    ]
    for grid, rows in result["cap_final_date"].items():
        lines += [
            f"At the final date, split_grid {grid}:",
            "",
            "| run | optimum: Insiders' customers / revenue | ARI | Jaccard | capped: Insiders' customers / revenue | "
            "cost over optimum | ARI | Jaccard |",
            "|---|---:|---:|---:|---:|---:|---:|---:|",
        ]
        for row in rows:
            o, c = row["optimum"], row["capped"] or {}
            lines.append(
                f"| {row['run']} | {_pct(o['insiders_share'])} / {_pct(o['insiders_revenue_share'])} | "
                f"{o.get('ari', '–')} | {o.get('insiders_jaccard', '–')} | "
                f"{_pct(c.get('insiders_share'))} / {_pct(c.get('insiders_revenue_share'))} | "
                f"{_pct(c.get('cost_over_optimum'))} | {c.get('ari', '–')} | {c.get('insiders_jaccard', '–')} |"
            )
        lines.append("")
    lines += [
        "Over the year (capped partition; silhouette exact from the leaf table):",
        "",
        "| as of | split_grid | capped: Insiders' customers | Insiders' revenue | cost over optimum | silhouette | "
        "all four met |",
        "|---|---|---:|---:|---:|---:|---|",
    ]
    for row in result["cap_over_dates"]:
        c = row["capped"]
        if c is None:
            lines.append(f"| {row['as_of']} | {row['split_grid']} | no partition fits the cap | – | – | – | no |")
            continue
        lines.append(
            f"| {row['as_of']} | {row['split_grid']} | {_pct(c['insiders_share'])} | "
            f"{_pct(c['insiders_revenue_share'])} | "
            f"{_pct(c['cost_over_optimum'])} | {c['silhouette']:.3f} | {_verdict(c['misses'])} |"
        )
    lines += _met_counts(
        result["cap_over_dates"], lambda row: row["capped"]["misses"] if row["capped"] else ["none fits"]
    )
    return "\n".join(lines) + "\n"


def _met_counts(rows: list[dict], misses) -> list[str]:
    lines = ["", "| split_grid | dates meeting all four |", "|---|---:|"]
    for grid in dict.fromkeys(row["split_grid"] for row in rows):
        mine = [row for row in rows if row["split_grid"] == grid]
        lines.append(f"| {grid} | {sum(1 for row in mine if not misses(row))} of {len(mine)} |")
    return lines


def main(argv: list[str] | None = None) -> int:
    parser = study_parser("stability_alternatives", __doc__)
    parser.add_argument("--bootstraps", type=int, default=DEFAULT_BOOTSTRAPS)
    args = parser.parse_args(argv)
    start_study()

    started = time.perf_counter()
    config = load_config(env="test", overrides={"input.path": input_path(args)})
    spark = build_spark_session("insiders-stability-alternatives", config.spark)
    try:
        table = prepare_customers(spark, config)
        features = table.features().cache()
        customers = table.summary.with_purchases
        variants = []
        for grid in FINER_GRIDS:
            steps = ", ".join(f"{m:g}" for m in NAMED_GRIDS[grid])
            variants.append(
                leaf_study(
                    f"grid_{grid}",
                    f"split_grid {grid} ({steps} a decade)",
                    features,
                    config=config,
                    customers=customers,
                    seeds=SEEDS,
                    bootstraps=args.bootstraps,
                    variant=Variant(split_grid=grid),
                )
            )
        variants.append(
            leaf_study(
                "born_again",
                "tree fitted to a bagged forest's prediction",
                features,
                config=config,
                customers=customers,
                seeds=SEEDS,
                bootstraps=args.bootstraps,
                variant=Variant(born_again=FOREST),
            )
        )
        cap_final = {
            grid: cap_study(
                with_split_grid(features, grid), config=config, customers=customers, bootstraps=args.bootstraps
            )
            for grid in CAPPED_GRIDS
        }
        features.unpersist()
        table.unpersist()
        result = {
            "variants": variants,
            "grids_over_dates": grids_over_dates(spark, config, grids=list(FINER_GRIDS)),
            "cap_final_date": cap_final,
            "cap_over_dates": cap_over_dates(spark, config, grids=list(CAPPED_GRIDS)),
        }
        result["meta"] = {
            "spark": spark.version,
            "master": spark.sparkContext.master,
            "date": dt.date.today().isoformat(),
            "minutes": (time.perf_counter() - started) / 60,
            "customers": customers,
            "input": config.input.path,
            "forest": FOREST.describe(),
            "seeds": SEEDS,
            "bootstraps": args.bootstraps,
        }
    finally:
        spark.stop()
    write_study(args.out, result, render)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
