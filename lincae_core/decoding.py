"""Decode tracks of a latent store to audio files (mirrored key paths) or a WAV stream.

Memory is bounded by the decode window (``inference.iter_decode`` streams audio blocks, written to
the file as they come). Output paths come from track keys but can never leave the output
directory: see ``safe_relpath``. Clipping policy: integer subtypes (PCM_16, PCM_24) are
hard-clipped to [-1, 1] and the number of clipped samples is reported per track; float
subtypes (``FLOAT``) keep the samples as decoded.
"""

from __future__ import annotations

import logging
import os
import re
import struct
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import BinaryIO

import numpy as np
import soundfile as sf
import soxr

from lincae_core.audio import resampled_length
from lincae_core.config import InferenceConfig
from lincae_core.errors import AudioError, LincaeError, StoreMismatchError
from lincae_core.inference import iter_decode
from lincae_core.nn.model import LinCAE
from lincae_core.publish import atomic_path
from lincae_core.store import LatentStore

__all__ = [
    "DecodeSummary",
    "check_model_matches",
    "decode_store",
    "decode_to_wav_stream",
    "output_rate",
    "safe_relpath",
]

log = logging.getLogger(__name__)

FORMATS = {"wav": ("WAV", "PCM_16"), "flac": ("FLAC", "PCM_16")}
_UNSAFE = re.compile(r"[\x00-\x1f\x7f\\:*?\"<>|]")


def safe_relpath(key: str, suffix: str) -> Path:
    """Map a track key to a relative output path that cannot escape its directory.

    Components are split on '/', empty and '.' parts dropped, '..' replaced by '__', control
    characters and reserved characters replaced by '_', leading dots removed (no hidden files).
    """
    parts = []
    for part in key.split("/"):
        part = _UNSAFE.sub("_", part).strip()
        if part in ("", "."):
            continue
        part = "__" if part == ".." else part.lstrip(".") or "_"
        parts.append(part[:200])
    if not parts:
        parts = ["_"]
    return Path(*parts[:-1], parts[-1] + suffix)


def _inside(root: Path, rel: Path) -> Path:
    """``root / rel``, as the caller spelled ``root``, after checking it stays inside ``root``."""
    target = (root / rel).resolve()
    if os.path.commonpath([root.resolve(), target]) != str(root.resolve()):
        raise AudioError(f"output path for {rel} escapes {root}")  # defence in depth
    return root / rel


def check_model_matches(store: LatentStore, model: LinCAE, force: bool = False) -> None:
    """Refuse to decode a store with a model other than the one that encoded it (unless forced)."""
    geo = store.attrs["geometry"]
    cfg = model.config
    if (geo["sample_rate"], geo["samples_per_frame"], geo["latent_dim"]) != (
        cfg.sample_rate,
        cfg.samples_per_frame,
        cfg.latent_dim,
    ):
        raise StoreMismatchError(
            f"{store.path}: latent geometry {geo} does not match the model's {cfg.geometry().to_dict()}."
        )
    mid = model.model_id
    if not force and store.model_id != mid:
        raise StoreMismatchError(
            f"{store.path} was encoded by model {store.model_id[:12]}, not {str(mid)[:12]} "
            "(pass the encoding checkpoint, or --force)."
        )


def _check_keys(store: LatentStore, keys: Sequence[str]) -> None:
    """Unknown or not-done keys are an error before anything is written."""
    for k in keys:
        try:
            status = store.track(k).status
        except KeyError:
            raise StoreMismatchError(f"{store.path}: no track with key {k!r}.") from None
        if status != 1:
            raise StoreMismatchError(f"{store.path}: track {k!r} has no latents (status {status}).")


@dataclass
class DecodeSummary:
    """What a decode run wrote."""

    files: list[str] = field(default_factory=list)
    seconds: float = 0.0
    clipped: dict[str, int] = field(default_factory=dict)


def output_rate(rate: str | int, source_rate: int, model_rate: int) -> int:
    """The sample rate a track is decoded to: ``"model"``, ``"source"`` (the recorded one) or Hz."""
    if rate == "model":
        return model_rate
    if rate == "source":
        return int(source_rate) if source_rate > 0 else model_rate
    try:
        hz = int(rate)
    except (TypeError, ValueError):
        raise AudioError(f"Expected a sample rate 'model', 'source' or Hz. Got {rate!r} instead.") from None
    if not 1000 <= hz <= 768_000:
        raise AudioError(f"Expected a sample rate between 1000 and 768000 Hz. Got {hz}.")
    return hz


def _track_blocks(
    store: LatentStore,
    key: str,
    model: LinCAE,
    inference: InferenceConfig,
    seed: int,
    steps: int | None,
    rate: str | int = "model",
) -> tuple[int, int, Iterator[np.ndarray]]:
    """Decode one track as ``[C, n]`` blocks at its output rate.

    The channel count is the store's (latent) channels, whatever the source had; the length is the
    exact original length at the model rate, or that length carried to the output rate by soxr.

    Returns:
        ``(output rate, output length in samples, blocks)``.
    """
    t = store.track(key)
    z = store.read_track(key).astype(np.float32).transpose(1, 2, 0)  # (C, D, Z)
    model_rate = model.config.sample_rate
    out_rate = output_rate(rate, t.source_rate, model_rate)
    blocks = iter_decode(model, z, t.samples, inference, seed, steps)
    if out_rate == model_rate:
        return out_rate, t.samples, blocks
    length = resampled_length(t.samples, model_rate, out_rate)
    return out_rate, length, _resampled(blocks, z.shape[0], model_rate, out_rate, length)


