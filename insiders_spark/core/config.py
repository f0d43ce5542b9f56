"""Job configuration: frozen dataclasses loaded from layered TOML.

Precedence, lowest first: ``conf/base.toml`` < ``conf/<env>.toml`` < environment variables
``INSIDERS_SPARK__<SECTION>__<KEY>`` < command-line flags. Every layer is checked against the
dataclasses below: a key that does not exist fails at start-up with a message naming the file and
the key, so a typo never silently falls back to a default.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
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
    "default_conf_dir",
    "load_config",
]

BASE_PROFILE = "base"


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
        (str(folder / f"{BASE_PROFILE}.toml"), read_toml(folder / f"{BASE_PROFILE}.toml")),
    ]
    if env != BASE_PROFILE:
        layers.append((str(folder / f"{env}.toml"), read_toml(folder / f"{env}.toml")))
    layers.append(("environment", from_environ(os.environ if environ is None else environ)))
    layers.append(("command line", from_dotted({k: v for k, v in (overrides or {}).items() if v is not None})))

    merged: dict[str, dict[str, Any]] = {}
    for origin, layer in layers:
        for section, values in layer.items():
            check_section(origin, section, values)
            into = merged.setdefault(section, {})
            for key, value in values.items():
                # a table (e.g. quarantine.max_share_by_reason) is merged key by key, so a profile
                # that sets one entry keeps the others of the layers below it
                if isinstance(value, Mapping) and isinstance(into.get(key), Mapping):
                    into[key] = {**into[key], **value}
                else:
                    into[key] = value

    spark_conf = {str(k): spark_value(v) for k, v in merged.pop("spark", {}).items()}
    sections = {name: build_section(cls, merged.get(name, {})) for name, cls in SECTIONS.items()}
    config = Config(env=env, spark=spark_conf, **sections)
    validate(config)
    return config
