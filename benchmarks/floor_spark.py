"""The floor of any Spark job on this machine: a session, one scan, one grouped aggregation.

What a cold ``spark-submit``-like process costs before the job does anything of its own: the
Python imports, the JVM and the session (same profile as the job), then one pass over the raw
log — a ``groupBy`` of the customer id with a count, a revenue sum and the last timestamp, none
of the job's parsing, rules, row accounting, distinct counts, model or outputs — written as
parquet. It is not the job and computes no features; it measures what the job cannot go below
with Spark here: on the real log the bound for P4, at 50M lines the part of P1 that is Spark's
own scan and shuffle.

Usage: ``python benchmarks/floor_spark.py --input PATH --output DIR [--env bench] [--conf-dir DIR]``
(parquet input: a file or a folder of part files).
"""

from __future__ import annotations

import sys
import time
from pathlib import Path

from aggregate_spark import step_arguments, write_metrics  # benchmarks/: this script's folder
from pyspark.sql import DataFrame, SparkSession
from pyspark.sql import functions as F

from insiders_spark.core.config import load_config
from insiders_spark.spark.launch import plan_launch
from insiders_spark.spark.session import build_spark_session
from insiders_spark.storage.synthetic import ONLINE_RETAIL_SCHEMA as RAW_PARQUET_SCHEMA

FLOOR_DIR = "floor.parquet"


def floor_aggregate(spark: SparkSession, path: str) -> DataFrame:
    """The raw log grouped by customer id (null: every line without one): lines, revenue, last timestamp."""
    lines = spark.read.schema(RAW_PARQUET_SCHEMA).parquet(path)
    return lines.groupBy("CustomerID").agg(
        F.count(F.lit(1)).alias("lines"),
        F.sum(F.col("Quantity") * F.col("UnitPrice")).alias("revenue"),
        F.max("InvoiceDate").alias("last_invoice_date"),
    )


def main(argv: list[str] | None = None) -> int:
    started = time.perf_counter()
    args = step_arguments(__doc__.splitlines()[0], argv)

    config = load_config(args.conf_dir, args.env, overrides={"input.path": args.input})
    out = Path(args.output)
    out.mkdir(parents=True, exist_ok=True)
    durations: dict[str, float] = {}
    # the JVM starts as the job's does (class archive, quick JIT for small inputs)
    spark = build_spark_session(
        f"{config.job.app_name}-floor", config.spark, java_options=plan_launch(config).java_options
    )
    try:
        durations["session"] = round(time.perf_counter() - started, 3)
        mark = time.perf_counter()
        floor_aggregate(spark, args.input).write.mode("overwrite").parquet(str(out / FLOOR_DIR))
        durations["read and aggregate"] = round(time.perf_counter() - mark, 3)
    finally:
        spark.stop()
    metrics = {
        "engine": "spark_floor",
        "env": config.env,
        "durations_s": durations,
        "read_aggregate_s": durations["read and aggregate"],
        "total_s": round(time.perf_counter() - started, 3),
    }
    write_metrics(out, metrics)
    return 0


if __name__ == "__main__":
    sys.exit(main())
