"""Planning of latent store operations: which input frames make each output track.

Pure numpy over track tables (no I/O): pairing of tracks across inputs (by key, by position,
or at random with a seed), the length policy, and time selection. The result, an
:class:`OpPlan`, says for every output track ``i`` and input ``k`` where to read
(``src_offset[k, i]``, a frame index into input ``k``'s latent array), how many frames input
``k`` can give (``src_frames[k, i]``; the rest of the output track is silence, i.e. zeros) and
with which gain (``gains[k, i]``). :mod:`lincae_core.ops.engine` executes it chunk by chunk.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from lincae_core.errors import ConfigError, StoreMismatchError
from lincae_core.ops.shape import FrameShape, Placement
from lincae_core.store.layout import STATUS_DONE

PAIRS = ("key", "position", "random")
LENGTHS = ("shortest", "longest", "first")
MISSING = ("error", "skip")
RANDOM_GAIN_RANGE = (0.5, 1.0)  # default range of the random gain factors of pair="random"
Table = dict[str, np.ndarray]


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
    shape: FrameShape | None = None  # per-frame gains / channel matrix of every input (ops.shape)
    placement: Placement | None = None  # K lanes placed along each track, with ramps (concat)

    def rows(self) -> list[tuple[str, int, int, int, int]]:
        """Rows for :meth:`LatentStore.plan`."""
        return list(
            zip(
                self.keys,
                self.frames.tolist(),
                self.samples.tolist(),
                self.source_rate.tolist(),
                self.channels.tolist(),
                strict=True,
            )
        )


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


def plan_select(
    table: Table,
    name: str,
    sample_rate: int,
    samples_per_frame: int,
    *,
    keys: Sequence[str] | None = None,
    start_s: float | None = None,
    duration_s: float | None = None,
) -> OpPlan:
    """Plan a subset by track keys and a time window, cut at latent frame boundaries.

    ``start_s`` rounds down to a frame boundary and ``duration_s`` up to whole frames; the
    output ``samples`` is the exact audio length inside the cut (at most ``duration_s``).
    Tracks that end before ``start_s`` are dropped and counted in ``info["empty"]``.
    """
    rows = done_rows(table)
    if keys is not None:
        index = {str(table["key"][r]): int(r) for r in rows}
        wanted = list(dict.fromkeys(keys))
        absent = [k for k in wanted if k not in index]
        if absent:
            raise StoreMismatchError(
                f"{len(absent)} requested keys are not done tracks of {name}, e.g. "
                + ", ".join(repr(k) for k in absent[:3])
            )
        rows = np.array([index[k] for k in wanted], dtype=np.int64)
    spf = samples_per_frame
    if start_s is not None and not (math.isfinite(start_s) and start_s >= 0):
        raise ConfigError(f"start: expected seconds >= 0, got {start_s}")
    if duration_s is not None and not (math.isfinite(duration_s) and duration_s > 0):
        raise ConfigError(f"duration: expected seconds > 0, got {duration_s}")
    start = int(math.floor((start_s or 0.0) * sample_rate / spf + 1e-9))
    frames = np.maximum(table["frames"][rows] - start, 0)
    samples = np.clip(table["samples"][rows] - start * spf, 0, None)
    if duration_s is not None:
        frames = np.minimum(frames, math.ceil(duration_s * sample_rate / spf - 1e-9))
        samples = np.minimum(samples, round(duration_s * sample_rate))
    samples = np.minimum(samples, frames * spf)
    keep = frames > 0
    rows, frames, samples = rows[keep], frames[keep], samples[keep]
    return OpPlan(
        keys=[str(x) for x in table["key"][rows]],
        frames=frames,
        samples=samples,
        source_rate=table["source_rate"][rows],
        channels=table["channels"][rows],
        src_offset=(table["offset"][rows] + start)[None, :],
        src_frames=frames[None, :].copy(),
        gains=np.ones((1, rows.size)),
        info={"empty": int((~keep).sum()), "start_frame": start},
    )
