"""Where the Spark job's read + aggregation time goes: plans and timed variants on one log.

    python benchmarks/profile_spark.py --input benchmarks/data/2000000 [--env bench] [--repeat 2]
        [--only WORDS] [--jfr FILE]

Each variant is one Spark action over the same input, run to completion into the ``noop`` sink
(nothing written), timed by wall clock and by the JVM's own CPU time (robust when the machine is
shared). Variants isolate one cost each: the scan, the parsing and rules, the ``_metadata``
file-path column, the timestamp parser, the aggregation as written (the distinct counts as set
sizes) against ``count_distinct`` (``Expand``) and against none, the shuffle partition count, the
guest numbering, and ``prepare_customers`` as the job runs it. The package code is used as it is;
the alternatives live here, as proposals. ``--jfr FILE`` records the JVM with Java Flight Recorder
for ``jfr_summary.py`` (``--only prepare --repeat 1`` profiles the job's own step alone).
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import psutil
from pyspark.sql import DataFrame, SparkSession
from pyspark.sql import functions as F
from pyspark.sql import types as T

from insiders_spark.cleaning.accounting import observe_outcomes
from insiders_spark.cleaning.parsing import RAW_PREFIX, LineFormat, blank_to_null, parse_timestamp, to_parsed_lines
from insiders_spark.cleaning.rules import with_reason
from insiders_spark.core.config import load_config
from insiders_spark.core.names import INVOICE_TS, QTY_INVOICES, QTY_PRODUCTS, REASON, RULE_ORDER, TEXT_IDS
from insiders_spark.features.customers import to_customer_activity, with_guest_customer_ids
from insiders_spark.features.table import line_format_of, prepare_customers, read_mapped_input
from insiders_spark.spark.session import build_spark_session


def jvm_cpu_s(spark: SparkSession) -> float:
    """CPU seconds (user + system) used so far by this driver's JVM (a child process)."""
    seconds = 0.0
    for child in psutil.Process().children(recursive=True):
        if child.name() == "java":
            times = child.cpu_times()
            seconds += times.user + times.system
    return seconds


def timed(spark: SparkSession, name: str, action, repeat: int) -> dict:
    walls, cpus = [], []
    for _ in range(repeat):
        cpu, wall = jvm_cpu_s(spark), time.perf_counter()
        action()
        walls.append(time.perf_counter() - wall)
        cpus.append(jvm_cpu_s(spark) - cpu)
    # the fastest repetition: on a shared machine the others measure the neighbours too
    result = {"variant": name, "wall_s": round(min(walls), 2), "jvm_cpu_s": round(min(cpus), 2)}
    print(json.dumps(result), flush=True)
    return result


def noop(frame: DataFrame):
    return lambda: frame.write.format("noop").mode("overwrite").save()


def observe_counts_only(lines: DataFrame) -> DataFrame:
    """The row accounting's per-reason counters alone (no scan of the text fields for U+FFFD)."""
    reason = F.col(REASON)
    return lines.observe(
        "counts_only",
        F.count(F.lit(1)).alias("input"),
        F.count_if(reason.isNull()).alias("kept"),
        *[F.count_if(reason == name).alias(name) for name in RULE_ORDER],
    )


def parse_fast_timestamps(raw: DataFrame, *, line_format: LineFormat) -> DataFrame:
    """``to_parsed_lines`` with ``CAST`` for 19-character ``yyyy-MM-dd HH:mm:ss`` text."""
    text = blank_to_null(F.col(f"{RAW_PREFIX}invoice_date"))
    fast = F.when(F.length(text) == 19, text.cast(T.TimestampType()))
    parsed = raw.transform(to_parsed_lines, line_format=line_format)
    return parsed.withColumn(INVOICE_TS, fast) if line_format.timestamp_format == "yyyy-MM-dd HH:mm:ss" else parsed


def activity_with_expand(lines: DataFrame, *, text_ids: bool) -> DataFrame:
    """``to_customer_activity`` with ``count_distinct`` in place of its set sizes: Spark
    then ``Expand``s every line into three rows (one per distinct column, one for the rest)."""
    return to_customer_activity(lines, text_ids=text_ids, distinct=F.count_distinct)


