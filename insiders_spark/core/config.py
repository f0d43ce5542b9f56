"""Job configuration: frozen dataclasses loaded from layered TOML.

Precedence, lowest first: ``conf/base.toml`` < ``conf/<env>.toml`` < environment variables
``INSIDERS_SPARK__<SECTION>__<KEY>`` < command-line flags. Every layer is checked against the
dataclasses below: a key that does not exist fails at start-up with a message naming the file and
the key, so a typo never silently falls back to a default.
"""

from __future__ import annotations

import collections.abc
import dataclasses
import datetime as dt
import hashlib
import json
import logging
import os
import tomllib
import types
import typing
from collections.abc import Mapping
from dataclasses import dataclass, field
from importlib import resources
from importlib.resources.abc import Traversable
from pathlib import Path
from typing import Any

from insiders_spark.core.errors import ConfigError
from insiders_spark.core.names import FREQUENT_RETURNERS, MODEL_SCORERS, NAMES, QUARANTINE_REASONS

ENV_PREFIX = "INSIDERS_SPARK__"
BASE_PROFILE = "base"


@dataclass(frozen=True)
class JobConfig:
    app_name: str = "insiders-spark"
    seed: int = 42
    log_level: str = "INFO"


@dataclass(frozen=True)
class InputConfig:
    path: str = ""  # file, folder or glob; empty means the embedded synthetic log
    format: str = "auto"  # auto | csv | parquet
    timestamp_format: str = "yyyy-MM-dd HH:mm:ss"
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


@dataclass(frozen=True)
class CleaningConfig:
    min_unit_price: float = 0.04
    non_product_stock_codes: tuple[str, ...] = ()
    excluded_countries: tuple[str, ...] = ()
    excluded_customers: tuple[int, ...] = ()
    guest_customer_id_start: int = 19000


@dataclass(frozen=True)
class QuarantineConfig:
    """How much of the input may be set aside before the run refuses to publish segments."""

    max_share: float = 0.05  # all reasons together, as a share of the input lines
    max_share_by_reason: Mapping[str, float] = field(default_factory=dict)  # reason -> share


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


@dataclass(frozen=True)
class QualityConfig:
    """How the segmentation is checked on every training run, and the targets it is held to."""

    silhouette_sample_rows: int = 2_000  # scikit-learn cross-check on a bounded, seeded sample
    stability: bool = True  # refit with other seeds and bootstrap resamples (train modes)
    stability_seeds: int = 5
    stability_bootstraps: int = 5
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


@dataclass(frozen=True)
class RefreshConfig:
    insider_hysteresis_runs: int = 1  # leave the Insiders after this many runs outside cluster 1
    match_min_jaccard: float = 0.5  # a retrained cluster "is" a previous one above this overlap


@dataclass(frozen=True)
class LaunchConfig:
    """The driver JVM's start when Python starts it (local runs): ``insiders_spark.launch``."""

    class_archive: str = ""  # a class-data sharing archive (insiders-spark class-archive); "" = none
    quick_jit_max_bytes: int = 0  # inputs up to this size run with the quick JIT only; 0 = never


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
    spark: Mapping[str, str] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        return _plain(dataclasses.asdict(self))

    def fingerprint(self) -> str:
        """A short, stable hash of the effective configuration (for run manifests)."""
        text = json.dumps(self.to_dict(), sort_keys=True)
        return hashlib.sha256(text.encode("utf-8")).hexdigest()[:16]


SECTIONS: dict[str, type] = {
    f.name: f.default_factory  # type: ignore[misc]
    for f in dataclasses.fields(Config)
    if f.name not in ("env", "spark")
}


def default_conf_dir() -> Traversable:
    """The profiles shipped with the package (the repository's ``conf/`` folder).

    A resource folder, not necessarily a directory on disk: inside the zip that spark-submit ships
    with ``--py-files`` it is read straight from the archive.
    """
    return resources.files("insiders_spark.conf")


