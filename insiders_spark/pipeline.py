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
from insiders_spark.clustering import (
    KMEANS_CLUSTER,
    SILHOUETTE_DISTANCE,
    FittedKMeans,
    fit_kmeans,
    silhouette,
    with_kmeans_clusters,
)
from insiders_spark.config import Config
from insiders_spark.embedding import fit_embedding
from insiders_spark.features import (
    CustomerSummary,
    NoCustomersError,
    summarise_customers,
    to_customer_activity,
    to_customer_features,
    with_guest_customer_ids,
)
from insiders_spark.profiles import (
    ClusterProfile,
    build_profiles,
    summarise_clusters,
    to_profiles_frame,
    with_clusters,
)
from insiders_spark.progress import StageTimer
from insiders_spark.schemas import SEGMENTS_SCHEMA

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
    seed = config.job.seed

    with timer.stage("read and aggregate"):
        source = io.read_transactions(spark, config.input, config.synthetic)
        log.info("input: %s (%s%s)", source.description, source.format, _file_count(source.files))
        lines = source.lines.transform(
            to_parsed_lines, timestamp_format=config.input.timestamp_format
        ).transform(with_reason, rules=CleaningRules.from_config(config.cleaning), as_of=as_of)
        observed, observation = observe_outcomes(lines)
        activity = observed.transform(to_customer_activity).cache()
        customers = activity.transform(
            with_guest_customer_ids, start=config.cleaning.guest_customer_id_start
        ).cache()
        summary = summarise_customers(customers)
        accounting = accounting_from(observation)
        accounting.check()
        log.info(
            "rows: %s read, %s kept, %s quarantined, %s after as-of; customers: %s (%s with purchases)",
            f"{accounting.input:,}", f"{accounting.kept:,}", f"{accounting.quarantined_total:,}",
            f"{accounting.after_as_of:,}", f"{summary.customers:,}", f"{summary.with_purchases:,}",
        )
        _check_customers(summary, config.cleaning.guest_customer_id_start, accounting)

    as_of_source = "given" if as_of else "last invoice date in the cleaned log"
    as_of = as_of or summary.last_kept_date
    run_date = run_date or as_of
    run_label = run_date.isoformat()
    outputs: dict[str, str] = {}

    with timer.stage("quarantine"):
        quarantine_path = io.partition_path(output, QUARANTINE, run_label)
        if accounting.quarantined_total:
            outputs[QUARANTINE] = io.write_partition(to_quarantine(lines), output, QUARANTINE, run_label)
        else:
            io.delete_path(spark, quarantine_path)

    with timer.stage("embedding"):
        customer_features = customers.transform(to_customer_features, as_of=as_of).cache()
        embedding = fit_embedding(
            customer_features, config=config.embedding, seed=seed, customers=summary.with_purchases
        )
        embedded = embedding.transform(customer_features).cache()
        embedding_info = embedding.describe()
        activity.unpersist()
        log.info("embedding: %s", embedding_info)

    with timer.stage("clustering"):
        k = config.clustering.k
        kmeans = fit_kmeans(embedded, config=config.clustering, k=k, seed=seed)
        clustered = with_kmeans_clusters(embedded, kmeans).cache()
        silhouette_score = silhouette(clustered)
        log.info("KMeans k=%d: silhouette %.3f (%s)", k, silhouette_score, SILHOUETTE_DISTANCE)

    with timer.stage("profiles"):
        profiles = build_profiles(
            summarise_clusters(clustered, cluster_col=KMEANS_CLUSTER),
            insiders_name=config.segments.insiders_name,
        )
        segments = with_clusters(clustered, profiles, cluster_col=KMEANS_CLUSTER).select(
            *[field.name for field in SEGMENTS_SCHEMA.fields]
        )

    with timer.stage("write"):
        outputs[SEGMENTS] = io.write_partition(segments, output, SEGMENTS, run_label)
        outputs[PROFILES] = io.write_partition(
            to_profiles_frame(spark, profiles), output, PROFILES, run_label
        )

    metrics = _metrics(
        spark,
        config,
        run_date=run_date,
        as_of=as_of,
        as_of_source=as_of_source,
        source=source,
        accounting=accounting,
        summary=summary,
        embedding_info=embedding_info,
        silhouette_score=silhouette_score,
        kmeans=kmeans,
        profiles=profiles,
        durations=timer.durations,
    )
    with timer.stage("report"):
        report_dir = io.partition_path(output, REPORT, run_label)
        title = f"Mean gross revenue per cluster, as of {as_of.isoformat()}"
        io.write_bytes(spark, f"{report_dir}/{report.CHART_FILE}", report.revenue_chart_png(profiles, title=title))
        io.write_text(spark, f"{report_dir}/{report.PROFILES_FILE}", report.profiles_csv(profiles))
        io.write_text(spark, f"{report_dir}/{report.PAGE_FILE}", report.render_page(profiles, metrics))
        outputs[REPORT] = report_dir

    metrics_path = f"{io.partition_path(output, RUNS, run_label)}/{METRICS_FILE}"
    outputs[RUNS] = metrics_path
    metrics["durations_s"] = dict(timer.durations)
    metrics["total_s"] = round(time.perf_counter() - started, 3)
    metrics["outputs"] = dict(outputs)
    io.write_text(spark, metrics_path, json.dumps(metrics, indent=2, sort_keys=False) + "\n")
    for name, path in outputs.items():
        log.info("wrote %s: %s", name, path)
    for frame in (clustered, embedded, customer_features, customers):
        frame.unpersist()
    return RunResult(run_date=run_date, as_of=as_of, profiles=profiles, metrics=metrics, outputs=outputs)


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


def _metrics(
    spark: SparkSession,
    config: Config,
    *,
    run_date: dt.date,
    as_of: dt.date,
    as_of_source: str,
    source: io.RawInput,
    accounting: RowAccounting,
    summary: CustomerSummary,
    embedding_info: dict,
    silhouette_score: float,
    kmeans: FittedKMeans,
    profiles: list[ClusterProfile],
    durations: dict[str, float],
) -> dict:
    insiders = profiles[0]
    return {
        "run_date": run_date.isoformat(),
        "as_of": as_of.isoformat(),
        "as_of_source": as_of_source,
        "input": {
            "description": source.description,
            "format": source.format,
            "files": len(source.files),
            "extra_columns": list(source.extra_columns),
        },
        "rows": accounting.to_dict(),
        "customers": {
            "with_kept_lines": summary.customers,
            "segmented": summary.with_purchases,
            "returns_only": summary.returns_only,
            "guests": summary.guests,
        },
        "features": {"gross_revenue_total": round(sum(p.revenue_total for p in profiles), 2)},
        "embedding": {**embedding_info, "seed": config.job.seed},
        "clustering": {
            "k": config.clustering.k,
            "seed": config.job.seed,
            "silhouette": round(silhouette_score, 4),
            "silhouette_distance": SILHOUETTE_DISTANCE,
            "kmeans_distance": "euclidean",
            "kmeans": kmeans.describe(),
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
        "durations_s": dict(durations),
        "config_hash": config.fingerprint(),
        "versions": _versions(spark),
    }
