"""Job configuration: frozen dataclasses loaded from layered TOML.

Precedence, lowest first: ``conf/base.toml`` < ``conf/<env>.toml`` < environment variables
``INSIDERS_SPARK__<SECTION>__<KEY>`` < command-line flags. Every layer is checked against the
dataclasses below: a key that does not exist fails at start-up with a message naming the file and
the key, so a typo never silently falls back to a default.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Mapping, Sequence
from importlib import resources
from importlib.resources.abc import Traversable
from pathlib import Path
from typing import Any

from insiders_spark.core.checks import validate
from insiders_spark.core.config_layers import (
    ENV_PREFIX,
    build_section,
    check_section,
    from_dotted,
    from_environ,
    read_toml,
    spark_value,
)
from insiders_spark.core.errors import ConfigError
from insiders_spark.core.sections import (
    SECTIONS,
    BacktestConfig,
    CleaningConfig,
    ClusteringConfig,
    Config,
    ConfigOrigin,
    ControlConfig,
    EmbeddingConfig,
    InputConfig,
    JobConfig,
    LaunchConfig,
    OutputConfig,
    QualityConfig,
    QuarantineConfig,
    RefreshConfig,
    SegmentsConfig,
    SyntheticConfig,
)

__all__ = [
    "BASE_PROFILE",
    "ENV_PREFIX",
    "BacktestConfig",
    "CleaningConfig",
    "ClusteringConfig",
    "Config",
    "ConfigError",
    "ControlConfig",
    "EmbeddingConfig",
    "InputConfig",
    "JobConfig",
    "LaunchConfig",
    "OutputConfig",
    "QualityConfig",
    "QuarantineConfig",
    "RefreshConfig",
    "SegmentsConfig",
    "SyntheticConfig",
    "dataset_columns",
    "dataset_names",
    "default_conf_dir",
    "detect_dataset",
    "load_config",
    "with_dataset",
]

BASE_PROFILE = "base"

log = logging.getLogger(__name__)


def default_conf_dir() -> Traversable:
    """The profiles shipped with the package (the repository's ``conf/`` folder).

    A resource folder, not necessarily a directory on disk: inside the zip that spark-submit ships
    with ``--py-files`` it is read straight from the archive.
    """
    return resources.files("insiders_spark.conf")


DATASETS = "datasets"  # conf/datasets/NAME.toml: a store's column names, formats and rules
NO_DATASET = "none"
DATASET_SECTIONS = ("input", "cleaning", "quarantine")  # what a dataset profile may set


def load_config(
    conf_dir: str | Path | None = None,
    env: str = "local",
    overrides: Mapping[str, Any] | None = None,
    environ: Mapping[str, str] | None = None,
    *,
    dataset: str | None = None,
) -> Config:
    """Build the effective configuration.

    Layers, lowest first: ``base.toml`` < the dataset profile (``datasets/NAME.toml``, named by
    ``input.dataset`` in any layer, or by ``dataset``) < ``<env>.toml`` < environment variables <
    ``overrides``. ``overrides`` maps dotted keys (``"clustering.k"``) to values, as the command
    line gives them; ``None`` values are ignored so unset flags do not shadow the files.
    """
    folder: Path | Traversable = Path(conf_dir) if conf_dir else default_conf_dir()
    environ = dict(os.environ if environ is None else environ)
    given = {k: v for k, v in (overrides or {}).items() if v is not None}
    layers: list[tuple[str, Mapping[str, Any]]] = [
        (str(folder / f"{BASE_PROFILE}.toml"), read_toml(folder / f"{BASE_PROFILE}.toml")),
    ]
    if env != BASE_PROFILE:
        layers.append((str(folder / f"{env}.toml"), read_toml(folder / f"{env}.toml")))
    layers.append(("environment", from_environ(environ)))
    layers.append(("command line", from_dotted(given)))
    for origin, layer in layers:
        for section, values in layer.items():
            check_section(origin, section, values)
    name = dataset if dataset is not None else _named_dataset(layers)
    if name and name != NO_DATASET:
        layers.insert(1, (_dataset_path(folder, name), _dataset_layer(folder, name)))

    merged: dict[str, dict[str, Any]] = {}
    for _origin, layer in layers:
        for section, values in layer.items():
            into = merged.setdefault(section, {})
            for key, value in values.items():
                # a table (e.g. quarantine.max_share_by_reason) is merged key by key, so a profile
                # that sets one entry keeps the others of the layers below it
                if isinstance(value, Mapping) and isinstance(into.get(key), Mapping):
                    into[key] = {**into[key], **value}
                else:
                    into[key] = value
    if dataset is not None:
        merged.setdefault("input", {})["dataset"] = dataset

    spark_conf = {str(k): spark_value(v) for k, v in merged.pop("spark", {}).items()}
    sections = {name: build_section(cls, merged.get(name, {})) for name, cls in SECTIONS.items()}
    origin = ConfigOrigin(
        conf_dir=str(conf_dir) if conf_dir else None, overrides=given, environ=environ, dataset=dataset
    )
    config = Config(env=env, spark=spark_conf, origin=origin, **sections)
    validate(config)
    return config


def with_dataset(config: Config, name: str) -> Config:
    """``config`` loaded again with the dataset profile ``name`` as its second layer."""
    origin = config.origin or ConfigOrigin(conf_dir=None, overrides={}, environ={})
    return load_config(origin.conf_dir, config.env, origin.overrides, origin.environ, dataset=name)


def detect_dataset(config: Config, columns: Sequence[str]) -> Config:
    """``config`` with the dataset profile whose columns the input has, when it names none itself
    (``input.dataset`` empty and no ``input.columns``); otherwise ``config`` as it is."""
    if config.input.dataset or config.input.columns:
        return config
    conf_dir = config.origin.conf_dir if config.origin else None
    found = set(columns)
    for name in dataset_names(conf_dir) or dataset_names():
        mapped = dataset_columns(name, conf_dir)
        if mapped and set(mapped.values()) <= found:
            log.info("the input has the columns of dataset %s: using its profile (conf/datasets/%s.toml)", name, name)
            return with_dataset(config, name)
    return config


def dataset_names(conf_dir: str | None = None) -> list[str]:
    """The dataset profiles shipped in ``conf/datasets/`` (or ``conf_dir``'s)."""
    folder = (Path(conf_dir) if conf_dir else default_conf_dir()) / DATASETS
    if not folder.is_dir():
        return []
    return sorted(item.name.removesuffix(".toml") for item in folder.iterdir() if item.name.endswith(".toml"))


def dataset_columns(name: str, conf_dir: str | None = None) -> dict[str, str]:
    """The column mapping (canonical -> source) of the dataset profile ``name``."""
    folder = Path(conf_dir) if conf_dir else default_conf_dir()
    return dict(_dataset_layer(folder, name).get("input", {}).get("columns", {}))


def _named_dataset(layers: list[tuple[str, Mapping[str, Any]]]) -> str:
    name = ""
    for _origin, layer in layers:
        name = str(layer.get("input", {}).get("dataset", name))
    return name


def _dataset_path(folder: Path | Traversable, name: str) -> str:
    return str(folder / DATASETS / f"{name}.toml")


def _dataset_layer(folder: Path | Traversable, name: str) -> Mapping[str, Any]:
    path = folder / DATASETS / f"{name}.toml"
    if not path.is_file():  # a profile folder without datasets/ (cluster mode's --files) uses the packaged ones
        path = default_conf_dir() / DATASETS / f"{name}.toml"
    if not path.is_file():
        known = ", ".join(sorted({*dataset_names(str(folder) if isinstance(folder, Path) else None), *dataset_names()}))
        raise ConfigError(
            f'input.dataset = {name!r}: no dataset profile {path} (known: {known}; "none" for no profile)'
        )
    layer = read_toml(path)
    for section, values in layer.items():
        if section not in DATASET_SECTIONS:
            raise ConfigError(f"{path}: a dataset profile sets [{', '.join(DATASET_SECTIONS)}] only, not [{section}]")
        check_section(str(path), section, values)
    if "dataset" in layer.get("input", {}):
        raise ConfigError(f"{path}: a dataset profile cannot name another one (input.dataset)")
    return layer