def _resampled(
    blocks: Iterator[np.ndarray], channels: int, rate_in: int, rate_out: int, length: int
) -> Iterator[np.ndarray]:
    """Stream ``[C, n]`` blocks through soxr and cut or pad the result to exactly ``length``."""
    stream = soxr.ResampleStream(rate_in, rate_out, channels, dtype="float32", quality="HQ")
    done = 0

    def emit(y: np.ndarray) -> Iterator[np.ndarray]:
        nonlocal done
        y = y[: max(length - done, 0)]
        done += y.shape[0]
        if y.shape[0]:
            yield np.ascontiguousarray(y.T)

    for block in blocks:
        yield from emit(stream.resample_chunk(np.ascontiguousarray(block.T, dtype=np.float32)))
    yield from emit(stream.resample_chunk(np.zeros((0, channels), np.float32), last=True))
    if done < length:
        yield np.zeros((channels, length - done), np.float32)


def decode_store(
    store_path: str | Path,
    out_dir: str | Path,
    model: LinCAE,
    keys: Sequence[str] | None = None,
    fmt: str = "wav",
    subtype: str | None = None,
    seed: int = 0,
    steps: int | None = None,
    inference: InferenceConfig | None = None,
    force: bool = False,
    progress: Callable[[str, float], None] | None = None,
    sample_rate: str | int = "model",
    overwrite: bool = False,
) -> DecodeSummary:
    """Decode tracks (all done tracks, or ``keys``) into ``out_dir/<key>.<fmt>``.

    Files have the store's channel count and ``sample_rate`` (``"model"``: the model's rate,
    ``"source"``: each track's recorded source rate, or a rate in Hz). Existing files are refused
    before anything is written, unless ``overwrite``. Each file is written to a temporary name and
    renamed into place when complete.
    """
    store = LatentStore.open(store_path)
    check_model_matches(store, model, force)
    if fmt not in FORMATS:
        raise AudioError(f"Unknown format {fmt!r}; expected one of {sorted(FORMATS)}.")
    major, default_subtype = FORMATS[fmt]
    subtype = (subtype or default_subtype).upper()
    if not sf.check_format(major, subtype):
        raise AudioError(f"Subtype {subtype} is not valid for {fmt}.")
    keys = list(keys) if keys else [t.key for t in store.tracks(status=1)]
    _check_keys(store, keys)
    root = Path(out_dir)
    root.mkdir(parents=True, exist_ok=True)
    inference = inference or InferenceConfig()
    summary = DecodeSummary()
    targets = {key: _inside(root, safe_relpath(key, "." + fmt)) for key in keys}
    taken = [p for p in targets.values() if p.exists()]
    if taken and not overwrite:
        raise LincaeError(
            f"{taken[0]} already exists ({len(taken)} of {len(targets)} outputs do); "
            "use --overwrite to replace them, or another output folder."
        )
    for key, target in targets.items():
        target.parent.mkdir(parents=True, exist_ok=True)
        rate, length, blocks = _track_blocks(store, key, model, inference, seed, steps, sample_rate)
        clipped = 0
        with (
            atomic_path(target, suffix="." + fmt) as tmp,
            sf.SoundFile(tmp, "w", rate, store.channels, subtype, format=major) as f,
        ):
            for block in blocks:
                if subtype not in ("FLOAT", "DOUBLE"):
                    clipped += int(np.count_nonzero(np.abs(block) > 1.0))
                    block = np.clip(block, -1.0, 1.0)
                f.write(block.T)
        if clipped:
            summary.clipped[key] = clipped
            log.warning("%s: %d samples clipped to [-1, 1] (use --subtype FLOAT to keep them)", key, clipped)
        summary.files.append(str(target))
        summary.seconds += length / rate
        if progress:
            progress(key, length / rate)
    return summary


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
) -> int:
    """Write one track as a WAV stream (header first, then blocks) for shell pipelines.

    Returns:
        The number of clipped samples (PCM_16) or 0 (FLOAT).
    """
    store = LatentStore.open(store_path)
    check_model_matches(store, model, force)
    subtype = subtype.upper()
    if subtype not in ("PCM_16", "FLOAT"):
        raise AudioError(f"WAV streams support subtypes PCM_16 and FLOAT, not {subtype}.")
    _check_keys(store, [key])
    rate, length, blocks = _track_blocks(
        store, key, model, inference or InferenceConfig(), seed, steps, sample_rate
    )
    out.write(_wav_header(store.channels, rate, length, subtype == "FLOAT"))
    clipped = 0
    for block in blocks:
        x = block.T  # (n, C) interleaved
        if subtype == "FLOAT":
            out.write(np.ascontiguousarray(x, dtype="<f4").tobytes())
        else:
            clipped += int(np.count_nonzero(np.abs(x) > 1.0))
            out.write((np.clip(x, -1.0, 1.0) * 32767.0).round().astype("<i2").tobytes())
    out.flush()
    return clipped
