"""Checks of the effective configuration that its types alone do not make: ranges, choices, names.

A value a run would fail on later fails at start-up instead, with a message naming the key.
"""

from __future__ import annotations

import datetime as dt
import logging
import re
from collections.abc import Mapping
from urllib.parse import urlsplit

from insiders_spark.core.errors import ConfigError
from insiders_spark.core.names import CANONICAL_COLUMNS, FREQUENT_RETURNERS, MODEL_SCORERS, NAMES, QUARANTINE_REASONS
from insiders_spark.core.progress import LOG_FORMATS
from insiders_spark.core.sections import Config

INPUT_FORMATS = ("auto", "csv", "parquet", "json", "orc")
CUSTOMER_ID_KINDS = ("auto", "number", "text")
CLV_SAMPLE_ROWS = (100, 1_000_000)  # backtest.clv_sample_rows: enough to fit, few enough for the driver
PUBLISHING = ("auto", "rename", "pointer")
CHOICES: dict[str, tuple[str, ...]] = {
    "job.log_format": LOG_FORMATS,
    "input.format": INPUT_FORMATS,
    "input.customer_ids": CUSTOMER_ID_KINDS,
    "control.scope": ("insiders", "all"),
    "output.publishing": PUBLISHING,
}
DATABASE_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]*(\.[A-Za-z_][A-Za-z0-9_]*)?")  # db, or catalog.schema


def check_columns(columns: Mapping[str, str], where: str = "input.columns") -> None:
    """A column mapping names canonical columns only, each to a different, non-empty source column."""
    unknown = sorted(set(columns) - set(CANONICAL_COLUMNS))
    if unknown:
        raise ConfigError(
            f"{where}: unknown column name(s) {', '.join(unknown)} (the job's columns: {', '.join(CANONICAL_COLUMNS)})"
        )
    empty = sorted(name for name, source in columns.items() if not str(source).strip())
    if empty:
        raise ConfigError(f"{where}: {', '.join(empty)} mapped to an empty source column name")
    by_source: dict[str, list[str]] = {}
    for name, source in columns.items():
        by_source.setdefault(str(source).strip(), []).append(name)
    shared = {source: names for source, names in by_source.items() if len(names) > 1}
    if shared:
        source, names = next(iter(sorted(shared.items())))
        raise ConfigError(f"{where}: source column {source!r} is mapped twice ({', '.join(sorted(names))})")


