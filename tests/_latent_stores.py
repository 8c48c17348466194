"""Builders of small real latent stores on disk, with random latents (no model needed)."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np

from lincae_core.store import LatentStore

GEOMETRY = {"sample_rate": 16000, "samples_per_frame": 256, "latent_dim": 8}


def make_store(
    path: Path,
    tracks: Sequence[tuple[str, int]],
    *,
    seed: int = 0,
    channels: int = 2,
    model_id: str = "model-a",
    geometry: dict | None = None,
    chunk_frames: int = 16,
    dtype: str = "float16",
    failed: Sequence[str] = (),
    scale: float = 1.0,
    loudness: bool = False,
) -> tuple[LatentStore, dict[str, np.ndarray]]:
    """Create a store of ``(key, frames)`` tracks filled with seeded random latents.

    Returns the store (open ``r+``) and the latents written, by key, in the storage dtype.
    Tracks named in ``failed`` are marked failed instead of written; ``loudness`` adds the
    (unmeasured) per-track loudness array, as an encode does.
    """
    geo = geometry or GEOMETRY
    s = LatentStore.create(
        path,
        model_id=model_id,
        model_config={"name": model_id},
        geometry=geo,
        channels=channels,
        dtype=dtype,
        chunk_frames=chunk_frames,
        encoding={"window_s": 10, "overlap_s": 1},
    )
    spf = geo["samples_per_frame"]
    s.plan([(k, f, max(0, f * spf - 100), 44100, 2) for k, f in tracks], loudness=loudness)
    rng = np.random.default_rng(seed)
    zs = {}
    for i, (k, f) in enumerate(tracks):
        if k in failed:
            s.mark_failed(i, "synthetic failure")
            continue
        z = (scale * rng.standard_normal((f, channels, geo["latent_dim"]))).astype(dtype)
        s.write_track(i, z)
        s.mark_done(i)
        zs[k] = z
    return s, zs
