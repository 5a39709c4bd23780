"""Typed settings read from `DEJA_*` environment variables.

Each service declares one frozen dataclass whose fields are `setting(...)`s. `load()`
parses every variable by the field's type and fails fast with a `ConfigError` naming the
variable, so a typo in a Helm value stops the pod at start-up instead of surfacing as a
strange runtime error. Defaults run the embedded local stack.
"""

from __future__ import annotations

import dataclasses
import os
import typing
from collections.abc import Mapping
from typing import Any, TypeVar

T = TypeVar("T")


class ConfigError(ValueError):
    """A setting is missing or malformed; the message names the environment variable."""


def setting(env: str, default: Any, doc: str, *, minimum: float | None = None) -> Any:
    """Declare one setting: its variable, its default (None = required) and a one-line doc."""
    return dataclasses.field(default=default, metadata={"env": env, "doc": doc, "minimum": minimum})


def _parse_bool(env: str, raw: str) -> bool:
    value = raw.strip().lower()
    if value in ("1", "true", "yes", "on"):
        return True
    if value in ("0", "false", "no", "off"):
        return False
    raise ConfigError(f"{env}: expected a boolean (true/false), got {raw!r}")


def _parse(env: str, raw: str, kind: type) -> Any:
    if kind is bool:
        return _parse_bool(env, raw)
    if kind in (int, float):
        try:
            return kind(raw.strip())
        except ValueError:
            noun = "an integer" if kind is int else "a number"
            raise ConfigError(f"{env}: expected {noun}, got {raw!r}") from None
    return raw


def load(cls: type[T], environ: Mapping[str, str] | None = None) -> T:
    """Build `cls` from the environment, raising ConfigError on the first bad variable."""
    environ = os.environ if environ is None else environ
    hints = typing.get_type_hints(cls)
    values: dict[str, Any] = {}
    for field in dataclasses.fields(cls):  # type: ignore[arg-type]
        env = field.metadata["env"]
        kind = hints[field.name]
        raw = environ.get(env)
        if raw is None or raw == "":
            if field.default is None:
                raise ConfigError(f"{env} is required: {field.metadata['doc']}")
            continue
        value = _parse(env, raw, kind)
        minimum = field.metadata["minimum"]
        if minimum is not None and value < minimum:
            raise ConfigError(f"{env}: must be >= {minimum}, got {raw!r}")
        values[field.name] = value
    instance = cls(**values)
    validate = getattr(instance, "validate", None)
    if validate is not None:
        validate()
    return instance


def check_choice(env: str, value: str, choices: tuple[str, ...]) -> None:
    """One of a setting's named choices (a backend, a mode), as every such variable must be."""
    if value not in choices:
        raise ConfigError(f"{env}: expected one of {', '.join(choices)}, got {value!r}")


def check_addr(env: str, addr: str) -> None:
    """`host:port` with a numeric port, as every `*_ADDR` variable must be."""
    host, sep, port = addr.rpartition(":")
    if not sep or not host or not port.isdigit() or not 0 < int(port) < 65536:
        raise ConfigError(f"{env}: expected host:port, got {addr!r}")


def describe(cls: type) -> list[tuple[str, str, str]]:
    """(variable, default, doc) rows, for `deja config` and the README's table."""
    rows = []
    for field in dataclasses.fields(cls):
        default = "(required)" if field.default is None else str(field.default) or "(empty)"
        rows.append((field.metadata["env"], default, field.metadata["doc"]))
    return rows
