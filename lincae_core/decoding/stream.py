"""One track of a store as an audio stream for shell pipelines (``lincae decode --key K -o -``): a
WAV stream written as it decodes (header first, then blocks), or a FLAC stream once decoded."""

from __future__ import annotations

import io
import struct
from collections.abc import Iterator
from pathlib import Path
from typing import BinaryIO

import numpy as np
import soundfile as sf

from lincae_core.config import InferenceConfig
from lincae_core.decoding.engine import iter_decode_tracks
from lincae_core.decoding.files import _check_keys, _latents, _plan_track, _Rate, check_model_matches
from lincae_core.errors import AudioError
from lincae_core.nn.model import LinCAE
from lincae_core.store import LatentStore

__all__ = ["decode_to_wav_stream"]


def _wav_header(channels: int, rate: int, frames: int, float32: bool) -> bytes:
    width = 4 if float32 else 2
    data = frames * channels * width
    fmt = struct.pack(
        "<HHIIHH", 3 if float32 else 1, channels, rate, rate * channels * width, channels * width, 8 * width
    )
    return (
        b"RIFF"
        + struct.pack("<I", 36 + data)
        + b"WAVEfmt "
        + struct.pack("<I", 16)
        + fmt
        + b"data"
        + struct.pack("<I", data)
    )


def decode_to_wav_stream(
    store_path: str | Path,
    key: str,
    out: BinaryIO,
    model: LinCAE,
    subtype: str = "PCM_16",
    seed: int = 0,
    steps: int | None = None,
    inference: InferenceConfig | None = None,
    force: bool = False,
    sample_rate: str | int = "model",
    jobs: int | None = None,
    fmt: str = "wav",
) -> int:
    """Write one track as a WAV stream (header first, then blocks) for shell pipelines.

    ``jobs`` forward passes run at once (default: one per core on the CPU); the bytes are the same.
    ``fmt="flac"`` writes a FLAC stream instead (``PCM_16`` or ``PCM_24``; the track is encoded
    once decoded, since a FLAC header is written last).

    Returns:
        The number of clipped samples (PCM_16) or 0 (FLOAT).
    """
    store = LatentStore.open(store_path)
    check_model_matches(store, model, force)
    subtype = subtype.upper()
    if fmt == "flac":
        if subtype not in ("PCM_16", "PCM_24"):
            raise AudioError(f"FLAC streams support subtypes PCM_16 and PCM_24, not {subtype}.")
    elif subtype not in ("PCM_16", "FLOAT"):
        raise AudioError(f"WAV streams support subtypes PCM_16 and FLOAT, not {subtype}.")
    _check_keys(store, [key])
    rate, length = _plan_track(store, key, model, sample_rate)
    blocks = _interleaved(store, key, model, rate, length, seed, steps, inference, jobs)
    if fmt == "flac":  # a FLAC header is written last: encode the track once it is decoded
        parts = list(blocks)
        x = np.concatenate(parts) if parts else np.zeros((0, store.channels), np.float32)
        buf = io.BytesIO()
        sf.write(buf, np.clip(x, -1.0, 1.0), rate, format="FLAC", subtype=subtype)
        out.write(buf.getvalue())
        out.flush()
        return int(np.count_nonzero(np.abs(x) > 1.0))
    out.write(_wav_header(store.channels, rate, length, subtype == "FLOAT"))
    clipped = 0
    for x in blocks:
        if subtype == "FLOAT":
            out.write(np.ascontiguousarray(x, dtype="<f4").tobytes())
        else:
            clipped += int(np.count_nonzero(np.abs(x) > 1.0))
            out.write((np.clip(x, -1.0, 1.0) * 32767.0).round().astype("<i2").tobytes())
    out.flush()
    return clipped


def _interleaved(
    store: LatentStore,
    key: str,
    model: LinCAE,
    rate: int,
    length: int,
    seed: int,
    steps: int | None,
    inference: InferenceConfig | None,
    jobs: int | None,
) -> Iterator[np.ndarray]:
    """One track's audio as it decodes, at ``rate``: blocks ``[n, C]`` (channels interleaved)."""
    stage = _Rate(store.channels, model.config.sample_rate, rate, length)
    inference = inference or InferenceConfig(batch_size="auto")
    for _, block in iter_decode_tracks(model, _latents(store, [key]), inference, seed, steps, jobs):
        yield from (y.T for y in (stage.push(block) if block is not None else stage.close()))
