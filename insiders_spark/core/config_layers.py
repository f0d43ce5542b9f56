"""The mechanics of the configuration's layers: read a TOML profile, the environment and the
command line into tables, check their sections and keys, and coerce each value to its key's type."""

from __future__ import annotations

import collections.abc
import dataclasses
import tomllib
import types
import typing
from collections.abc import Mapping
from importlib.resources.abc import Traversable
from pathlib import Path
from typing import Any

from insiders_spark.core.errors import ConfigError
from insiders_spark.core.sections import SECTIONS

ENV_PREFIX = "INSIDERS_SPARK__"


def read_toml(path: Path | Traversable) -> dict[str, Any]:
    if not path.is_file():
        raise ConfigError(f"configuration profile not found: {path} (profiles live in the conf/ folder)")
    try:
        with path.open("rb") as handle:
            return tomllib.load(handle)
    except tomllib.TOMLDecodeError as error:
        raise ConfigError(f"{path}: not valid TOML: {error}") from error


def from_environ(environ: Mapping[str, str]) -> dict[str, dict[str, Any]]:
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


def from_dotted(values: Mapping[str, Any]) -> dict[str, dict[str, Any]]:
    layer: dict[str, dict[str, Any]] = {}
    for dotted, value in values.items():
        section, _, key = dotted.partition(".")
        if not key:
            raise ConfigError(f"override {dotted!r}: expected <section>.<key>")
        layer.setdefault(section, {})[key] = value
    return layer


def check_section(origin: str, section: str, values: Any) -> None:
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


def build_section(cls: type, values: Mapping[str, Any]) -> Any:
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


def spark_value(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    return str(value)
