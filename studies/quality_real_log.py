"""The quality block of one job run on the real log, with what each step costs.

Runs what the job runs for issue 7 on the default configuration: fit the segmentation (k = 9),
MLlib's silhouette and the sample cross-check, stability (seed and bootstrap runs) and the k grid,
then prints the report's quality sections and writes the manifest blocks as JSON.

    SPARK_LOCAL_IP=127.0.0.1 python benchmarks/quality_real_log.py [--seeds 5] [--bootstraps 3]

Output: docs/quality_real_log.md and docs/quality_real_log.json (timings included). ``--grid``
measures a split-grid setting instead of the default (the syntax of quality_over_dates.py), e.g.

    python benchmarks/quality_real_log.py --grid decades/qty_items=2 --bootstraps 5 \
        --out docs/quality_real_log_items_grid.md
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

from quality_over_dates import grid_overrides
from real_log_study import DEFAULT_INPUT, start_study

from insiders_spark.core.config import load_config
from insiders_spark.evaluation.kselection import DEFAULT_GRID, score_grid
from insiders_spark.evaluation.quality import check_silhouette
from insiders_spark.evaluation.stability import fit_stability_runs
from insiders_spark.features.table import prepare_customers
from insiders_spark.model.segmentation import fit_segmentation, silhouette_of
from insiders_spark.report.quality import render_quality
from insiders_spark.spark.session import build_spark_session

ROOT = Path(__file__).resolve().parents[1]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--input", default=str(DEFAULT_INPUT))
    parser.add_argument("--seeds", type=int, default=5)
    parser.add_argument("--bootstraps", type=int, default=3)
    parser.add_argument("--seed", type=int, default=None, help="the reference seed (default: job.seed); "
                        "the seed runs use the next ones, the bootstraps' samples too")
    parser.add_argument("--grid", default="", help="a split-grid setting, e.g. decades/qty_items=2 (default: none)")
    parser.add_argument("--out", default=str(ROOT / "docs" / "quality_real_log.md"))
    args = parser.parse_args(argv)
    start_study()

    grid = grid_overrides(args.grid) if args.grid else {}
    config = load_config(env="test", overrides={"input.path": args.input, "job.seed": args.seed, **grid})
    spark = build_spark_session("insiders-quality-real-log", config.spark)
    seconds: dict[str, float] = {}

    def timed(name, call):
        started = time.perf_counter()
        result = call()
        seconds[name] = round(time.perf_counter() - started, 1)
        return result

    try:
        table = timed("prepare_customers", lambda: prepare_customers(spark, config))
        features = table.features().cache()
        customers = table.summary.with_purchases
        seed, k = config.job.seed, config.clustering.k
        model, clustered = timed(
            "fit_segmentation", lambda: fit_segmentation(features, config=config, customers=customers, k=k, seed=seed)
        )
        mllib = timed("silhouette (the job's own: exact, from the leaf table)", lambda: silhouette_of(model))
        check = timed(
            "silhouette sample cross-check",
            lambda: check_silhouette(clustered, customers=customers, seed=seed, mllib=mllib),
        )
        runs = timed(
            f"stability runs ({args.seeds} seeds + {args.bootstraps} bootstraps, reference tree reused)",
            lambda: fit_stability_runs(
                features, config=config, customers=customers, seed=seed, seeds=args.seeds,
                bootstraps=args.bootstraps, reference=model.embedding,
            ),
        )
        stability = timed(f"stability at k={k} (driver)", lambda: runs.stability(k, config=config))
        selection = timed(
            f"k grid {DEFAULT_GRID[0]}..{DEFAULT_GRID[-1]} on the same runs (driver)",
            lambda: score_grid(runs, grid=DEFAULT_GRID, config=config),
        )
        page = render_quality(profiles=model.profiles, silhouette=check, stability=stability, selection=selection)
        timing = ["", "## What it cost", "", "| step | seconds |", "|---|---:|"]
        timing += [f"| {name} | {value:.1f} |" for name, value in seconds.items()]
        out = Path(args.out)
        out.parent.mkdir(parents=True, exist_ok=True)
        what = f"the default configuration but the split grid {args.grid}" if args.grid else "default configuration"
        title = f"the segmentation on the real log with the split grid {args.grid}" if args.grid else "the default segmentation on the real log"
        header = (
            f"# Quality of {title}\n\n"
            f"{customers:,} customers, as of {table.as_of.isoformat()} (UCI Online Retail, CC BY 4.0); "
            f"{what}, k = {k}, seed {seed}; Spark {spark.version}, {spark.sparkContext.master} "
            "on a shared 2-core machine. Generated by `benchmarks/quality_real_log.py`.\n\n"
        )
        out.write_text(header + page + "\n".join(timing) + "\n")
        out.with_suffix(".json").write_text(
            json.dumps(
                {
                    "silhouette_check": check.to_dict(),
                    "stability": stability.to_dict(),
                    "k_selection": selection.to_dict(),
                    "seconds": seconds,
                },
                indent=1,
            )
            + "\n"
        )
        print(out.read_text())
    finally:
        spark.stop()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