def load_config(
    conf_dir: str | Path | None = None,
    env: str = "local",
    overrides: Mapping[str, Any] | None = None,
    environ: Mapping[str, str] | None = None,
) -> Config:
    """Build the effective configuration.

    ``overrides`` maps dotted keys (``"clustering.k"``) to values, as the command line gives them;
    ``None`` values are ignored so unset flags do not shadow the files.
    """
    folder: Path | Traversable = Path(conf_dir) if conf_dir else default_conf_dir()
    layers: list[tuple[str, Mapping[str, Any]]] = [
        (str(folder / f"{BASE_PROFILE}.toml"), _read_toml(folder / f"{BASE_PROFILE}.toml")),
    ]
    if env != BASE_PROFILE:
        layers.append((str(folder / f"{env}.toml"), _read_toml(folder / f"{env}.toml")))
    layers.append(("environment", _from_environ(os.environ if environ is None else environ)))
    layers.append(("command line", _from_dotted({k: v for k, v in (overrides or {}).items() if v is not None})))

    merged: dict[str, dict[str, Any]] = {}
    for origin, layer in layers:
        for section, values in layer.items():
            _check_section(origin, section, values)
            into = merged.setdefault(section, {})
            for key, value in values.items():
                # a table (e.g. quarantine.max_share_by_reason) is merged key by key, so a profile
                # that sets one entry keeps the others of the layers below it
                if isinstance(value, Mapping) and isinstance(into.get(key), Mapping):
                    into[key] = {**into[key], **value}
                else:
                    into[key] = value

    spark_conf = {str(k): _spark_value(v) for k, v in merged.pop("spark", {}).items()}
    sections = {name: _build(cls, merged.get(name, {})) for name, cls in SECTIONS.items()}
    config = Config(env=env, spark=spark_conf, **sections)
    _validate(config)
    return config


def _read_toml(path: Path | Traversable) -> dict[str, Any]:
    if not path.is_file():
        raise ConfigError(f"configuration profile not found: {path} (profiles live in the conf/ folder)")
    try:
        with path.open("rb") as handle:
            return tomllib.load(handle)
    except tomllib.TOMLDecodeError as error:
        raise ConfigError(f"{path}: not valid TOML: {error}") from error


def _from_environ(environ: Mapping[str, str]) -> dict[str, dict[str, Any]]:
    layer: dict[str, dict[str, Any]] = {}
    for name, raw in environ.items():
        if not name.startswith(ENV_PREFIX):
            continue
        parts = name[len(ENV_PREFIX) :].split("__")
        if len(parts) != 2 or not all(parts):
            raise ConfigError(f"environment variable {name}: expected {ENV_PREFIX}<SECTION>__<KEY>")
        section, key = parts[0].lower(), parts[1].lower()
        if section == "spark":
            raise ConfigError(f"environment variable {name}: Spark settings go in conf/<env>.toml or --conf")
        parsed = _parse_scalar(raw)  # a table is never text: parsed now, so it merges like a file's
        layer.setdefault(section, {})[key] = parsed if isinstance(parsed, dict) else EnvText(raw)
    return layer


class EnvText(str):
    """An environment variable's raw text: read as TOML (numbers, lists, tables) for the keys that
    want those, but kept as written for the keys that want text (a salt of 1e3, a date)."""


def _parse_scalar(raw: str) -> Any:
    try:
        return tomllib.loads(f"value = {raw}")["value"]
    except tomllib.TOMLDecodeError:
        return raw


def _from_dotted(values: Mapping[str, Any]) -> dict[str, dict[str, Any]]:
    layer: dict[str, dict[str, Any]] = {}
    for dotted, value in values.items():
        section, _, key = dotted.partition(".")
        if not key:
            raise ConfigError(f"override {dotted!r}: expected <section>.<key>")
        layer.setdefault(section, {})[key] = value
    return layer


