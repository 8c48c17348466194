"""Executing an encode plan: streamed audio in worker threads, batched forward passes, stitching.

Data flow (one process, one shard)::

    reader threads (bounded)             main thread
    AudioStream(row r) --windows--> q_r  --> batch slots (schedule) --> forward [N, L] -> [N, D, W]
    AudioStream(row r+1) ---------> q_r+1        |                            |
                                                 +-- per-row latent cross-fade (OverlapAdd)
                                                 +-- write_track + mark_done (main thread only)

Readers (:mod:`lincae_core.encoding.readers`) stream each row's audio window by window while
the model runs; the forward passes (:mod:`lincae_core.encoding.forward`) run in the main thread
or, with parallel passes, one per worker and stitched in submission order. All store writes
happen in the main thread, in row order within a block, so two writes never race on a chunk.
"""

from __future__ import annotations

import logging
import queue
import threading
import time
from collections import deque
from collections.abc import Callable, Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any, NamedTuple

import numpy as np

from lincae_core.config import ModelConfig
from lincae_core.device import torch_threads
from lincae_core.encoding.readers import RowEnd, RowJob, read_row
from lincae_core.encoding.schedule import BlockSchedule
from lincae_core.errors import StoreReplacedError
from lincae_core.location import Location, RemotePath
from lincae_core.store import LatentStore
from lincae_core.windowing import OverlapAdd, ramp_weights, window_span

__all__ = ["RunStats", "Runner"]

log = logging.getLogger(__name__)

_MARK_EVERY = 64  # per-track writes: rows marked done per status write (a kill redoes at most these)
_MARK_SECONDS = 2.0
# chunk writes: finished tracks wait in memory until their span reaches the next chunk, at most
# this long or this many bytes, then are written together and marked done
_BUFFER_SECONDS = 0.5
_BUFFER_BYTES = 64 << 20
# Into object storage every flush costs requests (the partly filled object, the status and loudness
# chunks are rewritten whole): flush there when the buffer spans this many objects, or this often;
# a kill redoes at most that much work (docs/object-storage.md).
_REMOTE_FLUSH_OBJECTS = 4
_REMOTE_FLUSH_SECONDS = 60.0


class _Reading(NamedTuple):
    """A row being read: its block's schedule, the reader's job, queue and future."""

    schedule: BlockSchedule
    job: RowJob
    items: queue.Queue[Any]
    future: Future[None]


class _PassResult(NamedTuple):
    """The latents ``[N, D, W]`` of one forward pass and the seconds it took."""

    latents: np.ndarray
    seconds: float


class _Pass(NamedTuple):
    """A parallel forward pass in flight: batch ``batch`` of ``schedule``."""

    future: Future[_PassResult]
    schedule: BlockSchedule
    batch: int


class _RowState:
    """Cross-fade accumulators of one row being encoded (one preallocated OverlapAdd a channel)."""

    def __init__(self, channels: int, dim: int, frames: int, segments: int) -> None:
        self.frames = frames
        self.ola = [OverlapAdd((dim,), frames) for _ in range(channels)]
        self.left = segments

    def latents(self) -> np.ndarray:
        """The stitched latents ``[C, D, Z]``."""
        return np.stack([o.pop(self.frames) for o in self.ola])


@dataclass
class RunStats:
    """Counters of one run (for the summary and the progress callback)."""

    encoded: int = 0
    failed: int = 0
    seconds: float = 0.0
    model_seconds: float = 0.0  # inside ``forward`` (the encoder), for busy / wall
    writes: int = 0  # latent array write calls


