"""The Spark job's read + aggregation step alone: ``prepare_customers`` + the features.

What the full job does before the segmentation (read, classify, account, aggregate, number the
guests), then the customer features written to ``<output>/features.parquet``, timed the way the
DuckDB step is, in a process of its own (the runner measures its wall time and memory, JVM
included).

Usage: ``python benchmarks/aggregate_spark.py --input DIR --output DIR [--env bench] [--conf-dir DIR]``.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

from insiders_spark.core.config import load_config
from insiders_spark.core.progress import configure_logging
from insiders_spark.features.table import prepare_customers
from insiders_spark.spark.launch import plan_launch
from insiders_spark.spark.session import build_spark_session

FEATURES_DIR = "features.parquet"


def step_arguments(description: str, argv: list[str] | None) -> argparse.Namespace:
    """The options of a Spark step the runner starts: input, output and the configuration profile."""
    parser = argparse.ArgumentParser(description=description)
    parser.add_argument("--input", required=True)
    parser.add_argument("--output", required=True)
    parser.add_argument("--env", default="local", help="configuration profile (default: local)")
    parser.add_argument("--conf-dir", help="folder of configuration profiles (default: the packaged conf/)")
    return parser.parse_args(argv)


def write_metrics(out: Path, metrics: dict) -> None:
    """``<out>/metrics.json``, which the runner reads, and the same on stdout."""
    (out / "metrics.json").write_text(json.dumps(metrics, indent=2) + "\n")
    print(json.dumps(metrics))


def main(argv: list[str] | None = None) -> int:
    args = step_arguments("The Spark job's read + aggregation step alone.", argv)

    started = time.perf_counter()
    config = load_config(args.conf_dir, args.env, overrides={"input.path": args.input, "output.path": args.output})
    configure_logging(config.job.log_level)
    out = Path(args.output)
    out.mkdir(parents=True, exist_ok=True)
    durations: dict[str, float] = {}

    # the JVM starts as the job's does (class archive, quick JIT for small inputs)
    spark = build_spark_session(
        f"{config.job.app_name}-aggregate", config.spark, java_options=plan_launch(config).java_options
    )
    try:
        durations["session"] = round(time.perf_counter() - started, 3)
        mark = time.perf_counter()
        table = prepare_customers(spark, config)
        durations["read and aggregate"] = round(time.perf_counter() - mark, 3)
        mark = time.perf_counter()
        table.features().write.mode("overwrite").parquet(str(out / FEATURES_DIR))
        durations["write features"] = round(time.perf_counter() - mark, 3)
        summary = table.summary
    finally:
        spark.stop()
    metrics = {
        "engine": "spark_aggregate",
        "env": config.env,
        "customers": {"segmented": summary.with_purchases, "guests": summary.guests},
        "durations_s": durations,
        "read_aggregate_s": round(durations["read and aggregate"] + durations["write features"], 3),
        "total_s": round(time.perf_counter() - started, 3),
    }
    write_metrics(out, metrics)
    return 0


if __name__ == "__main__":
    sys.exit(main())
