"""The job, as a table of contents: read, clean, aggregate, embed, cluster, profile, write."""

from __future__ import annotations

import datetime as dt
import json
import logging
import platform
import time
from dataclasses import dataclass, field
from importlib import metadata

from pyspark.sql import DataFrame, SparkSession

from insiders_spark import io, report
from insiders_spark.accounting import RowAccounting, accounting_from, observe_outcomes
from insiders_spark.cleaning import CleaningRules, to_parsed_lines, to_quarantine, with_reason
from insiders_spark.clustering import SILHOUETTE_DISTANCE
from insiders_spark.config import Config
from insiders_spark.features import (
    CustomerSummary,
    NoCustomersError,
    summarise_customers,
    to_customer_activity,
    to_customer_features,
    with_guest_customer_ids,
)
from insiders_spark.profiles import ClusterProfile, to_profiles_frame
from insiders_spark.progress import StageTimer
from insiders_spark.segmentation import SegmentationModel, fit_segmentation, silhouette_of, to_segments

log = logging.getLogger(__name__)

SEGMENTS = "segments"
PROFILES = "profiles"
QUARANTINE = "quarantine"
RUNS = "runs"
REPORT = "report"
METRICS_FILE = "metrics.json"


class DuplicateCustomerIdError(ValueError):
    """Guest numbers collide with real customer ids."""


@dataclass(frozen=True)
class RunResult:
    run_date: dt.date
    as_of: dt.date
    profiles: list[ClusterProfile]
    metrics: dict
    outputs: dict[str, str] = field(default_factory=dict)


@dataclass(frozen=True)
class CustomerTable:
    """The log read, classified, accounted for and aggregated per customer."""

    source: io.RawInput
    lines: DataFrame  # every input line with its reason (lazy; read again for the quarantine)
    customers: DataFrame  # one row per customer or guest invoice, numbered (cached)
    summary: CustomerSummary
    accounting: RowAccounting
    as_of: dt.date
    as_of_source: str

    def features(self) -> DataFrame:
        return self.customers.transform(to_customer_features, as_of=self.as_of)

    def unpersist(self) -> None:
        self.customers.unpersist()


def prepare_customers(spark: SparkSession, config: Config, *, as_of: dt.date | None = None) -> CustomerTable:
    """Read the configured log, classify every line, aggregate customers and check the accounting.

    One Spark job reads the input: it aggregates the customers and, through ``observe``, counts
    every line's outcome. ``as_of`` defaults to the last invoice date among the kept lines.
    """
    source = io.read_transactions(spark, config.input, config.synthetic)
    log.info("input: %s (%s%s)", source.description, source.format, _file_count(source.files))
    lines = source.lines.transform(to_parsed_lines, timestamp_format=config.input.timestamp_format).transform(
        with_reason, rules=CleaningRules.from_config(config.cleaning), as_of=as_of
    )
    observed, observation = observe_outcomes(lines)
    activity = observed.transform(to_customer_activity).cache()
    customers = activity.transform(with_guest_customer_ids, start=config.cleaning.guest_customer_id_start).cache()
    summary = summarise_customers(customers)
    activity.unpersist()
    accounting = accounting_from(observation)
    accounting.check()
    log.info(
        "rows: %s read, %s kept, %s quarantined, %s after as-of; customers: %s (%s with purchases)",
        f"{accounting.input:,}", f"{accounting.kept:,}", f"{accounting.quarantined_total:,}",
        f"{accounting.after_as_of:,}", f"{summary.customers:,}", f"{summary.with_purchases:,}",
    )
    _check_customers(summary, config.cleaning.guest_customer_id_start, accounting)
    return CustomerTable(
        source=source,
        lines=lines,
        customers=customers,
        summary=summary,
        accounting=accounting,
        as_of=as_of or summary.last_kept_date,
        as_of_source="given" if as_of else "last invoice date in the cleaned log",
    )


def run(
    spark: SparkSession,
    config: Config,
    *,
    run_date: dt.date | None = None,
    as_of: dt.date | None = None,
) -> RunResult:
    """Segment the customers of the configured log and write segments, profiles, metrics, report."""
    started = time.perf_counter()
    timer = StageTimer(log)
    output = config.output.path

    with timer.stage("read and aggregate"):
        table = prepare_customers(spark, config, as_of=as_of)
    run_date = run_date or table.as_of
    run_label = run_date.isoformat()
    outputs: dict[str, str] = {}

    with timer.stage("quarantine"):
        if table.accounting.quarantined_total:
            outputs[QUARANTINE] = io.write_partition(to_quarantine(table.lines), output, QUARANTINE, run_label)
        else:
            io.delete_path(spark, io.partition_path(output, QUARANTINE, run_label))

    with timer.stage("segmentation"):
        features = table.features().cache()
        model, clustered = fit_segmentation(
            features,
            config=config,
            customers=table.summary.with_purchases,
            k=config.clustering.k,
            seed=config.job.seed,
        )
        log.info("embedding: %s; KMeans: %s", model.embedding.describe(), model.kmeans.describe())

    with timer.stage("silhouette"):
        silhouette_score = silhouette_of(clustered)
        log.info("KMeans k=%d: silhouette %.3f (%s)", model.k, silhouette_score, SILHOUETTE_DISTANCE)

    with timer.stage("write"):
        segments = to_segments(clustered, model.profiles)
        outputs[SEGMENTS] = io.write_partition(segments, output, SEGMENTS, run_label)
        outputs[PROFILES] = io.write_partition(
            to_profiles_frame(spark, model.profiles), output, PROFILES, run_label
        )

    metrics = _metrics(
        spark,
        config,
        run_date=run_date,
        table=table,
        model=model,
        silhouette_score=silhouette_score,
    )
    with timer.stage("report"):
        report_dir = io.partition_path(output, REPORT, run_label)
        title = f"Mean gross revenue per cluster, as of {table.as_of.isoformat()}"
        io.write_bytes(spark, f"{report_dir}/{report.CHART_FILE}", report.revenue_chart_png(model.profiles, title=title))
        io.write_text(spark, f"{report_dir}/{report.PROFILES_FILE}", report.profiles_csv(model.profiles))
        io.write_text(spark, f"{report_dir}/{report.PAGE_FILE}", report.render_page(model.profiles, metrics))
        outputs[REPORT] = report_dir

    metrics_path = f"{io.partition_path(output, RUNS, run_label)}/{METRICS_FILE}"
    outputs[RUNS] = metrics_path
    metrics["durations_s"] = dict(timer.durations)
    metrics["total_s"] = round(time.perf_counter() - started, 3)
    metrics["outputs"] = dict(outputs)
    io.write_text(spark, metrics_path, json.dumps(metrics, indent=2) + "\n")
    for name, path in outputs.items():
        log.info("wrote %s: %s", name, path)
    for frame in (clustered, features):
        frame.unpersist()
    table.unpersist()
    return RunResult(run_date=run_date, as_of=table.as_of, profiles=model.profiles, metrics=metrics, outputs=outputs)