def activity_without_distinct_counts(lines: DataFrame, *, text_ids: bool) -> DataFrame:
    """The job's aggregation minus its two distinct counts (column pruning drops their sets from
    the aggregate): the floor any rewrite of them can reach."""
    return to_customer_activity(lines, text_ids=text_ids).drop(QTY_INVOICES, QTY_PRODUCTS)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--input", required=True)
    parser.add_argument("--env", default="local")
    parser.add_argument("--conf-dir")
    parser.add_argument("--repeat", type=int, default=2)
    parser.add_argument("--output", type=Path, help="write the results and plans here (JSON)")
    parser.add_argument("--only", help="comma-separated words: run the variants whose names hold one")
    parser.add_argument(
        "--jfr",
        type=Path,
        help="record the JVM with Java Flight Recorder into this .jfr file "
        "(summarise it with benchmarks/jfr_summary.py)",
    )
    args = parser.parse_args(argv)

    config = load_config(args.conf_dir, args.env, overrides={"input.path": args.input})
    started = time.perf_counter()
    spark_conf = dict(config.spark)
    if args.jfr:
        recording = f"-XX:StartFlightRecording=filename={args.jfr.resolve()},settings=profile"
        spark_conf["spark.driver.extraJavaOptions"] = (
            f"{spark_conf.get('spark.driver.extraJavaOptions', '')} {recording}".strip()
        )
    spark = build_spark_session("insiders-profile", spark_conf)
    results = [{"variant": "session start (JVM)", "wall_s": round(time.perf_counter() - started, 2)}]
    try:
        config, source = read_mapped_input(spark, config, as_of=None)
        rules, line_format = config.cleaning, line_format_of(source, config)
        fmt, text_ids = line_format.timestamp_format, source.customer_ids == TEXT_IDS
        raw = source.lines(with_source=True)
        lines = raw.transform(to_parsed_lines, line_format=line_format).transform(
            with_reason, rules=rules, as_of=None, line_format=line_format
        )
        observed, _ = observe_outcomes(lines, decoded_text=source.raw.decoded_text)
        activity = observed.transform(to_customer_activity, text_ids=text_ids)
        plans = {"activity": activity._jdf.queryExecution().executedPlan().toString()}

        wanted = [w.strip() for w in args.only.split(",")] if args.only else []

        def run(name: str, action) -> None:
            if not wanted or name.startswith("warm-up") or any(w in name for w in wanted):
                results.append(timed(spark, name, action, args.repeat))

        run("warm-up (JIT): scan", noop(raw.drop("source_file", "_corrupt_record")))
        run("scan: the canonical columns", noop(raw.drop("source_file", "_corrupt_record")))
        run("scan + the source file column", noop(raw.drop("_corrupt_record")))
        used = raw.select("invoice_date")
        run(
            "timestamp: try_to_timestamp(pattern)",
            noop(used.select(parse_timestamp(F.col("invoice_date"), fmt).alias("ts"))),
        )
        run(
            "timestamp: CAST(trimmed text AS TIMESTAMP) where 19 characters",
            noop(
                used.select(
                    F.when(
                        F.length(F.col("invoice_date")) == 19,
                        blank_to_null(F.col("invoice_date")).cast(T.TimestampType()),
                    )
                )
            ),
        )
        run("scan + parse + rules (reason only)", noop(lines.select(REASON)))
        run("scan + parse + rules + observe as written (reason only)", noop(observed.select(REASON)))
        run(
            "scan + parse + rules + observe without the U+FFFD scan",
            noop(lines.transform(observe_counts_only).select(REASON)),
        )
        for partitions in ("200", "8", "2"):
            spark.conf.set("spark.sql.shuffle.partitions", partitions)
            run(f"activity as written (set sizes), {partitions} shuffle partitions", noop(activity))
        spark.conf.set("spark.sql.shuffle.partitions", config.spark.get("spark.sql.shuffle.partitions", "200"))
        expand = observed.transform(activity_with_expand, text_ids=text_ids)
        plans["activity_with_expand"] = expand._jdf.queryExecution().executedPlan().toString()
        run("activity with count_distinct (Expand)", noop(expand))
        run(
            "activity without the two distinct counts (floor)",
            noop(observed.transform(activity_without_distinct_counts, text_ids=text_ids)),
        )
        spark.conf.set("spark.sql.objectHashAggregate.sortBased.fallbackThreshold", "100000000")
        run("activity as written (set sizes), no sort fallback", noop(activity))
        spark.conf.unset("spark.sql.objectHashAggregate.sortBased.fallbackThreshold")
        no_file = raw.withColumn("source_file", F.lit(None).cast(T.StringType()))
        lean = (
            no_file.transform(parse_fast_timestamps, line_format=line_format)
            .transform(with_reason, rules=rules, as_of=None, line_format=line_format)
            .transform(observe_counts_only)
            .transform(to_customer_activity, text_ids=text_ids)
        )
        plans["activity_lean"] = lean._jdf.queryExecution().executedPlan().toString()
        run("activity as written minus the source file, U+FFFD scan, pattern parser", noop(lean))

        def prepare() -> None:
            table = prepare_customers(spark, config)
            table.unpersist()

        run("prepare_customers as the job runs it (read, rules, accounting, aggregation, guest numbering)", prepare)
        cached = activity.cache()
        run("activity cached (materialise)", lambda: cached.count())
        numbered = cached.transform(with_guest_customer_ids, start=config.cleaning.guest_customer_id_start)
        run("guest numbering over the cached activity", noop(numbered))
        cached.unpersist()
    finally:
        spark.stop()
    report = {"input": args.input, "env": args.env, "spark": config.spark, "results": results, "plans": plans}
    if args.output:
        args.output.write_text(json.dumps(report, indent=2) + "\n")
    for name, plan in plans.items():
        print(f"\n--- physical plan: {name}\n{plan}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
