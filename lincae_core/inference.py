"""Encode/decode arrays of audio of any length with bounded memory (public API).

Long signals are windowed and cross-faded by :mod:`lincae_core.windowing` (latents on encode,
audio on decode); each window is encoded/decoded on its own, batched across windows and tracks.

Latent scale convention: lincae stores and returns the *raw* tanh latent of the encoder (in
[-1, 1]). The Music2Latent API returns raw / 0.06; the linear-cae API returns
raw * scale_factor (15, 33 or 40). Divide / multiply accordingly to compare.

Shapes: audio ``[T]``, ``[B, T]`` or ``[B, C, T]``; latents ``[D, Z]``, ``[B, D, Z]`` or
``[B, C, D, Z]`` with Z = ceil(T / samples_per_frame).
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Iterator
from typing import Any

import numpy as np
import torch

from lincae_core.config import AUTO_BATCH_AUDIO_S, AUTO_BATCH_CANDIDATES, InferenceConfig
from lincae_core.errors import InvalidAudioError, ShapeMismatchError
from lincae_core.nn import transforms
from lincae_core.nn.model import LinCAE
from lincae_core.windowing import (
    OverlapAdd,
    crossfade_regions,
    decode_valid_spans,
    plan_windows,
    ramp_weights,
    window_span,
)

__all__ = ["decode", "encode", "encode_segments", "iter_decode", "rule_batch_size", "window_generator"]


def rule_batch_size(device_type: str, segment_samples: int, sample_rate: int, parallel: bool = False) -> int:
    """``batch_size="auto"`` by rule: segments per pass holding about ``AUTO_BATCH_AUDIO_S[device]``
    seconds of audio (``parallel``: several passes run at once, one per core, each on one thread;
    on CPU each then holds ``AUTO_BATCH_AUDIO_S["cpu-parallel"]``). :func:`encode` uses it as it
    is; an encode of a library may time a probe around it (:mod:`lincae_core.encoding.batching`)."""
    key = (
        f"{device_type}-parallel"
        if parallel and f"{device_type}-parallel" in AUTO_BATCH_AUDIO_S
        else device_type
    )
    audio_s = AUTO_BATCH_AUDIO_S.get(key, AUTO_BATCH_AUDIO_S["cpu"])
    n = int(audio_s * sample_rate / max(segment_samples, 1) + 0.5)
    return int(min(max(n, 1), AUTO_BATCH_CANDIDATES[-1]))


def window_generator(seed: int, start: int, stop: int) -> torch.Generator:
    """Noise generator of one decode window, a function of (seed, window) only.

    Decoding is stochastic; seeding per window makes a decode reproducible and independent of
    batch composition (the same track decodes identically alone or in a batch).
    """
    digest = hashlib.sha256(f"{seed}:{start}:{stop}".encode()).digest()
    return torch.Generator().manual_seed(int.from_bytes(digest[:8], "little") & ((1 << 63) - 1))


def _as_rows(x: Any, inner_dims: int, what: str) -> tuple[torch.Tensor, tuple[int, ...]]:
    t = torch.as_tensor(np.asarray(x) if not isinstance(x, torch.Tensor) else x)
    if t.dim() < inner_dims or t.dim() > inner_dims + 2:
        raise ShapeMismatchError(
            f"Expected {what} with {inner_dims} to {inner_dims + 2} dimensions. Got shape {tuple(t.shape)}."
        )
    lead = tuple(t.shape[: t.dim() - inner_dims])
    return t.reshape(-1, *t.shape[t.dim() - inner_dims :]).float(), lead


def _checked_audio(audio: Any) -> Any:
    """Refuse audio the encoder would silently misread: soundfile's ``[T, C]`` layout, integer or
    complex samples, NaN or infinity, no samples (one message each, saying what to do)."""
    t = audio if isinstance(audio, torch.Tensor) else np.asarray(audio)
    shape = tuple(t.shape)
    if len(shape) in (2, 3) and shape[-1] <= 8 and shape[-2] >= 1024:
        hint = "audio.T" if len(shape) == 2 else "audio.transpose(0, 2, 1)"
        raise ShapeMismatchError(
            f"Expected audio as [T], [B, T] or [B, C, T] (time last). Got shape {shape}, which looks "
            f"like soundfile's [T, C] layout: pass {hint}."
        )
    floating = (
        t.dtype.is_floating_point if isinstance(t, torch.Tensor) else np.issubdtype(t.dtype, np.floating)
    )
    if not floating:
        raise InvalidAudioError(
            f"Expected float audio in [-1, 1]. Got dtype {t.dtype}: read files with soundfile.read("
            "path, dtype='float32'), or divide integer PCM by its full scale (32768 for int16)."
        )
    if shape and shape[-1] == 0:
        raise InvalidAudioError(f"Expected at least one sample. Got shape {shape} (no audio).")
    finite = torch.isfinite(t).all() if isinstance(t, torch.Tensor) else np.isfinite(t).all()
    if not bool(finite):
        bad = int((~torch.isfinite(torch.as_tensor(t))).sum())
        raise InvalidAudioError(
            f"Expected finite audio. Got {bad} NaN or infinite samples of {int(np.prod(shape))}."
        )
    return t


@torch.no_grad()
def encode_segments(model: LinCAE, segments: torch.Tensor) -> torch.Tensor:
    """Encode equal-length audio segments ``[N, L]`` (L = window span) into ``[N, D, W]``."""
    device = next(model.parameters()).device
    rep = transforms.to_representation(segments.to(device), model.config)
    return model.encode_representation(rep).float().cpu()


def _batched(items: list[Any], size: int) -> Iterator[list[Any]]:
    for i in range(0, len(items), size):
        yield items[i : i + size]


@torch.no_grad()
def encode(
    model: LinCAE,
    audio: Any,
    inference: InferenceConfig | None = None,
    progress: Callable[[int], None] | None = None,
) -> torch.Tensor:
    """Encode audio of any length with windows + latent cross-fade (bounded memory per window).

    Args:
        model: the autoencoder.
        audio: ``[T]``, ``[B, T]`` or ``[B, C, T]`` at ``model.config.sample_rate``.
        inference: window, overlap and batch size (defaults: ``InferenceConfig()``).
        progress: called with the number of windows done after each batch.

    Returns:
        Raw latents ``[D, Z]``, ``[B, D, Z]`` or ``[B, C, D, Z]``, Z = ceil(T / samples_per_frame).

    Raises:
        ShapeMismatchError: Not 1 to 3 dimensions, or soundfile's ``[T, C]`` layout (transpose it).
        InvalidAudioError: Integer samples, NaN or infinity, or no samples.
    """
    inference = inference or InferenceConfig()
    rows, lead = _as_rows(_checked_audio(audio), 1, "audio")
    cfg = model.config
    frames, _ = transforms.padded_length(rows.shape[-1], cfg)
    window, overlap = inference.frames(cfg)
    plan = plan_windows(frames, window, overlap)
    regions = crossfade_regions(plan, overlap)
    jobs = [(r, i) for r in range(rows.shape[0]) for i in range(len(plan))]
    out = [OverlapAdd((cfg.latent_dim,)) for _ in range(rows.shape[0])]
    batch_size = inference.batch_size
    if inference.auto_batch:  # the rule (no probe here)
        a, b = window_span(plan[0][0], plan[0][1], cfg)
        batch_size = rule_batch_size(next(model.parameters()).device.type, b - a, cfg.sample_rate)
    for batch in _batched(jobs, int(batch_size)):
        segs = []
        for r, i in batch:
            a, b = window_span(plan[i][0], plan[i][1], cfg)
            seg = rows[r, a : min(b, rows.shape[-1])]
            segs.append(torch.nn.functional.pad(seg, (0, b - a - seg.shape[-1])))
        z = encode_segments(model, torch.stack(segs)).numpy()
        for (r, i), zi in zip(batch, z, strict=True):
            out[r].add(plan[i][0], zi, ramp_weights(regions, i, plan[i][0], zi.shape[-1]))
        if progress:
            progress(len(batch))
    latents = np.stack([o.pop(frames) for o in out])
    return torch.from_numpy(latents).reshape(*lead, cfg.latent_dim, frames)


@torch.no_grad()
def iter_decode(
    model: LinCAE,
    z: Any,
    num_samples: int | None = None,
    inference: InferenceConfig | None = None,
    seed: int | None = None,
    steps: int | None = None,
) -> Iterator[np.ndarray]:
    """Decode one track's latents ``[C, D, Z]`` as a stream of audio blocks ``[C, n]``.

    Memory is bounded by the window and batch size, not by the track length.
    """
    inference = inference or InferenceConfig()
    seed = inference.seed if seed is None else seed
    steps = steps or inference.steps or model.recommended_steps
    cfg = model.config
    zt = torch.as_tensor(np.asarray(z) if not isinstance(z, torch.Tensor) else z).float()
    if zt.dim() != 3 or zt.shape[1] != cfg.latent_dim:
        raise ShapeMismatchError(f"Expected latents [C, {cfg.latent_dim}, Z]. Got {tuple(zt.shape)}.")
    channels, _, frames = zt.shape
    total = frames * cfg.samples_per_frame if num_samples is None else num_samples
    window, overlap = inference.frames(cfg)
    plan = plan_windows(frames, window, overlap)
    valid = decode_valid_spans(crossfade_regions(plan, overlap), cfg)
    ola = OverlapAdd((channels,))
    device = next(model.parameters()).device
    jobs = list(range(len(plan)))
    per_batch = max(inference.fixed_batch() // channels, 1)
    for batch in _batched(jobs, per_batch):
        lat = torch.cat([zt[:, :, plan[i][0] : plan[i][1]] for i in batch]).to(device)
        gens = [window_generator(seed, *plan[i]) for i in batch for _ in range(channels)]
        if len({plan[i][1] - plan[i][0] for i in batch}) > 1:
            raise AssertionError("decode windows of one batch must have equal length")
        rep = model.decode_representation(lat, steps=steps, generators=gens)
        audio = transforms.from_representation(rep, cfg).cpu().numpy().reshape(len(batch), channels, -1)
        for i, x in zip(batch, audio, strict=True):
            start = window_span(plan[i][0], plan[i][1], cfg)[0]
            ola.add(start, x, ramp_weights(valid, i, start, x.shape[-1]))
        nxt = batch[-1] + 1
        ready = min(valid[nxt][0] if nxt < len(plan) else total, total)
        if ready > ola.base:
            yield ola.pop(ready)
    if ola.base < total:  # num_samples beyond the decoded span: pad with silence
        tail = ola.pop(min(total, ola.base + ola.wsum.shape[0]))
        yield np.pad(tail, ((0, 0), (0, total - ola.base))) if ola.base < total else tail


@torch.no_grad()
def decode(
    model: LinCAE,
    z: Any,
    num_samples: int | None = None,
    inference: InferenceConfig | None = None,
    seed: int | None = None,
    steps: int | None = None,
) -> torch.Tensor:
    """Decode latents ``[D, Z]``, ``[B, D, Z]`` or ``[B, C, D, Z]`` to audio (seeded, windowed).

    Args:
        model: the autoencoder.
        z: raw latents.
        num_samples: output length (default ``Z * samples_per_frame``); use the original
            length recorded at encode time to trim exactly.
        inference: window, overlap, batch size, default steps and seed.
        seed: decode noise seed (the same seed gives the same audio).
        steps: consistency sampling steps (default: ``inference.steps``, else the model card's
            ``recommended_steps``, else 1).

    Returns:
        Audio ``[T]``, ``[B, T]`` or ``[B, C, T]``.
    """
    rows, lead = _as_rows(z, 2, "latents")
    out = [
        np.concatenate(list(iter_decode(model, r[None], num_samples, inference, seed, steps)), -1)[0]
        for r in rows
    ]
    return torch.from_numpy(np.stack(out)).reshape(*lead, -1)
