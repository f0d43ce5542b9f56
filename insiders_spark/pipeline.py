"""The job, as a table of contents: read, clean, aggregate, embed, cluster, profile, write."""

from __future__ import annotations

import datetime as dt
import json
import logging
import platform
import time
import uuid
from dataclasses import dataclass, field
from importlib import metadata

from pyspark.sql import DataFrame, SparkSession

from insiders_spark import io, report
from insiders_spark.accounting import RowAccounting, accounting_from, observe_outcomes, validate_limits
from insiders_spark.cleaning import CleaningRules, to_parsed_lines, to_quarantine, with_reason
from insiders_spark.clustering import SILHOUETTE_DISTANCE
from insiders_spark.config import Config
from insiders_spark.errors import explain
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
    accounting = accounting_from(observation, lines)
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


class RunFailedError(RuntimeError):
    """A run that stopped before publishing; live outputs are untouched."""

    def __init__(self, message: str, failed_outputs: str | None) -> None:
        where = f" The failed run's staged outputs are kept under {failed_outputs}." if failed_outputs else ""
        super().__init__(message + where)
        self.failed_outputs = failed_outputs


def run(
    spark: SparkSession,
    config: Config,
    *,
    run_date: dt.date | None = None,
    as_of: dt.date | None = None,
) -> RunResult:
    """Segment the customers of the configured log; publish segments, profiles, metrics, report.

    Every output is staged and published together at the end (``io.RunOutputs``): a run that fails,
    or is killed, leaves the previously published partitions exactly as they were.
    """
    started = time.perf_counter()
    timer = StageTimer(log)
    output = config.output.path
    validate_limits(config.quarantine)
    for run_id in io.recover_interrupted_commits(spark, output):
        log.warning("cleaned up after an earlier run that did not finish: %s", run_id)

    with timer.stage("read and aggregate"):
        table = prepare_customers(spark, config, as_of=as_of)
    run_date = run_date or table.as_of
    run_label = run_date.isoformat()
    run_id = f"{run_label}_{dt.datetime.now(dt.timezone.utc):%Y%m%dT%H%M%SZ}_{uuid.uuid4().hex[:8]}"
    outputs = io.RunOutputs(spark, output, run_label, run_id)
    try:
        return _segment_and_publish(spark, config, table, outputs, timer, started)
    except Exception as error:
        failed = outputs.fail()
        if failed:
            io.write_text(spark, f"{failed}/failure.json", json.dumps(_failure(error, table), indent=2) + "\n")
        raise RunFailedError(explain(error), failed) from error
    finally:
        table.unpersist()


def _segment_and_publish(
    spark: SparkSession,
    config: Config,
    table: CustomerTable,
    outputs: io.RunOutputs,
    timer: StageTimer,
    started: float,
) -> RunResult:
    published: dict[str, str] = {}
    with timer.stage("quarantine"):
        if table.accounting.quarantined_total:
            published[QUARANTINE] = outputs.write_table(to_quarantine(table.lines), QUARANTINE)
        else:
            outputs.clear_table(QUARANTINE)
        if table.accounting.undecodable:
            log.warning(
                "%s lines hold text that is not valid %s (shown as U+FFFD): is the input in another "
                "encoding (e.g. --encoding ISO-8859-1)?",
                f"{table.accounting.undecodable:,}", config.input.encoding,
            )
        table.accounting.check_thresholds(config.quarantine)

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
        published[SEGMENTS] = outputs.write_table(to_segments(clustered, model.profiles), SEGMENTS)
        published[PROFILES] = outputs.write_table(to_profiles_frame(spark, model.profiles), PROFILES)

    metrics = _metrics(
        spark, config, run_date=dt.date.fromisoformat(outputs.run_date), table=table, model=model,
        silhouette_score=silhouette_score,
    )
    with timer.stage("report"):
        title = f"Mean gross revenue per cluster, as of {table.as_of.isoformat()}"
        outputs.write_file(REPORT, report.CHART_FILE, report.revenue_chart_png(model.profiles, title=title))
        outputs.write_file(REPORT, report.PROFILES_FILE, report.profiles_csv(model.profiles))
        outputs.write_file(REPORT, report.PAGE_FILE, report.render_page(model.profiles, metrics))
        published[REPORT] = outputs.live_partition(REPORT)

    published[RUNS] = f"{outputs.live_partition(RUNS)}/{METRICS_FILE}"
    metrics["run_id"] = outputs.run_id
    metrics["durations_s"] = dict(timer.durations)
    metrics["total_s"] = round(time.perf_counter() - started, 3)
    metrics["outputs"] = dict(published)
    outputs.write_file(RUNS, METRICS_FILE, json.dumps(metrics, indent=2) + "\n")
    outputs.commit(last=RUNS)
    for name, path in published.items():
        log.info("published %s: %s", name, path)
    for frame in (clustered, features):
        frame.unpersist()
    return RunResult(
        run_date=dt.date.fromisoformat(outputs.run_date),
        as_of=table.as_of,
        profiles=model.profiles,
        metrics=metrics,
        outputs=published,
    )


def _failure(error: BaseException, table: CustomerTable) -> dict:
    return {
        "error": explain(error),
        "error_type": type(error).__name__,
        "as_of": table.as_of.isoformat(),
        "rows": table.accounting.to_dict(),
    }


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
    """Where the run ran: master, application id and the executors that did the work.

    ``executors`` lists the live block managers (the driver included). ``executor_ids`` names every
    executor that joined the run, the driver excluded (so it is empty in local mode), with the tasks
    each completed; ``lost_executors`` those removed before the end (a lost worker) and why. They
    come from Spark's status store, the data behind the UI, which remembers removed executors.
    """
    context = spark.sparkContext
    executors = sorted(
        {f"{info.host()}:{info.port()}" for info in context._jsc.sc().statusTracker().getExecutorInfos()}
    )
    summaries = context._jsc.sc().statusStore().executorList(False)
    joined = [summaries.apply(index) for index in range(summaries.size())]
    joined = sorted((s for s in joined if s.id() != "driver"), key=lambda s: (len(s.id()), s.id()))  # "2" < "10"
    return {
        "master": context.master,
        "app_id": context.applicationId,
        "executors": executors,
        "executor_ids": [s.id() for s in joined],
        "tasks_by_executor": {s.id(): s.completedTasks() for s in joined},
        "lost_executors": [
            {"id": s.id(), "host_port": s.hostPort(), "reason": s.removeReason().get() if s.removeReason().isDefined() else None}
            for s in joined
            if not s.isActive()
        ],
    }


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
            "empty_files": list(table.source.empty_files),
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