def validate(config: Config) -> None:
    plain = config.to_dict()
    if not isinstance(logging.getLevelName(config.job.log_level.upper()), int):
        raise ConfigError(
            f"job.log_level = {config.job.log_level!r}: expected one of DEBUG, INFO, WARNING, ERROR, CRITICAL"
        )
    unknown = sorted(set(config.quarantine.max_share_by_reason) - set(QUARANTINE_REASONS))
    if unknown:
        raise ConfigError(
            f"quarantine.max_share_by_reason: unknown reason(s) {', '.join(unknown)} "
            f"(reasons: {', '.join(QUARANTINE_REASONS)})"
        )
    check_columns(config.input.columns)
    if config.input.path and config.input.table:
        raise ConfigError(
            f"input.path = {config.input.path!r} and input.table = {config.input.table!r}: read files or a table, "
            "not both"
        )
    if config.segments.insiders_name in {*NAMES.values(), FREQUENT_RETURNERS}:
        raise ConfigError(
            f"segments.insiders_name = {config.segments.insiders_name!r}: a name the other clusters can earn "
            "(the Insiders would then be renamed to tell them apart); choose another"
        )
    for dotted, allowed in CHOICES.items():
        section, key = dotted.split(".")
        value = plain[section][key]
        if value not in allowed:
            raise ConfigError(f"{dotted} = {value!r}: expected one of {', '.join(allowed)}")
    if config.clustering.k < 2:
        raise ConfigError(f"clustering.k = {config.clustering.k}: at least 2 clusters are needed")
    if config.embedding.max_depth < 1:
        raise ConfigError(f"embedding.max_depth = {config.embedding.max_depth}: must be at least 1")
    if not 0.0 <= config.embedding.min_leaf_share < 0.5:
        raise ConfigError(f"embedding.min_leaf_share = {config.embedding.min_leaf_share}: expected 0 <= share < 0.5")
    shares = {"quarantine.max_share": config.quarantine.max_share} | {
        f"quarantine.max_share_by_reason.{reason}": share
        for reason, share in config.quarantine.max_share_by_reason.items()
    }
    for name, share in shares.items():
        if not 0.0 <= share <= 1.0:
            raise ConfigError(f"{name} = {share}: expected a share between 0 and 1")
    if config.refresh.insider_hysteresis_runs < 1:
        raise ConfigError(
            f"refresh.insider_hysteresis_runs = {config.refresh.insider_hysteresis_runs}: "
            "at least 1 (1 = no hysteresis)"
        )
    if not config.clustering.k_grid or min(config.clustering.k_grid) < 2:
        raise ConfigError(f"clustering.k_grid = {list(config.clustering.k_grid)}: values of k, each at least 2")
    quality = config.quality
    if quality.silhouette_sample_rows < 2:
        raise ConfigError(f"quality.silhouette_sample_rows = {quality.silhouette_sample_rows}: at least 2")
    if quality.stability_seeds < 0 or quality.stability_bootstraps < 0:
        raise ConfigError("quality.stability_seeds and quality.stability_bootstraps: 0 or more runs each")
    if (
        quality.stability or config.clustering.select_k
    ) and quality.stability_seeds + quality.stability_bootstraps == 0:
        raise ConfigError(
            "quality.stability_seeds + quality.stability_bootstraps = 0: stability (and --k auto) "
            "needs at least one run"
        )
    shares = {
        "quality.min_cluster_share": quality.min_cluster_share,
        "quality.insiders_max_share": quality.insiders_max_share,
        "quality.insiders_min_revenue_share": quality.insiders_min_revenue_share,
        "control.share": config.control.share,
        "segments.programme_share": config.segments.programme_share,
    } | {f"backtest.head_count_shares[{i}]": s for i, s in enumerate(config.backtest.head_count_shares)}
    for name, share in shares.items():
        if not 0.0 <= share <= 1.0:
            raise ConfigError(f"{name} = {share}: expected a share between 0 and 1")
    if config.segments.programme_share <= 0.0:
        raise ConfigError(
            f"segments.programme_share = {config.segments.programme_share}: the programme needs room for "
            "some Insiders (a share above 0, at most 1)"
        )
    if not config.control.salt:
        raise ConfigError("control.salt is empty: set one (a new salt draws a new control group)")
    if config.backtest.horizon_days < 0:
        raise ConfigError(f"backtest.horizon_days = {config.backtest.horizon_days}: 0 (off) or a number of days")
    if not CLV_SAMPLE_ROWS[0] <= config.backtest.clv_sample_rows <= CLV_SAMPLE_ROWS[1]:
        raise ConfigError(
            f"backtest.clv_sample_rows = {config.backtest.clv_sample_rows}: expected {CLV_SAMPLE_ROWS[0]:,} to "
            f"{CLV_SAMPLE_ROWS[1]:,} customers (the fits need repeat buyers; the rows reach the driver)"
        )
    if 0.0 in config.backtest.head_count_shares:
        raise ConfigError("backtest.head_count_shares: every head-count must be above 0")
    if config.backtest.horizon_days:
        unknown = sorted(set(config.backtest.scorers) - set(MODEL_SCORERS))
        if unknown:
            raise ConfigError(f"backtest.scorers: unknown {', '.join(unknown)} (known: {', '.join(MODEL_SCORERS)})")
    if config.backtest.cutoff:
        try:
            dt.date.fromisoformat(config.backtest.cutoff)
        except ValueError:
            raise ConfigError(f"backtest.cutoff = {config.backtest.cutoff!r}: expected a date, YYYY-MM-DD") from None
    if config.launch.quick_jit_max_bytes < 0:
        raise ConfigError(
            f"launch.quick_jit_max_bytes = {config.launch.quick_jit_max_bytes}: 0 (never) or a size in bytes"
        )
    tracking = config.tracking
    if tracking.mlflow_uri != tracking.mlflow_uri.strip() or any(c.isspace() for c in tracking.mlflow_uri):
        raise ConfigError(f"tracking.mlflow_uri = {tracking.mlflow_uri!r}: a URI has no spaces")
    if urlsplit(tracking.mlflow_uri).password:
        raise ConfigError(
            "tracking.mlflow_uri holds a password, and every manifest records the configuration: give it in "
            "MLFLOW_TRACKING_PASSWORD (or MLFLOW_TRACKING_TOKEN) instead"
        )
    if tracking.mlflow_uri and not tracking.experiment.strip():
        raise ConfigError("tracking.experiment is empty: name the MLflow experiment (and registered model)")
    if config.output.retention_days < 0:
        raise ConfigError(f"output.retention_days = {config.output.retention_days}: 0 or more days")
    database = config.output.catalog_database
    if database and not DATABASE_NAME.fullmatch(database):
        raise ConfigError(
            f"output.catalog_database = {database!r}: expected a database name (letters, digits, _) or catalog.database"
        )
    if config.synthetic.lines < 1:
        raise ConfigError(f"synthetic.lines = {config.synthetic.lines}: must be positive")
