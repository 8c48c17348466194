"""Planning of latent store operations: which input frames make each output track.

Pure numpy over track tables (no I/O): pairing of tracks across inputs (by key, by position,
or at random with a seed) and the length policy (:func:`plan_mix`, the plan of gain, mix,
extract and the channel edits; ``select`` and ``concat`` plan in their own modules). The result,
an :class:`OpPlan`, says for every output track ``i`` and input ``k`` where to read
(``src_offset[k, i]``, a frame index into input ``k``'s latent array), how many frames input
``k`` can give (``src_frames[k, i]``; the rest of the output track is silence, i.e. zeros) and
with which gain (``gains[k, i]``), optionally through a :class:`FrameShape` (per-frame gains, a
channel matrix) or along a :class:`Placement` (crossfaded lanes). :mod:`lincae_core.ops.engine`
executes it chunk by chunk.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from lincae_core.errors import ConfigError, StoreMismatchError
from lincae_core.ops.envelopes import envelope_gains, fade_gains, frame_centres
from lincae_core.store.layout import STATUS_DONE, PlanRow

PAIRS = ("key", "position", "random")
LENGTHS = ("shortest", "longest", "first")
MISSING = ("error", "skip")
RANDOM_GAIN_RANGE = (0.5, 1.0)  # default range of the random gain factors of pair="random"
Table = dict[str, np.ndarray]


@dataclass(frozen=True)
class FrameShape:
    """Per-frame gain (envelope x fades) and channel matrix applied to each input latent.

    Attributes:
        sample_rate, samples_per_frame: The store geometry (frame centres).
        times, gains: Envelope points (seconds, amplitude); empty: no envelope.
        fade_in_s, fade_out_s: Linear fades at the start/end of every track (0: none).
        matrix: ``[C, C]`` channel matrix ``z_out[c] = sum_c' M[c, c'] z[c']`` or None.
    """

    sample_rate: int
    samples_per_frame: int
    times: tuple[float, ...] = ()
    gains: tuple[float, ...] = ()
    fade_in_s: float = 0.0
    fade_out_s: float = 0.0
    matrix: tuple[tuple[float, ...], ...] | None = None

    def __post_init__(self) -> None:
        for n, v in (("fade_in", self.fade_in_s), ("fade_out", self.fade_out_s)):
            if not (math.isfinite(v) and v >= 0):
                raise ConfigError(f"{n}: expected seconds >= 0, got {v!r}")
        if len(self.times) != len(self.gains):
            raise ConfigError("envelope: expected one gain per time")

    @property
    def time_varying(self) -> bool:
        """True when gains change from frame to frame."""
        return bool(self.times) or self.fade_in_s > 0 or self.fade_out_s > 0

    def frame_gains(self, start: int, n: int, samples: int) -> np.ndarray:
        """Gains ``[n]`` (float32) of frames ``start..start+n-1`` of a track of ``samples``."""
        t = frame_centres(start, n, self.samples_per_frame, self.sample_rate)
        g = fade_gains(t, samples / self.sample_rate, self.fade_in_s, self.fade_out_s)
        if self.times:
            g = g * envelope_gains(t, self.times, self.gains)
        return g.astype(np.float32)

    def apply(self, z: np.ndarray, start: int, samples: int) -> np.ndarray:
        """The shaped latent of frames ``start..`` of a track: reference for the engine's path."""
        out = z.astype(np.float32)
        if self.matrix is not None:
            out = np.einsum("ec,ncd->ned", np.asarray(self.matrix, np.float32), out)
        if self.time_varying:
            out = out * self.frame_gains(start, z.shape[0], samples)[:, None, None]
        return out


@dataclass(frozen=True)
class Placement:
    """Segments placed along their output track, with crossfade ramps (``lincae concat``).

    Plans with a placement have ``K`` lanes instead of ``K`` inputs: lane ``k`` of output track
    ``i`` is a segment of input ``input_index[k]`` that starts at frame ``dst_offset[k, i]`` of the
    output track, reads ``src_frames[k, i]`` frames from ``src_offset[k, i]`` (as in ``OpPlan``)
    and is multiplied by :func:`ramp_gains` with ``ramp_in[k, i]`` and ``ramp_out[k, i]`` frames.

    Attributes:
        input_index: ``(K,)`` input of each lane.
        dst_offset, ramp_in, ramp_out: ``(K, N)`` int64 frames.
    """

    input_index: tuple[int, ...]
    dst_offset: np.ndarray
    ramp_in: np.ndarray
    ramp_out: np.ndarray

    def columns(self, sl: slice) -> Placement:
        """The placement of output tracks ``sl`` only (what one work unit needs)."""
        return Placement(self.input_index, self.dst_offset[:, sl], self.ramp_in[:, sl], self.ramp_out[:, sl])


@dataclass(frozen=True)
class OpPlan:
    """Output track table of an operation and, per input, where its frames come from.

    Shapes: ``N`` output tracks, ``K`` inputs; ``keys``/``frames``/... are ``(N,)``,
    ``src_offset``/``src_frames``/``gains`` are ``(K, N)``.
    """

    keys: list[str]
    frames: np.ndarray
    samples: np.ndarray
    source_rate: np.ndarray
    channels: np.ndarray
    src_offset: np.ndarray
    src_frames: np.ndarray
    gains: np.ndarray
    info: dict[str, Any] = field(default_factory=dict)
    sources: np.ndarray | None = None  # (K, N) input keys of each output track (mix only)
    shape: FrameShape | None = None  # per-frame gains / channel matrix of every input
    placement: Placement | None = None  # K lanes placed along each track, with ramps (concat)

    def rows(self) -> list[PlanRow]:
        """Rows for :meth:`LatentStore.plan`."""
        return [
            PlanRow(*row)
            for row in zip(
                self.keys,
                self.frames.tolist(),
                self.samples.tolist(),
                self.source_rate.tolist(),
                self.channels.tolist(),
                strict=True,
            )
        ]


def _choice(name: str, value: str, allowed: tuple[str, ...]) -> None:
    if value not in allowed:
        raise ConfigError(f"{name}: expected one of {', '.join(allowed)}; got {value!r}")


def done_rows(table: Table) -> np.ndarray:
    """Row indices of the tracks whose status is done, in table order."""
    return np.flatnonzero(table["status"] == STATUS_DONE)


def _missing_error(missing: list[tuple[str, str]], total: int) -> StoreMismatchError:
    shown = ", ".join(f"{k!r} (missing from {p})" for k, p in missing[:3])
    return StoreMismatchError(
        f"{total} track keys are not done tracks of every input, e.g. {shown}; "
        "pass missing='skip' (--missing skip) to drop them"
    )


def pair_by_key(tables: Sequence[Table], names: Sequence[str], missing: str) -> tuple[np.ndarray, dict]:
    """Pair the done tracks of every input by key, in the first input's order.

    Returns:
        ``rows[K, N]`` row indices into each table, and info (``skipped``: keys dropped).

    Raises:
        StoreMismatchError: A key is not done in every input and ``missing`` is ``"error"``.
    """
    maps = [{str(t["key"][r]): int(r) for r in done_rows(t)} for t in tables]
    union: dict[str, None] = {}
    for m in maps:
        union.update(dict.fromkeys(m))
    common = [k for k in maps[0] if all(k in m for m in maps[1:])]
    n_missing = len(union) - len(common)
    if n_missing and missing == "error":
        gaps = [(k, names[j]) for k in union for j, m in enumerate(maps) if k not in m]
        raise _missing_error(gaps, n_missing)
    rows = np.array([[m[k] for k in common] for m in maps], dtype=np.int64).reshape(len(maps), -1)
    return rows, {"skipped": n_missing}


def pair_by_position(tables: Sequence[Table], names: Sequence[str], missing: str) -> tuple[np.ndarray, dict]:
    """Pair the i-th done track of every input; unequal counts are an error unless skipped."""
    done = [done_rows(t) for t in tables]
    counts = [d.size for d in done]
    n = min(counts)
    if max(counts) != n and missing == "error":
        per_input = ", ".join(f"{p}: {c}" for p, c in zip(names, counts, strict=True))
        raise StoreMismatchError(
            f"inputs have different numbers of done tracks ({per_input}); "
            f"pass missing='skip' (--missing skip) to pair only the first {n}"
        )
    return np.stack([d[:n] for d in done]), {"skipped": max(counts) - n}


def pair_at_random(
    tables: Sequence[Table], names: Sequence[str], count: int | None, rng: np.random.Generator
) -> np.ndarray:
    """Draw ``count`` combinations, one done track of each input uniformly with replacement."""
    done = [done_rows(t) for t in tables]
    for d, p in zip(done, names, strict=True):
        if d.size == 0:
            raise StoreMismatchError(f"{p}: no done tracks to pair at random")
    n = done[0].size if count is None else count
    return np.stack([d[rng.integers(0, d.size, n)] for d in done])


def apply_length(policy: str, frames: np.ndarray, samples: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Output length of paired tracks: ``shortest`` (min), ``longest`` (max) or ``first``.

    Args:
        policy: One of :data:`LENGTHS`.
        frames: ``(K, N)`` frames of each input track.
        samples: ``(K, N)`` exact sample lengths of each input track.

    Returns:
        ``(N,)`` frames and samples of the output tracks.
    """
    _choice("length", policy, LENGTHS)
    if policy == "first" or frames.shape[0] == 1:
        return frames[0].copy(), samples[0].copy()
    if policy == "shortest":
        return frames.min(axis=0), samples.min(axis=0)
    return frames.max(axis=0), samples.max(axis=0)


def plan_mix(
    tables: Sequence[Table],
    names: Sequence[str],
    gains: Sequence[float],
    samples_per_frame: int,
    *,
    pair: str = "key",
    length: str = "shortest",
    missing: str = "error",
    seed: int | None = None,
    count: int | None = None,
    gain_range: tuple[float, float] = RANDOM_GAIN_RANGE,
) -> OpPlan:
    """Plan ``z = sum_k g_k z_k`` over paired tracks of ``K`` inputs (see ``ops.mix_stores``)."""
    _choice("pair", pair, PAIRS)
    _choice("missing", missing, MISSING)
    k = len(tables)
    g = np.asarray(gains, dtype=np.float64).reshape(k, 1)
    info: dict[str, Any]
    if pair == "random":
        if count is not None and count < 1:
            raise ConfigError(f"count: expected a positive number of mixes, got {count}")
        lo, hi = gain_range
        if not (math.isfinite(lo) and math.isfinite(hi) and lo <= hi):
            raise ConfigError(f"gain_range: expected finite LO <= HI, got {gain_range}")
        rng = np.random.default_rng(seed)
        rows, info = pair_at_random(tables, names, count, rng), {"seed": seed}
        g = g * rng.uniform(lo, hi, size=rows.shape)
        keys = [f"mix-{i:08d}" for i in range(rows.shape[1])]
    else:
        rows, info = (pair_by_key if pair == "key" else pair_by_position)(tables, names, missing)
        keys = [str(x) for x in tables[0]["key"][rows[0]]] if rows.size else []

    def take(col: str) -> np.ndarray:  # (K, N) column of the paired rows
        return np.stack([t[col][r] for t, r in zip(tables, rows, strict=True)])

    in_frames, in_samples = take("frames"), take("samples")
    frames, samples = apply_length(length, in_frames, in_samples)
    if pair != "random" and in_frames.size:
        differ = np.flatnonzero((in_frames != in_frames[:1]).any(axis=0))
        if differ.size:  # paired by key or position, yet of different lengths: said (mixing.py)
            j = int(differ[0])
            info["length_mismatch"] = {
                "tracks": int(differ.size),
                "example": keys[j],
                "frames": [int(f) for f in in_frames[:, j]],
            }
    first = tables[0]
    return OpPlan(
        keys=keys,
        frames=frames,
        samples=np.minimum(samples, frames * samples_per_frame),
        source_rate=first["source_rate"][rows[0]],
        channels=first["channels"][rows[0]],
        src_offset=take("offset"),
        src_frames=np.minimum(in_frames, frames[None, :]),
        gains=np.broadcast_to(g, rows.shape).copy(),
        info=info,
        sources=np.stack([t["key"][r] for t, r in zip(tables, rows, strict=True)]) if k else None,
    )
