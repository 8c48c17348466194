"""Stores of seeded random latents, made without a model: the one builder behind the tests and the
benchmark scripts (``scripts/bench_*.py``), for any size (written in bounded blocks)."""

from __future__ import annotations

import os
from collections.abc import Sequence
from typing import Any

import numpy as np

from lincae_core.config.geometry import Geometry
from lincae_core.store.latent_store import LatentStore
from lincae_core.store.layout import PlanRow

__all__ = ["SYNTHETIC_GEOMETRY", "synthetic_store"]

#: The embedded default model's geometry (16 kHz, 2048 samples and 64 values a frame).
SYNTHETIC_GEOMETRY = {"sample_rate": 16000, "samples_per_frame": 2048, "latent_dim": 64}


def synthetic_store(
    path: str | os.PathLike[str],
    tracks: Sequence[tuple[str, int]],
    *,
    seed: int = 0,
    channels: int = 1,
    geometry: dict[str, int] | Geometry | None = None,
    dtype: str = "float16",
    chunk_frames: int | None = None,
    scale: float = 1.0,
    failed: Sequence[str] = (),
    loudness: bool = False,
    model_id: str = "synthetic",
    source_rate: int | None = None,
    source_channels: int | None = None,
    block_frames: int = 1 << 20,
    checksums: bool = False,
    chunks_per_object: int = 1,
) -> LatentStore:
    """Create a finished store of ``(key, frames)`` tracks filled with seeded random latents.

    The latents are ``scale`` times standard normal draws (float32, one stream in table order),
    cast to ``dtype`` and written ``block_frames`` at a time, so memory stays bounded whatever
    the size. Every track is marked done except those named in ``failed`` (marked failed). Each
    track's sample count is its frames times ``samples_per_frame`` less 100 (the last frame
    partly filled, as an encode leaves it). ``checksums`` and ``chunks_per_object``: as
    :meth:`LatentStore.create`.

    Returns:
        The store, open for writing.
    """
    geo = geometry.to_dict() if isinstance(geometry, Geometry) else dict(geometry or SYNTHETIC_GEOMETRY)
    extra: dict[str, Any] = {} if chunk_frames is None else {"chunk_frames": chunk_frames}
    s = LatentStore.create(
        path,
        model_id=model_id,
        model_config={"name": model_id},
        geometry=geo,
        channels=channels,
        dtype=dtype,
        encoding={"window_s": 10, "overlap_s": 1},
        checksums=checksums,
        chunks_per_object=chunks_per_object,
        **extra,
    )
    spf, rate = geo["samples_per_frame"], source_rate or geo["sample_rate"]
    src_ch = source_channels or channels
    s.plan([PlanRow(k, f, max(0, f * spf - 100), rate, src_ch) for k, f in tracks], loudness=loudness)
    rng = np.random.default_rng(seed)
    total, dim = s.total_frames, geo["latent_dim"]
    for b0 in range(0, total, block_frames):
        n = min(block_frames, total - b0)
        z = rng.standard_normal((n, channels, dim), dtype=np.float32)
        s.latents.write(b0, (z * np.float32(scale)).astype(dtype))
    bad = set(failed)
    for i, (key, _) in enumerate(tracks):
        if key in bad:
            s.mark_failed(i, "synthetic failure")
    s.mark_done(np.array([i for i, (key, _) in enumerate(tracks) if key not in bad], dtype=np.int64))
    return s
