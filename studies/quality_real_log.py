"""The quality block of one job run on the real log, with what each step costs.

Runs what the job runs to judge a segmentation, on the default configuration: fit the
segmentation (k = 9), the silhouette (exact, from the leaf table) and its sample cross-check,
stability (seed and bootstrap runs, the reference tree reused) and the k grid; then writes the
report's quality sections, the manifest's blocks (JSON) and the time each step took.

    python -m studies.quality_real_log [--seeds 5] [--bootstraps 20]

About a minute on 2 cores; writes studies/output/quality_real_log.md and .json (the findings:
docs/studies/quality_real_log.md). ``--grid`` measures a split grid of ``studies.variants``
instead of the job's none (the syntax of ``studies.quality_over_dates``; the feature table is
snapped before the job's code sees it), e.g. docs/studies/quality_real_log_items_grid.md:

    python -m studies.quality_real_log --grid decades/qty_items=2 --out studies/output/quality_real_log_items_grid
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from pathlib import Path
from typing import TypeVar

from insiders_spark.core.config import load_config
from insiders_spark.evaluation import check_silhouette, fit_stability_runs, score_grid
from insiders_spark.evaluation.kselection import DEFAULT_GRID
from insiders_spark.evaluation.stability import DEFAULT_BOOTSTRAPS, DEFAULT_SEEDS
from insiders_spark.features import prepare_customers
from insiders_spark.model import fit_segmentation, silhouette_of
from insiders_spark.report import render_quality
from insiders_spark.spark import build_spark_session
from studies.common import input_path, start_study, study_parser
from studies.split_grids import NO_GRID, input_grids, with_split_grid

Result = TypeVar("Result")


def main(argv: list[str] | None = None) -> int:
    parser = study_parser("quality_real_log", __doc__)
    parser.add_argument("--seeds", type=int, default=DEFAULT_SEEDS)
    parser.add_argument("--bootstraps", type=int, default=DEFAULT_BOOTSTRAPS)
    parser.add_argument(
        "--seed",
        type=int,
        default=None,
        help="the reference seed (default: job.seed); the seed runs use the next ones, the bootstraps' samples too",
    )
    parser.add_argument("--grid", default=NO_GRID, help="a split grid, e.g. decades/qty_items=2 (default: none)")
    args = parser.parse_args(argv)
    input_grids(args.grid)  # a mistyped grid fails here, before Spark starts
    start_study()

    config = load_config(env="test", overrides={"input.path": input_path(args), "job.seed": args.seed})
    spark = build_spark_session("insiders-quality-real-log", config.spark)
    seconds: dict[str, float] = {}

    def timed(name: str, call: Callable[[], Result]) -> Result:
        started = time.perf_counter()
        result = call()
        seconds[name] = round(time.perf_counter() - started, 1)
        return result

    try:
        table = timed("prepare_customers", lambda: prepare_customers(spark, config))
        features = with_split_grid(table.features(), args.grid).cache()
        customers = table.summary.with_purchases
        seed, k = config.job.seed, config.clustering.k
        model, clustered = timed(
            "fit_segmentation", lambda: fit_segmentation(features, config=config, customers=customers, k=k, seed=seed)
        )
        exact = timed("silhouette (the job's own: exact, from the leaf table)", lambda: silhouette_of(model))
        check = timed(
            "silhouette sample cross-check",
            lambda: check_silhouette(clustered, customers=customers, seed=seed, mllib=exact),
        )
        runs = timed(
            f"stability runs ({args.seeds} seeds + {args.bootstraps} bootstraps, reference tree reused)",
            lambda: fit_stability_runs(
                features,
                config=config,
                customers=customers,
                seed=seed,
                seeds=args.seeds,
                bootstraps=args.bootstraps,
                reference=model.embedding,
            ),
        )
        stability = timed(f"stability at k={k} (driver)", lambda: runs.stability(k, config=config))
        selection = timed(
            f"k grid {DEFAULT_GRID[0]}..{DEFAULT_GRID[-1]} on the same runs (driver)",
            lambda: score_grid(runs, grid=DEFAULT_GRID, config=config),
        )
        page = render_quality(
            profiles=model.profiles, silhouette=check, stability=stability, selection=selection, targets=config.quality
        )
        timing = ["", "## What it cost", "", "| step | seconds |", "|---|---:|"]
        timing += [f"| {name} | {value:.1f} |" for name, value in seconds.items()]
        gridded = args.grid != NO_GRID
        what = f"the default configuration but the split grid {args.grid}" if gridded else "default configuration"
        title = (
            f"the segmentation on the real log with the split grid {args.grid}"
            if gridded
            else "the default segmentation on the real log"
        )
        command = "python -m studies.quality_real_log" + (f" --grid {args.grid}" if gridded else "")
        header = (
            f"# Quality of {title}\n\n"
            f"{customers:,} customers, as of {table.as_of.isoformat()} (UCI Online Retail, CC BY 4.0); "
            f"{what}, k = {k}, seed {seed}; Spark {spark.version}, {spark.sparkContext.master} "
            f"on a shared 2-core machine. Generated by `{command}`.\n\n"
        )
        out = Path(args.out)
        out.parent.mkdir(parents=True, exist_ok=True)
        Path(args.out + ".md").write_text(header + page + "\n".join(timing) + "\n")
        raw = {
            "input": config.input.path,
            "grid": args.grid,
            "silhouette_check": check.to_dict(),
            "stability": stability.to_dict(),
            "k_selection": selection.to_dict(),
            "seconds": seconds,
        }
        Path(args.out + ".json").write_text(json.dumps(raw, indent=1) + "\n")
        print(Path(args.out + ".md").read_text())
    finally:
        spark.stop()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