class Runner:
    """Executes block schedules for the pending rows of one shard."""

    def __init__(
        self,
        store: LatentStore,
        cfg: ModelConfig,
        forward: Callable[[np.ndarray], np.ndarray],
        paths: dict[int, Location],
        pending: np.ndarray,
        mode: str,
        on_progress: Callable[[RunStats, int], None] | None = None,
        chunk_writes: bool = True,
        forward_workers: int = 1,
    ) -> None:
        """Prepare to encode the ``pending`` rows (a boolean mask over the table) of ``store``.

        Args:
            store: The store, open ``r+``.
            cfg: The model config.
            forward: Segments ``[N, L]`` -> raw latents ``[N, D, W]``
                (:func:`lincae_core.encoding.forward.encoder_forward`).
            paths: Audio file of every row of the blocks this run touches.
            pending: ``(N,)`` rows to encode and write.
            mode: ``"mono"`` or ``"stereo"``.
            on_progress: Called with the counters and the number of rows just finished.
            chunk_writes: Buffer finished rows and write them together (whole chunks at a time)
                rather than one write per row; either way a row is marked done only after its
                latents are written.
            forward_workers: Forward passes run at once, each on one torch thread (1: one at a
                time in this thread, on torch's own threads). Results are stitched in submission
                order, so the output does not depend on this number (docs/encoding.md).
        """
        self.store, self.forward, self.paths, self.pending = store, forward, paths, pending
        self.replaced = False  # another writer replaced the store: flush nothing on the way out
        remote = isinstance(store.path, RemotePath)
        self.flush_objects = _REMOTE_FLUSH_OBJECTS if remote else 1
        self.flush_seconds = _REMOTE_FLUSH_SECONDS if remote else _BUFFER_SECONDS
        self.mode, self.on_progress = mode, on_progress
        self.cfg = cfg
        self.table = store.table()
        self.channels = 1 if mode == "mono" else 2
        self.states: dict[int, _RowState] = {}
        self.data: dict[int, np.ndarray] = {}
        self.fill: dict[int, int] = {}
        self.ends: dict[int, RowEnd] = {}
        self.loudness: dict[int, float] = {}
        self.done: list[int] = []
        self.chunk_writes = chunk_writes
        self.unwritten: dict[int, np.ndarray] = {}  # finished rows waiting to be written
        self.unwritten_span = [0, 0]  # min offset, max end of the unwritten rows
        self.unwritten_bytes = 0
        self.flushed_at = time.monotonic()
        self.stats = RunStats()
        self.forward_workers = max(1, int(forward_workers))
        self.forwards: deque[_Pass] = deque()
        self.fpool: ThreadPoolExecutor | None = None

    def jobs(self, schedules: Iterator[BlockSchedule]) -> Iterator[tuple[BlockSchedule, RowJob]]:
        """Reader jobs of every needed row, in schedule order."""
        for s in schedules:
            for r in s.needed_rows():
                spans = [window_span(a, b, self.cfg) for a, b in s.windows[r]]
                yield (
                    s,
                    RowJob(
                        r,
                        self.paths.get(r),
                        spans,
                        s.window_needed(r),
                        int(self.table["samples"][r]),
                        bool(self.pending[r]),
                    ),
                )

    def run(self, schedules: Iterator[BlockSchedule], workers: int, batch_size: int) -> RunStats:
        """Stream, encode, stitch and write every pending row; return the counters."""
        stop = threading.Event()
        qsize = max(2, -(-batch_size // self.channels))
        pool = ThreadPoolExecutor(max(1, workers), thread_name_prefix="lincae-read")
        inflight: deque[_Reading] = deque()
        parallel = self.forward_workers > 1
        if parallel:
            self.fpool = ThreadPoolExecutor(self.forward_workers, thread_name_prefix="lincae-forward")
        # One torch thread per forward: several small passes at once beat one pass on every core
        # (docs/encoding.md, "Speed options").
        with torch_threads(1 if parallel else None):
            try:
                for s, job in self.jobs(schedules):
                    q: queue.Queue[Any] = queue.Queue(maxsize=qsize)
                    fut = pool.submit(read_row, job, self.cfg.sample_rate, self.mode, q, stop)
                    inflight.append(_Reading(s, job, q, fut))
                    if len(inflight) > 2 * workers:  # look-ahead: bounded, keeps the readers busy
                        self._consume(inflight.popleft())
                while inflight:
                    self._consume(inflight.popleft())
                while self.forwards:
                    self._complete_next()
            except StoreReplacedError:
                self.replaced = True  # the store is another writer's now: write nothing more
                raise
            finally:
                stop.set()
                pool.shutdown(wait=True, cancel_futures=True)
                if self.fpool is not None:
                    self.fpool.shutdown(wait=True, cancel_futures=True)
                    self.forwards.clear()  # an error stopped the run: their rows stay planned
                if not self.replaced:
                    self._flush_done()  # on an exception too (Ctrl-C): written rows are complete
        return self.stats

    def _consume(self, reading: _Reading) -> None:
        """Take one row's windows from its reader into the batch slots, running full batches."""
        s, job, q, fut = reading
        while True:
            try:
                item = q.get(timeout=0.5)
            except queue.Empty:
                if fut.done() and q.empty():
                    fut.result()  # re-raises a reader's unexpected error
                    raise RuntimeError(f"reader of {job.path} ended without a result") from None
                continue
            if isinstance(item, RowEnd):
                self._row_end(job.row, item)
                return
            for c, slot in enumerate(s.slots[job.row][item.number]):
                if s.needed[slot.batch]:
                    self._fill(s, slot.batch, slot.slot, item.audio[c])

    def _fill(self, s: BlockSchedule, b: int, slot: int, x: np.ndarray) -> None:
        key = (s.block << 32) | b
        if key not in self.data:
            self.data[key] = np.empty((len(s.batches[b]), x.shape[-1]), np.float32)
            self.fill[key] = 0
        self.data[key][slot] = x
        self.fill[key] += 1
        if self.fill[key] == len(s.batches[b]):
            del self.fill[key]
            if self.fpool is None:
                self._complete(self._timed_forward(self.data.pop(key)), s, b)
                return
            while len(self.forwards) >= self.forward_workers:  # at most one pass per worker
                self._complete_next()
            self.forwards.append(_Pass(self.fpool.submit(self._timed_forward, self.data.pop(key)), s, b))

    def _timed_forward(self, x: np.ndarray) -> _PassResult:
        t0 = time.perf_counter()
        return _PassResult(self.forward(x), time.perf_counter() - t0)

    def _complete_next(self) -> None:
        """Wait for the oldest parallel pass and stitch it (submission order: the same sums
        whatever the number of forward workers)."""
        done = self.forwards.popleft()
        self._complete(done.future.result(), done.schedule, done.batch)

    def _complete(self, result: _PassResult, s: BlockSchedule, b: int) -> None:
        """Stitch the latents ``[N, D, W]`` of one finished pass of batch ``b``."""
        self.stats.model_seconds += result.seconds / self.forward_workers  # busy share of the workers
        for seg, zi in zip(s.batches[b], result.latents, strict=True):
            if self.pending[seg.row]:
                self._stitch(s, seg.row, seg.window, seg.channel, zi)

    def _state(self, s: BlockSchedule, r: int) -> _RowState:
        if r not in self.states:
            frames = int(self.table["frames"][r])
            self.states[r] = _RowState(
                self.channels, self.cfg.latent_dim, frames, len(s.windows[r]) * self.channels
            )
        return self.states[r]

    def _stitch(self, s: BlockSchedule, r: int, i: int, c: int, z: np.ndarray) -> None:
        st, plan = self._state(s, r), s.windows[r]
        start = plan[i][0]
        st.ola[c].add(start, z, ramp_weights(s.regions[r], i, start, z.shape[-1]))  # as inference.encode
        st.left -= 1
        share = len(plan) * self.channels  # each segment reports its share of the row's duration
        self.stats.seconds += int(self.table["samples"][r]) / self.cfg.sample_rate / share
        if self.on_progress:
            self.on_progress(self.stats, 0)
        if st.left == 0 and r in self.ends:
            self._finish(r)

    def _row_end(self, r: int, end: RowEnd) -> None:
        if not self.pending[r]:
            return
        self.ends[r] = end
        st = self.states.get(r)
        if st is not None and st.left == 0:
            self._finish(r)

    def _finish(self, r: int) -> None:
        st = self.states.pop(r)
        end = self.ends.pop(r)
        length, error = end.length, end.error
        samples = int(self.table["samples"][r])
        if error is None and length != samples:
            error = (
                f"{self.paths[r]}: decoded {length} samples at {self.cfg.sample_rate} Hz but the "
                f"header promised {samples} (truncated or corrupt file)."
            )
        if error is not None:
            self.store.mark_failed(r, error)
            self.stats.failed += 1
            log.warning("failed: %s", error)
        else:
            z = np.ascontiguousarray(st.latents().transpose(2, 0, 1))  # [Z, C, D]
            self.loudness[r] = end.lufs
            self.stats.encoded += 1
            if self.chunk_writes:
                self._buffer(r, z)
            else:
                self.store.write_track(r, z)
                self.stats.writes += 1
                self.done.append(r)
                if len(self.done) >= _MARK_EVERY or time.monotonic() - self.flushed_at > _MARK_SECONDS:
                    self._flush_done()
        if self.on_progress:
            self.on_progress(self.stats, 1)

    def _buffer(self, r: int, z: np.ndarray) -> None:
        """Keep a finished row until the buffer reaches the next chunk (or its time/size limit)."""
        start = int(self.table["offset"][r])
        end = start + z.shape[0]
        span = self.unwritten_span
        if not self.unwritten:
            span[0], span[1] = start, end
        span[0], span[1] = min(span[0], start), max(span[1], end)
        self.unwritten[r] = self.store.cast_latents(r, z)
        self.unwritten_bytes += self.unwritten[r].nbytes
        cf = self.store.chunk_frames
        if (
            (span[1] - 1) // cf - span[0] // cf >= self.flush_objects
            or self.unwritten_bytes > _BUFFER_BYTES
            or time.monotonic() - self.flushed_at > self.flush_seconds
        ):
            self._flush_done()

    def _flush_done(self) -> None:
        # The buffers are taken before they are written: a failed write is not written again on
        # the way out (its rows stay planned, and the next run encodes them).
        if self.unwritten:
            rows = sorted(self.unwritten)
            zs = [self.unwritten[r] for r in rows]
            self.unwritten.clear()
            self.unwritten_bytes = 0
            self.stats.writes += self.store.write_tracks(rows, zs)
            self.done.extend(rows)
        if self.done:
            rows, self.done = sorted(self.done), []
            self.store.write_loudness(rows, [self.loudness.pop(r) for r in rows])
            self.store.mark_done(rows)
        self.flushed_at = time.monotonic()
