"""The configuration's sections: one frozen dataclass per concept, its defaults those of conf/base.toml.

Loading and checking them is ``core.config``'s; code takes the section it needs (``config.cleaning``,
``config.quality`` ...) directly.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from insiders_spark.core.names import (
    EXCLUDED_COUNTRY,
    EXCLUDED_CUSTOMER,
    NON_PRODUCT_CODE,
    PARSE_REASONS,
    PRICE_BELOW_MINIMUM,
)


@dataclass(frozen=True)
class JobConfig:
    app_name: str = "insiders-spark"
    seed: int = 42
    log_level: str = "INFO"
    log_format: str = "text"  # text | json: the driver's Python log and the JVM's, one JSON object a line


@dataclass(frozen=True)
class InputConfig:
    """Where the log is and how its columns map onto the job's (``core.names.CANONICAL_COLUMNS``)."""

    path: str = ""  # file, folder or glob; no path and no table: the embedded synthetic log
    table: str = ""  # a catalog table (db.name), read through the session's catalog instead of files
    format: str = "auto"  # auto (from the file names) | csv | parquet | json | orc
    dataset: str = ""  # a dataset profile (conf/datasets/NAME.toml); "": detected from the columns; "none"
    columns: Mapping[str, str] = field(default_factory=dict)  # canonical name -> the source's column
    timestamp_format: str = "auto"  # Spark datetime pattern of invoice_date text; auto: ISO 8601
    customer_ids: str = "auto"  # number | text | auto (from the column's type or a sample of its values)
    encoding: str = "UTF-8"
    csv_delimiter: str = ","


@dataclass(frozen=True)
class SyntheticConfig:
    lines: int = 300_000
    seed: int = 42


@dataclass(frozen=True)
class OutputConfig:
    path: str = "output"
    overlap_writes: bool = True  # the quarantine, the model and the small tables on a second thread
    publishing: str = "auto"  # auto (by the path's scheme) | rename (stage, then rename) | pointer (write once, point)
    retention_days: float = 7.0  # pointer publishing: failed and superseded run folders are kept this long
    catalog_database: str = ""  # register every output as a table of this database after each publish; "" = off
    metastore_dir: str = "metastore"  # the embedded Derby metastore's folder, when the run uses the catalog


@dataclass(frozen=True)
class CleaningConfig:
    """The business rules; each line they set aside is counted under its reason."""

    min_unit_price: float = 0.0  # lines priced below it are set aside (a negative price is an adjustment)
    non_product_codes: tuple[str, ...] = ()  # product ids that are not products (postage, fees, ...)
    excluded_countries: tuple[str, ...] = ()
    excluded_customers: tuple[str, ...] = ()  # customer ids, as the log writes them
    guest_customer_id_start: int = 0  # guest invoices are numbered from here; 0: past the largest id


# reason -> the largest share of the judged lines it may set aside: parse problems should be rare
MAX_SHARE_BY_REASON: Mapping[str, float] = {
    **dict.fromkeys(PARSE_REASONS, 0.01),
    PRICE_BELOW_MINIMUM: 0.03,
    NON_PRODUCT_CODE: 0.03,
    EXCLUDED_COUNTRY: 0.02,
    EXCLUDED_CUSTOMER: 0.01,
}


@dataclass(frozen=True)
class QuarantineConfig:
    """How much of the input may be set aside before the run refuses to publish segments."""

    max_share: float = 0.05  # all reasons together, as a share of the input lines
    max_share_by_reason: Mapping[str, float] = field(default_factory=lambda: dict(MAX_SHARE_BY_REASON))


@dataclass(frozen=True)
class EmbeddingConfig:
    """The revenue tree whose leaf positions the customers are clustered by."""

    max_depth: int = 4
    min_leaf_share: float = 0.01  # every leaf holds at least this share of the customers
    min_info_gain: float = 0.0
    max_bins: int = 256


@dataclass(frozen=True)
class ClusteringConfig:
    k: int = 9
    select_k: bool = False  # --k auto: choose k from k_grid by the documented rule (evaluation.kselection)
    k_grid: tuple[int, ...] = tuple(range(4, 17))


@dataclass(frozen=True)
class SegmentsConfig:
    insiders_name: str = "Insiders"
    top_features: int = 3  # per customer, the features that moved the tree's prediction the most
    programme_share: float = 0.10  # the Insiders never exceed this share of the customers (model.programme)


@dataclass(frozen=True)
class QualityConfig:
    """How the segmentation is checked on every training run, and the targets it is held to."""

    silhouette_sample_rows: int = 2_000  # scikit-learn cross-check on a bounded, seeded sample
    stability: bool = True  # refit with other seeds and bootstrap resamples (train modes)
    stability_seeds: int = 5
    stability_bootstraps: int = 20  # bootstrap trees, fitted together as one forest
    min_silhouette: float = 0.75
    min_cluster_share: float = 0.01
    insiders_max_share: float = 0.10
    insiders_min_revenue_share: float = 0.50
    min_ari: float = 0.90
    min_insiders_jaccard: float = 0.90


@dataclass(frozen=True)
class ControlConfig:
    """The loyalty A/B test's control group: a salted hash of the customer id (``control``)."""

    share: float = 0.10
    salt: str = "insiders-control-1"
    scope: str = "insiders"  # insiders | all


@dataclass(frozen=True)
class BacktestConfig:
    """Proof of value (``--backtest-horizon``): off when horizon_days is 0."""

    horizon_days: int = 0
    cutoff: str = ""  # YYYY-MM-DD; "" = the run's as-of date minus the horizon
    head_count_shares: tuple[float, ...] = (0.01, 0.02, 0.05, 0.10, 0.15, 0.20, 0.25, 0.30)
    scorers: tuple[str, ...] = ("segments", "future_revenue_tree", "future_revenue_tree_trend")
    guests_last: bool = True
    clv_sample_rows: int = 100_000  # customers the clv reference's fits see (a seeded sample)