def _check_section(origin: str, section: str, values: Any) -> None:
    if section == "spark":
        if not isinstance(values, Mapping):
            raise ConfigError(f"{origin}: [spark] must be a table of spark.* settings")
        bad = [key for key in values if not str(key).startswith("spark.")]
        if bad:
            raise ConfigError(f"{origin}: [spark] keys must start with 'spark.': {', '.join(map(str, bad))}")
        return
    if section not in SECTIONS:
        known = ", ".join(sorted([*SECTIONS, "spark"]))
        raise ConfigError(f"{origin}: unknown section [{section}] (known sections: {known})")
    if not isinstance(values, Mapping):
        raise ConfigError(f"{origin}: [{section}] must be a table")
    names = {f.name for f in dataclasses.fields(SECTIONS[section])}
    unknown = sorted(set(values) - names)
    if unknown:
        raise ConfigError(
            f"{origin}: unknown key {section}.{unknown[0]} (known keys of [{section}]: {', '.join(sorted(names))})"
        )


def _build(cls: type, values: Mapping[str, Any]) -> Any:
    hints = typing.get_type_hints(cls)
    section = next(name for name, section_cls in SECTIONS.items() if section_cls is cls)
    return cls(**{name: _coerce(f"{section}.{name}", hints[name], value) for name, value in values.items()})


def _coerce(where: str, hint: Any, value: Any) -> Any:
    origin = typing.get_origin(hint)
    if isinstance(value, EnvText):
        parsed = _parse_scalar(value)
        wants_text = hint is str or (origin in (typing.Union, types.UnionType) and str in typing.get_args(hint))
        if wants_text and not isinstance(parsed, str):
            return str(value)
        value = parsed if not isinstance(parsed, EnvText) else str(parsed)
    if origin in (Mapping, dict, collections.abc.Mapping):
        key_type, value_type = typing.get_args(hint)
        if not isinstance(value, Mapping):
            raise ConfigError(
                f"{where}: expected a table of {key_type.__name__} = {value_type.__name__}, got {value!r}"
            )
        return {
            _coerce(where, key_type, key): _coerce(f"{where}.{key}", value_type, item) for key, item in value.items()
        }
    if origin is tuple:
        (item_type, _) = typing.get_args(hint)
        if not isinstance(value, (list, tuple)):
            raise ConfigError(f"{where}: expected a list, got {value!r}")
        return tuple(_coerce(where, item_type, item) for item in value)
    if origin in (typing.Union, types.UnionType):
        options = [arg for arg in typing.get_args(hint) if arg is not type(None)]
        return None if value is None else _coerce(where, options[0], value)
    if hint is bool:
        if isinstance(value, bool):
            return value
        raise ConfigError(f"{where}: expected true or false, got {value!r}")
    if hint is int:
        if isinstance(value, int) and not isinstance(value, bool):
            return value
        if isinstance(value, str) and value.strip().lstrip("-").isdigit():
            return int(value)
        raise ConfigError(f"{where}: expected a whole number, got {value!r}")
    if hint is float:
        if isinstance(value, (int, float)) and not isinstance(value, bool):
            return float(value)
        try:
            return float(value)
        except (TypeError, ValueError):
            raise ConfigError(f"{where}: expected a number, got {value!r}") from None
    if hint is str:
        if isinstance(value, (str, int, float)) and not isinstance(value, bool):
            return str(value)
        raise ConfigError(f"{where}: expected text, got {value!r}")
    return value


def _spark_value(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    return str(value)


CHOICES: dict[str, tuple[str, ...]] = {
    "input.format": ("auto", "csv", "parquet"),
    "control.scope": ("insiders", "all"),
}


def _validate(config: Config) -> None:
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
    } | {f"backtest.head_count_shares[{i}]": s for i, s in enumerate(config.backtest.head_count_shares)}
    for name, share in shares.items():
        if not 0.0 <= share <= 1.0:
            raise ConfigError(f"{name} = {share}: expected a share between 0 and 1")
    if not config.control.salt:
        raise ConfigError("control.salt is empty: set one (a new salt draws a new control group)")
    if config.backtest.horizon_days < 0:
        raise ConfigError(f"backtest.horizon_days = {config.backtest.horizon_days}: 0 (off) or a number of days")
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
    if config.synthetic.lines < 1:
        raise ConfigError(f"synthetic.lines = {config.synthetic.lines}: must be positive")


def _plain(value: Any) -> Any:
    if isinstance(value, Mapping):
        return {str(k): _plain(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_plain(v) for v in value]
    return value
