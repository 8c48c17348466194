"""Per-track metadata of an export: a JSON Lines file, one object per track with its ``"key"``."""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

from lincae_core.errors import ConfigError

__all__ = ["METADATA_KEY_FIELD", "RESERVED_FIELDS", "read_track_metadata"]

#: Fields of every sample's JSON, written by the export; ``--metadata`` may not set them.
RESERVED_FIELDS = frozenset(
    {
        "key",
        "start_frame",
        "frames",
        "window_frames",
        "seconds_start",
        "seconds_total",
        "padding_mask",
        "model_id",
        "store_id",
        "sample_rate",
        "samples_per_frame",
        "downsampling_ratio",
        "latent_dim",
        "channels",
        "layout",
        "normalization",
    }
)
METADATA_KEY_FIELD = "key"


def read_track_metadata(path: str | os.PathLike) -> dict[str, dict[str, Any]]:
    """Read per-track metadata from a JSON Lines file: one object per line with a ``"key"``
    field (the track key); its other fields go into that track's windows' JSON.

    Blank lines are skipped.

    Raises:
        ConfigError: One line naming the file and line: unreadable file, bad JSON, not an
            object, no string ``key``, a duplicate key or a reserved field.
    """
    p = Path(path)
    out: dict[str, dict[str, Any]] = {}
    where: dict[str, int] = {}
    try:
        fh = p.open("r", encoding="utf-8")
    except OSError as exc:
        raise ConfigError(
            f"{p}: cannot read the metadata file ({exc.strerror or exc}); expected a JSON Lines file"
        ) from exc
    with fh:
        lineno = 0
        try:
            for lineno, line in enumerate(fh, 1):  # noqa: B007 - lineno names a decode error's line
                if not line.strip():
                    continue
                try:
                    obj = json.loads(line)
                except json.JSONDecodeError as exc:
                    raise ConfigError(
                        f"{p}:{lineno}: not valid JSON ({exc.msg}, column {exc.colno}); "
                        "expected one JSON object per line"
                    ) from None
                if not isinstance(obj, dict):
                    raise ConfigError(
                        f'{p}:{lineno}: expected a JSON object with a "key" field, got {type(obj).__name__}'
                    )
                key = obj.pop(METADATA_KEY_FIELD, None)
                if not isinstance(key, str):
                    raise ConfigError(
                        f'{p}:{lineno}: expected a string "key" field (the track key), '
                        f"got {'none' if key is None else repr(key)}"
                    )
                if key in where:
                    raise ConfigError(
                        f"{p}:{lineno}: duplicate key {key!r} (first on line {where[key]}); "
                        "give each track once"
                    )
                bad = sorted(RESERVED_FIELDS.intersection(obj))
                if bad:
                    raise ConfigError(
                        f"{p}:{lineno}: field {bad[0]!r} is reserved (the export writes it "
                        "from the store); rename it"
                    )
                where[key] = lineno
                out[key] = obj
        except UnicodeDecodeError as exc:
            raise ConfigError(
                f"{p}:{lineno + 1}: not UTF-8 ({exc.reason}); expected a UTF-8 JSON Lines file"
            ) from None
    return out