@dataclass(frozen=True)
class RefreshConfig:
    insider_hysteresis_runs: int = 1  # leave the Insiders after this many runs outside cluster 1
    match_min_jaccard: float = 0.5  # a retrained cluster "is" a previous one above this overlap


@dataclass(frozen=True)
class LaunchConfig:
    """The driver JVM's start when Python starts it (local runs): ``insiders_spark.launch``."""

    class_archive: str = ""  # a class-data sharing archive (insiders-spark class-archive); "" = none
    quick_jit_max_bytes: int = 64 * 1024 * 1024  # inputs up to this size run with the quick JIT only; 0 = never


@dataclass(frozen=True)
class TrackingConfig:
    """Optional MLflow tracking of training runs (``runs.tracking``); off while ``mlflow_uri`` is empty."""

    mlflow_uri: str = ""  # an MLflow tracking URI (http://host:5000, sqlite:///path.db, databricks); "" = off
    experiment: str = "insiders-spark"  # the experiment, and the registered model whose alias "current" follows CURRENT


@dataclass(frozen=True)
class ConfigOrigin:
    """The arguments a configuration was loaded with (``core.config.load_config``)."""

    conf_dir: str | None
    overrides: Mapping[str, Any]
    environ: Mapping[str, str]
    dataset: str | None = None  # a dataset profile added after the input named it (core.config.detect_dataset)


@dataclass(frozen=True)
class Config:
    env: str = "local"
    job: JobConfig = field(default_factory=JobConfig)
    input: InputConfig = field(default_factory=InputConfig)
    synthetic: SyntheticConfig = field(default_factory=SyntheticConfig)
    output: OutputConfig = field(default_factory=OutputConfig)
    cleaning: CleaningConfig = field(default_factory=CleaningConfig)
    quarantine: QuarantineConfig = field(default_factory=QuarantineConfig)
    embedding: EmbeddingConfig = field(default_factory=EmbeddingConfig)
    clustering: ClusteringConfig = field(default_factory=ClusteringConfig)
    segments: SegmentsConfig = field(default_factory=SegmentsConfig)
    refresh: RefreshConfig = field(default_factory=RefreshConfig)
    quality: QualityConfig = field(default_factory=QualityConfig)
    control: ControlConfig = field(default_factory=ControlConfig)
    backtest: BacktestConfig = field(default_factory=BacktestConfig)
    launch: LaunchConfig = field(default_factory=LaunchConfig)
    tracking: TrackingConfig = field(default_factory=TrackingConfig)
    spark: Mapping[str, str] = field(default_factory=dict)
    # how it was loaded, so a dataset profile found in the input can be added as a layer later
    origin: ConfigOrigin | None = field(default=None, compare=False, repr=False)

    def to_dict(self) -> dict[str, Any]:
        values = {f.name: getattr(self, f.name) for f in dataclasses.fields(self) if f.name != "origin"}
        return {
            name: _plain(dataclasses.asdict(value) if dataclasses.is_dataclass(value) else value)
            for name, value in values.items()
        }

    def session_settings(self) -> dict[str, str]:
        """The ``[spark]`` settings, plus an embedded Hive metastore (Derby) in ``output.metastore_dir``
        when the run uses the catalog (``output.catalog_database``, ``input.table``) and ``[spark]``
        names no catalog or metastore of its own. Derby lets one JVM at a time open its database."""
        settings = dict(self.spark)
        uses_catalog = bool(self.output.catalog_database or self.input.table)
        if not (uses_catalog and self.output.metastore_dir) or any(key in settings for key in METASTORE_KEYS):
            return settings
        folder = os.path.abspath(os.path.expanduser(self.output.metastore_dir))
        java_options = (settings.get(JAVA_OPTIONS, ""), f"-Dderby.system.home={folder}")  # derby.log goes there
        return settings | {
            "spark.sql.catalogImplementation": "hive",
            "spark.sql.warehouse.dir": f"{folder}/warehouse",
            "spark.hadoop.javax.jdo.option.ConnectionURL": f"{DERBY}{folder}/metastore_db;create=true",
            JAVA_OPTIONS: " ".join(option for option in java_options if option),
        }

    def fingerprint(self) -> str:
        """A short, stable hash of the effective configuration (for run manifests). Where a run is
        tracked changes nothing it computes, so ``tracking`` is left out: turning MLflow on does not
        make the same model look differently configured."""
        values = {name: value for name, value in self.to_dict().items() if name not in UNHASHED_SECTIONS}
        text = json.dumps(values, sort_keys=True)
        return hashlib.sha256(text.encode("utf-8")).hexdigest()[:16]


UNHASHED_SECTIONS = ("tracking",)
METASTORE_KEYS = (  # a [spark] setting naming the session's catalog or metastore: no embedded one then
    "spark.sql.catalogImplementation",
    "spark.sql.defaultCatalog",
    "spark.hadoop.hive.metastore.uris",
    "spark.hadoop.javax.jdo.option.ConnectionURL",
)
JAVA_OPTIONS = "spark.driver.extraJavaOptions"
DERBY = "jdbc:derby:;databaseName="

SECTIONS: dict[str, type] = {
    f.name: f.default_factory  # type: ignore[misc]
    for f in dataclasses.fields(Config)
    if f.name not in ("env", "spark", "origin")
}


def _plain(value: Any) -> Any:
    if isinstance(value, Mapping):
        return {str(k): _plain(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_plain(v) for v in value]
    return value
