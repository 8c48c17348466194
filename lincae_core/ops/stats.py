"""Per-dimension latent statistics of a store (``lincae stats``), streamed out of core.

Only done tracks count. Frames are read in bounded blocks over the runs of consecutive done
tracks and merged with Chan et al.'s pairwise update of (count, mean, M2) in float64, so the
result does not depend on the block size beyond rounding and memory stays a few blocks. The
record is stored in the store's ``stats`` attribute (version :data:`STATS_VERSION`), per latent
channel: ``mean`` and ``std`` are ``[C][D]`` (population std, ``ddof=0``).
"""

from __future__ import annotations

import hashlib
import os
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from lincae_core.errors import LincaeError
from lincae_core.ops.outputs import unfinished
from lincae_core.store import LatentStore
from lincae_core.store.layout import STATUS_DONE
from lincae_core.store.lineage import utc_now
from lincae_core.store.loudness_stats import STATS_VERSION

__all__ = ["STATS_VERSION", "StatsResult", "compute_stats", "merge_moments", "stats_store"]

DEFAULT_BLOCK = 16384


@dataclass(frozen=True)
class StatsResult:
    """What ``stats_store`` measured. ``to_dict()`` is its JSON record (``--json``).

    Attributes:
        out: The annotated store.
        stats: The record stored in its ``stats`` attribute.
        left_out: Per path, its planned and failed tracks (not measured; empty: none).
    """

    out: str
    stats: dict[str, Any]
    left_out: dict[str, dict[str, int]] = field(default_factory=dict)
    op: str = "stats"

    @property
    def tracks(self) -> int:
        """Done tracks measured."""
        return int(self.stats["count_tracks"])

    @property
    def frames(self) -> int:
        """Latent frames measured."""
        return int(self.stats["count_frames"])

    def to_dict(self) -> dict[str, Any]:
        """The JSON record: op, out, tracks, frames, stats, and left_out when there are any."""
        return {
            "op": self.op,
            "out": self.out,
            "tracks": self.tracks,
            "frames": self.frames,
            "stats": self.stats,
            **({"left_out": self.left_out} if self.left_out else {}),
        }


def merge_moments(
    a: tuple[int, np.ndarray, np.ndarray], b: tuple[int, np.ndarray, np.ndarray]
) -> tuple[int, np.ndarray, np.ndarray]:
    """Combine two ``(count, mean, M2)`` summaries (Chan et al. 1979), float64."""
    na, ma, sa = a
    nb, mb, sb = b
    if nb == 0:
        return a
    if na == 0:
        return b
    n = na + nb
    delta = mb - ma
    return n, ma + delta * (nb / n), sa + sb + delta**2 * (na * nb / n)


def done_runs(table: dict[str, np.ndarray]) -> list[tuple[int, int]]:
    """Frame ranges ``[a, b)`` of the latent array covered by done tracks, adjacent ones merged."""
    rows = np.flatnonzero((table["status"] == STATUS_DONE) & (table["frames"] > 0))
    runs: list[tuple[int, int]] = []
    for r in rows[np.argsort(table["offset"][rows], kind="stable")]:
        a, b = int(table["offset"][r]), int(table["offset"][r] + table["frames"][r])
        if runs and runs[-1][1] == a:
            runs[-1] = (runs[-1][0], b)
        else:
            runs.append((a, b))
    return runs


def _blocks(runs: list[tuple[int, int]], block: int) -> Iterator[tuple[int, int]]:
    for a, b in runs:
        for s in range(a, b, block):
            yield s, min(s + block, b)


def done_tracks_sha256(table: dict[str, np.ndarray]) -> str:
    """SHA-256 of the keys of the done tracks, in table order: what a ``stats`` record was
    measured on (compared before ``export --normalize`` uses the record)."""
    keys = "\n".join(str(k) for k in table["key"][table["status"] == STATUS_DONE])
    return hashlib.sha256(keys.encode("utf-8")).hexdigest()


def compute_stats(
    store: LatentStore, *, block_frames: int = DEFAULT_BLOCK, progress: Callable[[int], None] | None = None
) -> dict[str, Any]:
    """The ``stats`` record of ``store``'s done tracks (see the module docstring).

    Raises:
        LincaeError: The store has no done frames.
    """
    table = store.table()
    c, d = store.channels, store.geometry.latent_dim
    acc: tuple[int, np.ndarray, np.ndarray] = (0, np.zeros((c, d)), np.zeros((c, d)))
    for a, b in _blocks(done_runs(table), max(1, block_frames)):
        z = store.latents.read(a, b).astype(np.float64)
        m = z.mean(axis=0)
        acc = merge_moments(acc, (b - a, m, ((z - m) ** 2).sum(axis=0)))
        if progress is not None:
            progress(b - a)
    n, mean, m2 = acc
    if n == 0:
        raise LincaeError(f"{store.path}: no done frames to measure (finish its encode first)")
    done = table["status"] == STATUS_DONE
    return {
        "version": STATS_VERSION,
        "count_frames": int(n),
        "count_tracks": int(done.sum()),
        "tracks_sha256": done_tracks_sha256(table),
        "per_channel": True,
        "ddof": 0,
        "mean": mean.tolist(),
        "std": np.sqrt(m2 / n).tolist(),
        "time": utc_now(),
    }


def stats_store(
    src: LatentStore | str | os.PathLike,
    *,
    block_frames: int = DEFAULT_BLOCK,
    progress: Callable[[int], None] | None = None,
) -> StatsResult:
    """Measure the per-dimension mean/std of ``src`` and store them in its ``stats`` attribute.

    The store is annotated in place (its latents are not touched); run it when no encode is
    writing the store. A later run replaces the record.

    Returns:
        The record and the store (:class:`StatsResult`), with the planned and failed tracks
        left out (not measured) when there are any.
    """
    path = src.path if isinstance(src, LatentStore) else src
    store = LatentStore.open(path, "r+")
    record = compute_stats(store, block_frames=block_frames, progress=progress)
    store.set_stats(record)
    return StatsResult(out=str(store.path), stats=record, left_out=unfinished([store]))
