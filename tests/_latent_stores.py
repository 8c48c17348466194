"""Small real latent stores on disk, with random latents (no model needed): the tests' face of
:func:`lincae_core.store.synthetic.synthetic_store`, the builder the benchmark scripts use too."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np

from lincae_core.store import LatentStore
from lincae_core.store.synthetic import synthetic_store

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

    Returns the store (open ``r+``) and the latents of its done tracks, by key, in the storage
    dtype. Tracks named in ``failed`` are marked failed; ``loudness`` adds the (unmeasured)
    per-track loudness array, as an encode does. Sources are 44.1 kHz stereo files.
    """
    s = synthetic_store(
        path,
        tracks,
        seed=seed,
        channels=channels,
        geometry=geometry or GEOMETRY,
        dtype=dtype,
        chunk_frames=chunk_frames,
        scale=scale,
        failed=failed,
        loudness=loudness,
        model_id=model_id,
        source_rate=44100,
        source_channels=2,
    )
    return s, {k: s.read_track(k) for k, _ in tracks if k not in set(failed)}