def _file_count(files: tuple[str, ...]) -> str:
    return f", {len(files)} file{'s' if len(files) != 1 else ''}" if files else ""


def _check_customers(summary: CustomerSummary, guest_start: int, accounting: RowAccounting) -> None:
    if summary.with_purchases == 0:
        raise NoCustomersError(
            f"no customer has a kept purchase: {accounting.input:,} lines read, {accounting.kept:,} kept, "
            f"{accounting.quarantined_total:,} set aside ({_top_reasons(accounting)}); check the input "
            "and the cleaning settings"
        )
    if summary.distinct_ids != summary.customers:
        raise DuplicateCustomerIdError(
            f"guest invoices numbered from {guest_start} collide with real customer ids "
            f"({summary.customers - summary.distinct_ids:,} duplicates); set "
            "cleaning.guest_customer_id_start above the largest customer id in the log"
        )


def _top_reasons(accounting: RowAccounting) -> str:
    ranked = sorted(accounting.quarantined.items(), key=lambda item: -item[1])[:3]
    return ", ".join(f"{name}: {count:,}" for name, count in ranked) or "none"


def _versions(spark: SparkSession) -> dict[str, str]:
    def version(package: str) -> str:
        try:
            return metadata.version(package)
        except metadata.PackageNotFoundError:
            return "not installed"

    return {
        "insiders_spark": version("insiders-spark"),
        "python": platform.python_version(),
        "spark": spark.version,
        "java": spark.sparkContext._jvm.System.getProperty("java.version"),
        **{name: version(name) for name in ("pyspark", "pandas", "numpy", "pyarrow", "scikit-learn")},
    }


def _spark_info(spark: SparkSession) -> dict:
    """Where the run ran: master, application id and the executors that did the work."""
    context = spark.sparkContext
    executors = sorted(
        {f"{info.host()}:{info.port()}" for info in context._jsc.sc().statusTracker().getExecutorInfos()}
    )
    return {"master": context.master, "app_id": context.applicationId, "executors": executors}


def _metrics(
    spark: SparkSession,
    config: Config,
    *,
    run_date: dt.date,
    table: CustomerTable,
    model: SegmentationModel,
    silhouette_score: float,
) -> dict:
    profiles = model.profiles
    insiders = profiles[0]
    return {
        "run_date": run_date.isoformat(),
        "as_of": table.as_of.isoformat(),
        "as_of_source": table.as_of_source,
        "input": {
            "description": table.source.description,
            "format": table.source.format,
            "files": len(table.source.files),
            "extra_columns": list(table.source.extra_columns),
        },
        "rows": table.accounting.to_dict(),
        "customers": {
            "with_kept_lines": table.summary.customers,
            "segmented": table.summary.with_purchases,
            "returns_only": table.summary.returns_only,
            "guests": table.summary.guests,
        },
        "features": {"gross_revenue_total": round(sum(p.revenue_total for p in profiles), 2)},
        "embedding": {**model.embedding.describe(), "seed": config.job.seed},
        "clustering": {
            "k": model.k,
            "seed": config.job.seed,
            "silhouette": round(silhouette_score, 4),
            "silhouette_distance": SILHOUETTE_DISTANCE,
            "kmeans_distance": "euclidean",
            "kmeans": model.kmeans.describe(),
        },
        "insiders": {
            "cluster": insiders.cluster,
            "segment": insiders.segment,
            "customers": insiders.customers,
            "customer_share": round(insiders.customer_share, 4),
            "revenue_share": round(insiders.revenue_share, 4),
        },
        "clusters": [
            {
                "cluster": p.cluster,
                "segment": p.segment,
                "customers": p.customers,
                "customer_share": round(p.customer_share, 4),
                "revenue_share": round(p.revenue_share, 4),
                "gross_revenue_mean": round(p.gross_revenue_mean, 2),
            }
            for p in profiles
        ],
        "spark": _spark_info(spark),
        "config_hash": config.fingerprint(),
        "versions": _versions(spark),
    }
