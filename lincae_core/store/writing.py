"""The writer's side of a latent store (a part of :class:`~lincae_core.store.LatentStore`):
planning the layout, writing latents, marking rows done or failed, the failure ledger.

A shard process writes only the rows :meth:`StoreWriting.shard_tracks` gives it, in a frame
region that starts on a chunk boundary, with whole status chunks and its own ledger file, so two
shard processes never write the same file (docs/store-format.md, "Concurrency").
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

import lincae_core.store.layout as sl
from lincae_core.errors import LincaeError, ShapeMismatchError, StoreFormatError
from lincae_core.store.base import StoreBase
from lincae_core.store.layout import PlanRow
from lincae_core.store.ledger import append_ledger
from lincae_core.store.lineage import utc_now
from lincae_core.store.loudness_stats import create_loudness
from lincae_core.store.table import write_table

__all__ = ["StoreWriting"]


class StoreWriting(StoreBase):
    """Planning and writing a store."""

    # ------------------------------------------------------------------------- planning
    def plan(self, tracks: Sequence[PlanRow], *, shards: int = 1, loudness: bool = False) -> None:
        """Fix the layout once: a row per :class:`~lincae_core.store.layout.PlanRow` (or plain
        ``(key, frames, samples, source_rate, channels)`` tuple).

        Tracks are laid out contiguously in the given order; shard ``s`` owns the rows
        :meth:`shard_tracks` returns, in a region that starts on a chunk boundary. Planning an
        already planned store with the same tracks does nothing (so a re-run resumes).
        ``loudness`` adds the per-track ``tracks/loudness_lufs`` array (NaN until measured).

        Raises:
            StoreFormatError: The store is already planned with other tracks, or bad rows.
        """
        self._require_writable()
        table = sl.rows_to_table(tracks, str(self.path))
        if self.layout is not None:
            if all(
                np.array_equal(table[c], self._table[c])
                for c in ("key", "frames", "samples", "source_rate", "channels")
            ):
                return
            raise StoreFormatError(f"{self.path} is already planned with other tracks")
        lay = sl.plan_layout(table["frames"], self.chunk_frames, shards)
        table["offset"] = lay.offsets
        sl.validate_table(table, lay.total_frames, self._geometry, str(self.path))
        write_table(self._group, table, lay.status_chunk)
        if loudness:
            create_loudness(self._group, len(table["key"]), lay.status_chunk)
        self._latents.resize(lay.total_frames)
        self._set_attr("layout", {"shards": lay.shards, "tracks_per_shard": lay.tracks_per_shard})
        self._table, self._index = table, None

    def shard_tracks(self, shard: int) -> range:
        """Row indices owned by ``shard`` (empty past the last shard)."""
        t, n = self._require_layout()["tracks_per_shard"], self.n_tracks
        return range(min(shard * t, n), min((shard + 1) * t, n))

    def shard_of(self, index: int) -> int:
        """The shard that owns row ``index``."""
        return int(index) // self._require_layout()["tracks_per_shard"]

    # -------------------------------------------------------------------------- writing
    def cast_latents(self, index: int, z: np.ndarray) -> np.ndarray:
        """``z[frames, C, D]`` of row ``index`` checked and cast to the storage dtype (not written).

        Raises:
            ShapeMismatchError: ``z`` does not have the planned shape.
            LincaeError: Non-finite values (after the cast to the storage dtype).
        """
        t = self.track(index)
        want = (t.frames, self.channels, self._geometry.latent_dim)
        if tuple(z.shape) != want:
            raise ShapeMismatchError(
                f"{self.path}: track {t.key!r}: expected latents of shape {want}, got {tuple(z.shape)}"
            )
        with np.errstate(over="ignore", invalid="ignore"):  # reported just below
            zz = np.asarray(z).astype(self.dtype, copy=False)
        if not np.isfinite(zz).all():
            raise LincaeError(
                f"{self.path}: track {t.key!r}: expected finite latents "
                f"(got NaN/inf after the cast to {self.dtype})"
            )
        return zz

    def write_track(self, index: int, z: np.ndarray) -> None:
        """Write the latents ``z[frames, C, D]`` of row ``index`` (then call :meth:`mark_done`).

        Raises:
            ShapeMismatchError: ``z`` does not have the planned shape.
            LincaeError: Non-finite values (after the cast to the storage dtype).
            StoreReplacedError: Another writer replaced the store (:meth:`check_writer`).
        """
        self._require_writable()
        z = self.cast_latents(index, z)
        with self._writing():
            self._latents.write(self.track(index).offset, z)

    def write_tracks(self, indices: Sequence[int], zs: Sequence[np.ndarray]) -> int:
        """Write several rows' latents, rows adjacent in the array in one write each run.

        Many short tracks share a chunk; writing them one by one rewrites that chunk once per
        track, writing a run of adjacent tracks at once rewrites it once. The bytes written are
        the same. Call :meth:`mark_done` afterwards.

        Returns:
            The number of write calls made (runs of adjacent rows).

        Raises:
            ShapeMismatchError, LincaeError: As :meth:`write_track` (nothing is written then).
        """
        self._require_writable()
        self.check_writer()
        parts = sorted(
            (
                (int(self._table["offset"][i]), self.cast_latents(i, z))
                for i, z in zip(indices, zs, strict=True)
            ),
            key=lambda p: p[0],
        )
        runs: list[tuple[int, list[np.ndarray]]] = []
        end = -1
        for offset, z in parts:
            if runs and offset == end:
                runs[-1][1].append(z)
            else:
                runs.append((offset, [z]))
            end = offset + z.shape[0]
        for offset, zz in runs:  # checked above, then after each run
            with self._writing(checked=True):
                self._latents.write(offset, zz[0] if len(zz) == 1 else np.concatenate(zz))
        return len(runs)

    def copy_tracks(
        self, src: StoreBase, pairs: Sequence[tuple[int, int]], block_frames: int = 1 << 16
    ) -> int:
        """Copy the latents of rows ``i`` of ``src`` into rows ``j`` of this store, for each
        ``(i, j)`` of ``pairs`` (same frames, channels, latent size and dtype), byte for byte; runs
        of rows adjacent in both stores are copied in blocks of ``block_frames``. Call
        :meth:`mark_done` afterwards.

        Returns:
            The number of frames copied.

        Raises:
            ShapeMismatchError: A pair's rows differ in frames, or the stores in layout.
        """
        self._require_writable()
        self.check_writer()
        if (src.channels, src.dtype, src.geometry.latent_dim) != (
            self.channels,
            self.dtype,
            self._geometry.latent_dim,
        ):
            raise ShapeMismatchError(
                f"{self.path}: copy from {src.path}: another channel count, dtype or latent size"
            )
        runs: list[list[int]] = []  # [src_start, dst_start, frames]
        for i, j in sorted(pairs, key=lambda p: p[1]):
            a, b = src.track(i), self.track(j)
            if a.frames != b.frames:
                raise ShapeMismatchError(f"{self.path}: copy of {a.key!r}: {a.frames} frames into {b.frames}")
            if runs and runs[-1][0] + runs[-1][2] == a.offset and runs[-1][1] + runs[-1][2] == b.offset:
                runs[-1][2] += a.frames
            else:
                runs.append([a.offset, b.offset, a.frames])
        step = max(self.chunk_frames, block_frames // self.chunk_frames * self.chunk_frames)
        for s0, d0, n in runs:
            pos = 0
            while pos < n:  # blocks end on the destination's chunk boundaries
                end = min(n, (d0 + pos) // step * step + step - d0)
                block = src.latents.read(s0 + pos, s0 + end)
                with self._writing(checked=True):  # checked above, then after each block
                    self._latents.write(d0 + pos, block)
                pos = end
        return sum(n for _, _, n in runs)

    def mark_done(self, index: int | Sequence[int] | np.ndarray) -> None:
        """Mark rows done; call only after their latents are written."""
        self._set_status(index, sl.STATUS_DONE)

    def mark_failed(self, index: int, reason: str) -> None:
        """Record why row ``index`` failed in its shard's ledger file, then mark it failed."""
        self._require_writable()
        t = self.track(index)
        shard = self.shard_of(index) if self.layout is not None else 0
        self._append_ledger(
            f"shard-{shard:04d}",
            {"key": t.key, "index": int(index), "reason": str(reason), "time": utc_now()},
        )
        self._set_status(index, sl.STATUS_FAILED)

    def record_failure(self, source: str, reason: str, *, writer: str = "plan") -> None:
        """Record an input that never got a row (e.g. unreadable at planning time).

        Args:
            source: The input's key or path.
            reason: Why it failed.
            writer: Names the ledger file (``ledger/<writer>.jsonl``); one writer per process.
        """
        self._require_writable()
        if not writer.replace("-", "").replace("_", "").isalnum():
            raise ValueError(f"writer: expected letters, digits, '-' or '_', got {writer!r}")
        self._append_ledger(
            writer, {"key": str(source), "index": None, "reason": str(reason), "time": utc_now()}
        )

    def _set_status(self, index: Any, status: int) -> None:
        self._require_writable()
        idx = np.atleast_1d(np.asarray(index, dtype=np.int64))
        if idx.size and (idx.min() < 0 or idx.max() >= self.n_tracks):
            raise IndexError(f"{self.path}: track index out of range [0, {self.n_tracks})")
        with self._writing():
            arr = self._group["tracks/status"]
            if idx.size == self.n_tracks and np.array_equal(idx, np.arange(self.n_tracks)):
                arr[:] = np.full(self.n_tracks, status, dtype=np.int8)
            elif idx.size:
                arr[idx] = np.int8(status)
        self._table["status"][idx] = status

    def _append_ledger(self, writer: str, record: dict[str, Any]) -> None:
        with self._writing():
            append_ledger(self._directory / "ledger", writer, record)
