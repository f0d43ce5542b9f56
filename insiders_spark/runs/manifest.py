"""What a run records about itself: its metrics, where it ran, and with what code and data."""

from __future__ import annotations

import datetime as dt
import json
import logging
import platform
from importlib import metadata, resources

from pyspark.sql import SparkSession

from insiders_spark import __version__
from insiders_spark.core.config import Config
from insiders_spark.features.table import CustomerTable
from insiders_spark.model.profiles import ClusterProfile
from insiders_spark.model.silhouette import SILHOUETTE_DISTANCE
from insiders_spark.spark import classic
from insiders_spark.spark.connect import endpoint_of, is_connect
from insiders_spark.spark.messages import explain as explain_error

log = logging.getLogger(__name__)


def run_metrics(
    spark: SparkSession,
    config: Config,
    *,
    run_date: dt.date,
    table: CustomerTable,
    profiles: list[ClusterProfile],
    embedding: dict,
    kmeans: dict,
    silhouette_score: float,
) -> dict:
    insiders = profiles[0]
    return {
        "run_date": run_date.isoformat(),
        "as_of": table.as_of.isoformat(),
        "as_of_source": table.as_of_source,
        "input": input_record(table),
        "rows": table.accounting.to_dict(),
        "customers": {
            "with_kept_lines": table.summary.customers,
            "segmented": table.summary.with_purchases,
            "returns_only": table.summary.returns_only,
            "guests": table.summary.guests,
        },
        "features": {"gross_revenue_total": round(sum(p.revenue_total for p in profiles), 2)},
        "embedding": {**embedding, "seed": config.job.seed},
        "clustering": {
            "k": len(profiles),
            "seed": config.job.seed,
            "silhouette": round(silhouette_score, 4),
            "silhouette_distance": SILHOUETTE_DISTANCE,
            "kmeans_distance": "euclidean",
            "kmeans": kmeans,
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
        "spark": spark_info(spark),
        "config_hash": config.fingerprint(),
        "versions": versions(spark),
    }


def provenance(config: Config, table: CustomerTable) -> dict:
    return {
        "input_files": list(table.source.raw.files),
        "config": config.to_dict(),
        "code_version": code_version(),
    }


def code_version() -> dict:
    """The package version, and the git commit when the code runs from a checkout."""
    import subprocess
    from pathlib import Path

    package = Path(__file__).resolve().parent
    try:
        commit = subprocess.run(
            ["git", "-C", str(package), "rev-parse", "HEAD"], capture_output=True, text=True, timeout=5
        ).stdout.strip()
        dirty = bool(
            subprocess.run(
                ["git", "-C", str(package), "status", "--porcelain", "--", "."],
                capture_output=True,
                text=True,
                timeout=5,
            ).stdout.strip()
        )
    except (OSError, subprocess.SubprocessError):
        commit, dirty = "", False
    if not commit:  # imported from scripts/submit.sh's zip, which records the commit it was built from
        try:
            build = json.loads((resources.files("insiders_spark") / "BUILD.json").read_text())
            commit, dirty = build["git_commit"], build["git_dirty"]
        except (OSError, ValueError, KeyError):
            pass
    return {"package": __version__, "git_commit": commit or None, "git_dirty": dirty if commit else None}


def versions(spark: SparkSession) -> dict[str, str]:
    def version(package: str) -> str:
        try:
            return metadata.version(package)
        except metadata.PackageNotFoundError:
            return "not installed"

    return {
        "insiders_spark": version("insiders-spark"),
        "python": platform.python_version(),
        "spark": spark.version,
        "java": java_version(spark),
        **{name: version(name) for name in ("pyspark", "pandas", "numpy", "pyarrow", "scikit-learn")},
    }


def java_version(spark: SparkSession) -> str | None:
    """The driver JVM's Java version: the Connect server's over Spark Connect, through SQL's
    ``java_method`` (one small job); None where a platform forbids reflection."""
    if not is_connect(spark):
        return classic.java_version(spark)  # no Spark job: every job of a classic run is a stage's
    try:
        return spark.sql("SELECT java_method('java.lang.System', 'getProperty', 'java.version') AS v").first()[0]
    except Exception as error:
        log.warning("could not read the Java version: %s", explain_error(error))
        return None


def spark_info(spark: SparkSession) -> dict:
    """Where the run ran: master, application id and the executors that did the work.

    Classic sessions (``spark.classic.executor_summary``): ``executors`` lists the live block
    managers (the driver included); ``executor_ids`` names every executor that joined the run, the
    driver excluded (so it is empty in local mode), with the tasks each completed;
    ``lost_executors`` those removed before the end (a lost worker) and why. Over Spark Connect the
    client sees no status store: ``connect`` names the server and the executor fields are None.
    """
    where = {"master": spark.conf.get("spark.master", None), "app_id": spark.conf.get("spark.app.id", None)}
    if is_connect(spark):
        unknown = dict.fromkeys(("executors", "executor_ids", "tasks_by_executor", "lost_executors"))
        return {**where, "connect": endpoint_of(spark), **unknown}
    return {**where, **classic.executor_summary(spark)}


def failure_record(error: BaseException, table: CustomerTable) -> dict:
    return {
        "error": explain_error(error),
        "error_type": type(error).__name__,
        "as_of": table.as_of.isoformat(),
        "rows": table.accounting.to_dict(),
    }


def input_record(table: CustomerTable) -> dict:
    """What was read and how: the source, the dataset profile, the column mapping and every absent
    column with its effect, the kind of customer ids, the columns the job does not use."""
    raw, mapped = table.source.raw, table.source
    used = set(mapped.mapping.columns.values())
    dataset = table.config.input.dataset
    detected = table.config.origin is not None and table.config.origin.dataset is not None
    named = dataset not in ("", "none")
    return {
        "description": raw.description,
        "format": raw.format,
        "files": len(raw.files),
        "dataset": {
            "name": dataset if named else None,
            "chosen": "detected from the input's columns" if detected else ("given" if named else None),
        },
        **mapped.describe(),
        "unused_columns": [name for name in raw.columns if name not in used],
        "empty_files": list(raw.empty_files),
    }
