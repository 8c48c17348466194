"""The rows of ``lincae ls``: a store's tracks with their status, duration, failure reason,
loudness and (for a mix) sources, JSON-ready (torch-free, and zarr-free for a local store in the
plain layout: :mod:`~lincae_core.store.local_view`; ``ls`` starts at once)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from lincae_core.store.layout import STATUS_NAMES
from lincae_core.store.local_view import open_view

__all__ = ["list_tracks"]


def list_tracks(path: str | Path, status: str | None = None) -> list[dict[str, Any]]:
    """The rows of ``lincae ls``: every track (or those with ``status``), JSON-ready.

    Each row has ``key``, ``duration_s``, ``frames`` and ``status``; failed rows add their
    ``reason``; a mix store's rows add ``sources`` (store, key and gain of each input). Inputs
    that failed at planning (and so have no row) are listed as failed rows with ``planning``.
    """
    store = open_view(path)
    t, sr = store.table(), store.geometry.sample_rate
    ledger = store.ledger()
    reasons = {int(r["index"]): r["reason"] for r in ledger if r.get("index") is not None}
    sources = store.sources()
    loud = store.loudness()
    rows: list[dict[str, Any]] = []
    for i in range(store.n_tracks):
        name = STATUS_NAMES[int(t["status"][i])]
        if status is not None and name != status:
            continue
        row: dict[str, Any] = {
            "key": str(t["key"][i]),
            "duration_s": int(t["samples"][i]) / sr,
            "frames": int(t["frames"][i]),
            "status": name,
        }
        if i in reasons:
            row["reason"] = reasons[i]
        if loud is not None:  # NaN (unmeasured) as null: JSON has no NaN
            row["loudness_lufs"] = float(loud[i]) if np.isfinite(loud[i]) else None
        if sources is not None:
            row["sources"] = [
                {"store": s, "key": str(k), "gain": float(g)}
                for s, k, g in zip(sources["inputs"], sources["key"][i], sources["gain"][i], strict=True)
            ]
        rows.append(row)
    if status in (None, "failed"):
        rows += [
            {
                "key": str(r["key"]),
                "duration_s": 0.0,
                "frames": 0,
                "status": "failed",
                "reason": r["reason"],
                "planning": True,
            }
            for r in ledger
            if r.get("index") is None
        ]
    return rows
