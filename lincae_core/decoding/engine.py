"""Decode many tracks' latents at once: windows batched across tracks, passes in parallel.

The windows of every track are cut exactly as :func:`lincae_core.inference.iter_decode` cuts them
(``plan_windows``, window noise ``window_generator(seed, start, stop)``) and cross-faded with the
same weights in the same order, but a forward pass holds windows (and channels) of several tracks:
windows of equal length share batches in track order, so clips of one length decode together and
a song's windows fill passes with the next song's. Passes run on :class:`~.forward.PassRunner`
workers and are stitched in submission order. Because :func:`~.forward.decode_windows` makes a
window's audio independent of its batch, every track's audio is the same bits whatever the batch
size, the number of workers and its neighbours, and equals the per-track decode within float32
rounding (tests/test_decode_batched.py).

Memory is bounded by the window and batch: at most ``max_open`` tracks are in flight (latents
and the cross-fade buffer of the windows not yet popped); when more are, the oldest partial batch
is run as it is.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from typing import NamedTuple

import numpy as np

from lincae_core.config import InferenceConfig
from lincae_core.decoding.forward import PassRunner, decode_windows, default_jobs
from lincae_core.device import channels_last
from lincae_core.errors import ShapeMismatchError
from lincae_core.inference import rule_batch_size, window_generator
from lincae_core.nn.model import LinCAE
from lincae_core.windowing import (
    OverlapAdd,
    crossfade_regions,
    decode_valid_spans,
    plan_windows,
    ramp_weights,
    window_span,
)

__all__ = ["DecodeTrack", "batch_size_for", "iter_decode_tracks"]


class DecodeTrack(NamedTuple):
    """One track to decode: raw latents ``[C, D, Z]`` and the number of samples to return."""

    z: np.ndarray
    samples: int


class _Segment(NamedTuple):
    track: int
    window: int
    channel: int


@dataclass
class _Open:
    """A track in flight: its windows, cross-fade and the channels of its next window."""

    z: np.ndarray
    total: int
    plan: list[tuple[int, int]]
    starts: list[int]  # first audio sample of each window
    valid: list[tuple[int, int]]
    ola: OverlapAdd
    pending: dict[int, np.ndarray] = field(default_factory=dict)  # window -> [C, L] being filled
    filled: dict[int, int] = field(default_factory=dict)
    stitched: int = 0  # windows added to the cross-fade


def batch_size_for(model: LinCAE, inference: InferenceConfig, window_frames: int, jobs: int) -> int:
    """Segments (window x channel) per pass: the configured size, or for ``"auto"`` the encoder's
    rule for the window's length (about 8 s of audio a pass, the rule of parallel CPU passes, whatever
    ``jobs`` is, so that the batches do not depend on it); on the CPU
    rounded up to an even number (the decoder runs windows in pairs, :mod:`.forward`)."""
    device = next(model.parameters()).device.type
    if inference.auto_batch:
        a, b = window_span(0, window_frames, model.config)
        size = rule_batch_size(device, b - a, model.config.sample_rate, parallel=True)
    else:
        size = inference.fixed_batch()
    return size + size % 2 if device == "cpu" else size


def iter_decode_tracks(
    model: LinCAE,
    tracks: Iterable[DecodeTrack],
    inference: InferenceConfig | None = None,
    seed: int | None = None,
    steps: int | None = None,
    jobs: int | None = None,
    max_open: int | None = None,
) -> Iterator[tuple[int, np.ndarray | None]]:
    """Decode tracks together; yield ``(track index, block [C, n])`` as audio is ready.

    Each track's blocks come in order and concatenate to its audio: the same bits whatever the
    batch size, ``jobs`` and the other tracks, and what
    ``inference.iter_decode(model, z, samples, inference, seed, steps)`` gives for it within
    float32 rounding (:mod:`.forward`); after its last block comes ``(index, None)``. Tracks are
    read from ``tracks`` lazily.

    Args:
        model: The autoencoder.
        tracks: The tracks, in order.
        inference: Window, overlap, batch size (segments per pass, ``"auto"`` by rule), steps, seed.
        seed: Decode noise seed (default ``inference.seed``).
        steps: Sampling steps (default ``inference.steps``, else the model's recommended steps).
        jobs: Passes at once (default: one per core on CPU, 1 on a GPU); never changes the audio.
        max_open: Tracks in flight at most (default: enough for two full rounds of passes).
    """
    inference = inference or InferenceConfig()
    seed = inference.seed if seed is None else seed
    steps = steps or inference.steps or model.recommended_steps
    jobs = default_jobs(model) if jobs is None or jobs < 1 else jobs
    cfg = model.config
    window, overlap = inference.frames(cfg)
    cpu = next(model.parameters()).device.type == "cpu"
    sizes: dict[int, int] = {}
    groups: dict[int, list[_Segment]] = {}  # window length -> segments waiting for a pass
    opened: dict[int, _Open] = {}
    limit = max_open or max(16, 2 * jobs * batch_size_for(model, inference, window, jobs))

    def run(length: int, runner: PassRunner[list[_Segment]]) -> list[tuple[int, np.ndarray | None]]:
        segs = groups.pop(length)
        lat = np.stack([_latent(opened[s.track], s) for s in segs])
        gens = [window_generator(seed, *opened[s.track].plan[s.window]) for s in segs]
        out: list[tuple[int, np.ndarray | None]] = []
        for done, audio in runner.submit(lambda: decode_windows(model, lat, gens, steps, cpu), segs):
            out += _stitch(opened, done, audio)
        return out

    with PassRunner[list[_Segment]](jobs, one_thread=cpu) as runner, channels_last(model, cpu):
        for index, track in enumerate(tracks):
            opened[index] = _open(model, track, window, overlap)
            t = opened[index]
            if not t.plan:
                yield from _finish(opened, index)
                continue
            length = t.plan[0][1] - t.plan[0][0]
            if length not in sizes:
                sizes[length] = batch_size_for(model, inference, length, jobs)
            for w in range(len(t.plan)):
                for c in range(t.z.shape[0]):
                    groups.setdefault(length, []).append(_Segment(index, w, c))
                    if len(groups[length]) >= sizes[length]:
                        yield from run(length, runner)
            while len(opened) > limit and groups:  # bounded: run the oldest partial batch
                yield from run(min(groups, key=lambda k: groups[k][0].track), runner)
        while groups:
            yield from run(min(groups, key=lambda k: groups[k][0].track), runner)
        for done, audio in list(runner.drain()):
            yield from _stitch(opened, done, audio)


def _open(model: LinCAE, track: DecodeTrack, window: int, overlap: int) -> _Open:
    cfg = model.config
    z = np.asarray(track.z, dtype=np.float32)
    if z.ndim != 3 or z.shape[1] != cfg.latent_dim:
        raise ShapeMismatchError(f"Expected latents [C, {cfg.latent_dim}, Z]. Got {tuple(z.shape)}.")
    frames = z.shape[-1]
    total = frames * cfg.samples_per_frame if track.samples is None else int(track.samples)
    plan = plan_windows(frames, window, overlap)
    valid = decode_valid_spans(crossfade_regions(plan, overlap), cfg)
    starts = [window_span(a, b, cfg)[0] for a, b in plan]
    return _Open(z, total, plan, starts, valid, OverlapAdd((z.shape[0],)))


def _latent(t: _Open, s: _Segment) -> np.ndarray:
    a, b = t.plan[s.window]
    return t.z[s.channel, :, a:b]


def _stitch(
    opened: dict[int, _Open], segs: list[_Segment], audio: np.ndarray
) -> list[tuple[int, np.ndarray | None]]:
    """Add a finished pass's windows to their tracks; return the blocks that became ready."""
    out: list[tuple[int, np.ndarray | None]] = []
    for s, x in zip(segs, audio, strict=True):
        t = opened[s.track]
        channels = t.z.shape[0]
        if s.window not in t.pending:
            t.pending[s.window] = np.empty((channels, x.shape[-1]), np.float32)
            t.filled[s.window] = 0
        t.pending[s.window][s.channel] = x
        t.filled[s.window] += 1
        if t.filled[s.window] < channels:
            continue
        assert s.window == t.stitched, "windows of a track are stitched in order"
        del t.filled[s.window]
        piece = t.pending.pop(s.window)
        i, start = s.window, t.starts[s.window]
        t.ola.add(start, piece, ramp_weights(t.valid, i, start, piece.shape[-1]))
        t.stitched += 1
        nxt = i + 1
        ready = min(t.valid[nxt][0] if nxt < len(t.plan) else t.total, t.total)
        if ready > t.ola.base:
            out.append((s.track, t.ola.pop(ready)))
        if t.stitched == len(t.plan):
            out += _finish(opened, s.track)
    return out


def _finish(opened: dict[int, _Open], index: int) -> list[tuple[int, np.ndarray | None]]:
    """Close a track: its tail as ``iter_decode`` ends it, then the end mark."""
    t = opened.pop(index)
    out: list[tuple[int, np.ndarray | None]] = []
    if t.ola.base < t.total:  # num_samples beyond the decoded span: pad with silence
        tail = t.ola.pop(min(t.total, t.ola.base + t.ola.wsum.shape[0]))
        out.append(
            (index, np.pad(tail, ((0, 0), (0, t.total - t.ola.base))) if t.ola.base < t.total else tail)
        )
    out.append((index, None))
    return out
