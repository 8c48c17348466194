"""The windows of an export: where they start in a track, how many, and their sample keys."""

from __future__ import annotations

import urllib.parse

import numpy as np

__all__ = ["key_prefix", "sample_key", "window_counts", "window_starts"]


def sample_key(key: str, start_frame: int) -> str:
    """WebDataset ``__key__`` of a window: the track key percent-encoded, then the start frame.

    WebDataset splits a tar member name at the first dot of its last path component, so dots
    (and ``%``, ``~``, characters outside ASCII) are percent-encoded; the mapping is injective.
    """
    return f"{key_prefix(key)}/{start_frame:08d}"


def key_prefix(key: str) -> str:
    s = urllib.parse.quote(key, safe="/").replace(".", "%2E").replace("~", "%7E")
    if s.startswith("/") or s.endswith("/") or "//" in s:
        s = s.replace("/", "%2F")
    return s


def window_starts(frames: int, window: int, hop: int) -> list[int]:
    """Start frames of the windows covering ``frames`` (the last one may need padding)."""
    if frames <= 0:
        return []
    starts = list(range(0, max(frames - window, 0) + 1, hop))
    if starts[-1] + window < frames:
        starts.append(starts[-1] + hop)
    return starts


def window_counts(frames: np.ndarray, window: int, hop: int) -> np.ndarray:
    """``len(window_starts(f, window, hop))`` for every ``f`` of ``frames`` (vectorized).

    The starts of a track are ``0, hop, 2 hop, …`` (``count`` of them).
    """
    f = np.asarray(frames, dtype=np.int64)
    full = np.maximum(f - window, 0) // hop  # index of the last start that fits
    n = full + 1 + (full * hop + window < f)
    return np.where(f > 0, n, 0)
