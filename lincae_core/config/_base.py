"""Shared helpers of the config dataclasses: strict JSON loading (unknown keys are errors)."""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path
from typing import Any, TypeVar

from lincae_core.errors import ConfigError

__all__ = ["from_dict", "load_json_config"]

T = TypeVar("T")


def from_dict(cls: type[T], data: dict[str, Any], what: str) -> T:
    """Build a dataclass from a JSON dict, refusing unknown keys and turning lists into tuples."""
    if not isinstance(data, dict):
        raise ConfigError(f"Expected a JSON object for {what}. Got {type(data).__name__} instead.")
    names = {f.name for f in dataclasses.fields(cls)}  # type: ignore[arg-type]
    unknown = sorted(set(data) - names)
    if unknown:
        raise ConfigError(f"Unknown {what} field(s) {unknown}. Expected a subset of {sorted(names)}.")
    values = {k: tuple(v) if isinstance(v, list) else v for k, v in data.items()}
    try:
        return cls(**values)
    except TypeError as exc:
        raise ConfigError(f"Invalid {what}: {exc}") from exc


def load_json_config(path: str | Path) -> dict[str, Any]:
    """Read a JSON config file into a dict, with a one-line error on failure."""
    try:
        data = json.loads(Path(path).read_text())
    except (OSError, json.JSONDecodeError) as exc:
        raise ConfigError(f"Cannot read config file {path}: {exc}") from exc
    if not isinstance(data, dict):
        raise ConfigError(f"Expected a JSON object in {path}. Got {type(data).__name__} instead.")
    return data
