"""The block kernel: one work unit of a store operation, computed and written block by block.

A :class:`Unit` is a run of consecutive output blocks (whole chunks) and the rows of the plan
they need. :func:`run_unit` opens the stores itself (so it can run in a joblib worker process or
on a Dask cluster), fills one float32 block buffer ``[B, C, D]`` from bounded reads of the inputs
(:mod:`lincae_core.ops.blocks`), casts it to the output dtype and writes whole chunks that no
other unit touches. Memory per worker is therefore about ``(1 + 1.5 K) * max_block_frames * C * D
* 4`` bytes, whatever the size of the stores.

Two fast paths, each with a switch so that tests compare it with the general path bit for bit:
``fused_pass`` (one plain input in the output's dtype: :func:`direct`, one pass straight into the
output block) and ``merge_runs`` (runs of contiguous track segments computed as one piece,
:func:`runs`).
"""

from __future__ import annotations

import collections
from collections.abc import Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any, NamedTuple

import numpy as np
import torch

from lincae_core.device import torch_threads
from lincae_core.errors import LincaeError
from lincae_core.ops.blocks import Got, Request, Segments, covers, fetch, requests, segments
from lincae_core.ops.envelopes import ramp_gains
from lincae_core.ops.plan import FrameShape, Placement
from lincae_core.store import LatentArray
from lincae_core.store.array import CachedArray, chunk_cache_bytes

__all__ = ["Unit", "direct", "run_unit", "runs"]


@dataclass(frozen=True)
class Unit:
    """One work unit: chunk-aligned output blocks and the plan rows of the tracks they touch.

    Attributes:
        out_path: Output store (opened ``r+``; only these blocks' chunks are written).
        in_paths: ``K`` input stores (with a placement: one path per lane).
        offs: ``(N,)`` output offsets, ascending.
        frames: ``(N,)`` output frames.
        src_offset: ``(K, N)`` where each output track starts in each input (see ``OpPlan``).
        src_frames: ``(K, N)`` frames each input can give (the rest is silence).
        gains: ``(K, N)`` gain of each input for each output track.
        blocks: Chunk-aligned output frame ranges ``[b0, b1)``.
        max_read: Largest number of frames read from an input at once.
        shape: Per-frame gains / channel matrix applied to every input (None: plain sums).
        samples: ``(N,)`` exact lengths of the output tracks (fade-outs end there).
        origin: ``Enc(0)`` ``[C, D]`` for the affine form (None: the linear form).
        placement: Lanes placed along the output tracks with crossfade ramps.
        fused_pass: Take :func:`direct` where it applies (False: the general path).
        merge_runs: Compute runs of contiguous segments as one piece (False: one at a time).
    """

    out_path: str
    in_paths: tuple[str, ...]
    offs: np.ndarray
    frames: np.ndarray
    src_offset: np.ndarray
    src_frames: np.ndarray
    gains: np.ndarray
    blocks: tuple[tuple[int, int], ...]
    max_read: int
    shape: FrameShape | None = None
    samples: np.ndarray | None = None
    origin: np.ndarray | None = None
    placement: Placement | None = None
    fused_pass: bool = True
    merge_runs: bool = True


class Lane(NamedTuple):
    """One lane of a placement, for the unit's tracks: ``(N,)`` int64 frames."""

    dst: np.ndarray  # frame of the output track where the lane's segment starts
    ramp_in: np.ndarray
    ramp_out: np.ndarray
    frames: np.ndarray  # the segment's frames


def _shaped(z: torch.Tensor, shape: FrameShape, start: int, samples: int) -> torch.Tensor:
    """``z[n, C, D]`` through the channel matrix and the per-frame gains (``FrameShape.apply``)."""
    z = z.float()
    if shape.matrix is not None:
        z = torch.einsum("ec,ncd->ned", torch.tensor(shape.matrix, dtype=torch.float32), z)
    if shape.time_varying:
        z = z * torch.from_numpy(shape.frame_gains(start, z.shape[0], samples))[:, None, None]
    return z


def runs(
    req: Request, rows: np.ndarray, gains: np.ndarray, merge: bool, split_gains: bool
) -> tuple[list[int], list[int]]:
    """First and last+1 segment of each run of a request that is read and computed as one piece.

    ``merge``: consecutive track segments contiguous both in the block's read (``rows``: their
    first rows) and in the output block form one run, and so do their gains, unless
    ``split_gains`` (then a gain change also ends a run). A keyed mix of stores with the same
    track layout then takes one vectorised pass per block instead of one small pass per track,
    and so does a random pairing from its gathered read. Otherwise one segment a run (per-track
    work: frame shapes, crossfade lanes)."""
    idx, pos, a, b = req.track, req.pos, req.start, req.stop
    if not merge or idx.size < 2:
        return list(range(idx.size)), list(range(1, idx.size + 1))
    n = b - a
    brk = (rows[1:] != rows[:-1] + n[:-1]) | (pos[1:] != pos[:-1] + n[:-1])
    if split_gains:
        brk |= gains[idx[1:]] != gains[idx[:-1]]
    cut = np.flatnonzero(brk) + 1
    return [0, *cut.tolist()], [*cut.tolist(), idx.size]


def _pieces(
    req: Request, got: Got, gains: np.ndarray, merge: bool = False, split_gains: bool = False
) -> Iterator[tuple[int, int, torch.Tensor, float | torch.Tensor]]:
    """``(j, p, z, g)`` for each run of a request (:func:`runs`): its first segment ``j``, its
    position ``p`` in the block, its input frames ``z`` (sliced from the block's read ``got``,
    :func:`~lincae_core.ops.blocks.fetch`) and its gain ``g``: a number, or a float32
    ``[n, 1, 1]`` tensor of per-frame gains where the run's tracks have different gains."""
    idx, pos, a, b = req.track, req.pos, req.start, req.stop
    data, rows = got.data, got.rows
    for j, k in zip(*runs(req, rows, gains, merge, split_gains), strict=True):
        n = int(pos[k - 1] + b[k - 1] - a[k - 1] - pos[j])  # a run is contiguous in the output
        g = gains[idx[j:k]]
        if k - j == 1 or bool((g == g[0]).all()):
            gain: float | torch.Tensor = float(g[0])
        else:
            gain = torch.from_numpy(np.repeat(g.astype(np.float32), b[j:k] - a[j:k]))[:, None, None]
        yield j, int(pos[j]), torch.from_numpy(data[int(rows[j]) : int(rows[j]) + n]), gain


def _accumulate(
    buf: torch.Tensor,
    tmp: torch.Tensor,
    req: Request | None,
    got: Got | None,
    gains: np.ndarray,
    shape: FrameShape | None = None,
    samples: np.ndarray | None = None,
    lane: Lane | None = None,
    first: bool = False,
    merge_runs: bool = True,
) -> None:
    """Add ``gain * shape(z_k)`` of one input (``lane``: times its crossfade ramps, for placed
    segments, :class:`~lincae_core.ops.plan.Placement`) into the float32 block buffer
    ``buf[B, C, D]`` (``tmp``: a float32 scratch block of the same size).

    ``first``: the input covers the whole block (:func:`~lincae_core.ops.blocks.covers`) and
    ``buf`` holds garbage: its products are written instead of added (one pass instead of
    zeroing, then adding; the same float32 values, ``0 + g*z == g*z``, but for the sign of a
    zero)."""
    if req is None or got is None:
        return
    idx, local = req.track, req.local
    plain = shape is None and lane is None
    # A channel matrix alone (pan, midside) is the same for every frame: runs of tracks too.
    merge = merge_runs and lane is None and (shape is None or not shape.time_varying)
    for j, p, z, g in _pieces(req, got, gains, merge=merge):
        n = z.shape[0]
        if not plain:
            if shape is not None:
                assert samples is not None, "a shaped plan ships the tracks' samples"
                z = _shaped(z, shape, int(local[j]), int(samples[idx[j]]))
            if lane is not None:
                t = idx[j]
                r = ramp_gains(
                    int(local[j] - lane.dst[t]),
                    n,
                    int(lane.frames[t]),
                    int(lane.ramp_in[t]),
                    int(lane.ramp_out[t]),
                )
                z = z.float() * torch.from_numpy(r)[:, None, None]
        out = buf[p : p + n]
        # float16 in, float32 arithmetic. The cast goes into a buffer kept for the process: an
        # operation between float16 and float32 tensors would cast into a fresh 4-MiB temporary
        # each time (fresh pages, faulted in and zeroed, then freed).
        if first:  # the products written, then scaled in place: round(g * z) as 0 + g * z gives
            out.copy_(z)
            out.mul_(g)
            continue
        if z.dtype != torch.float32:
            z = tmp[:n].copy_(z)
        if isinstance(g, torch.Tensor):  # per-frame gains: the float32 products, then the sum
            out.add_(z.mul_(g) if z.data_ptr() == tmp.data_ptr() else z * g)
        else:  # one fused multiply-add: out + g * z
            out.add_(z, alpha=g)


def direct(
    dst: torch.Tensor,
    tmp: torch.Tensor,
    req: Request | None,
    got: Got | None,
    segs: Segments,
    gains: np.ndarray,
    origin: torch.Tensor | None,
    merge_runs: bool = True,
) -> bool:
    """One plain input (no shape, no lanes): write ``g * z`` (affine: ``g * z + o - g * o``)
    into the output-dtype block ``dst``, float32 arithmetic rounded once to the output dtype, as
    the general path (accumulate, add the origin, cast) gives: one fused pass for a plain gain
    (``tmp``, a float32 scratch block, takes the input's cast where gains vary per frame or the
    origin term is added). False (nothing written) unless the input covers every output frame
    of the block."""
    if not covers(req, segs, dst.shape[0]) or got is None:
        return False
    assert req is not None
    for _, p, z, g in _pieces(req, got, gains, merge=merge_runs, split_gains=origin is not None):
        n = z.shape[0]
        out = dst[p : p + n]
        if origin is None and not isinstance(g, torch.Tensor):
            torch.mul(z, g, out=out)  # the float32 product of each element, rounded once
            continue
        t = tmp[:n].copy_(z)  # exact: a float16 value is a float32 value
        if origin is None:  # per-frame gains
            t.mul_(g)
        else:  # the origin term exactly as _add_origin forms it, then one fused multiply-add
            assert not isinstance(g, torch.Tensor)
            bias = origin - torch.tensor(np.float32(g)) * origin
            torch.add(bias.expand(n, *bias.shape), t, alpha=g, out=t)
        out.copy_(t)
    return True


def _add_origin(
    buf: torch.Tensor,
    segs: Segments,
    src_frames: np.ndarray,
    gains: np.ndarray,
    origin: np.ndarray,
    shape: FrameShape | None = None,
    samples: np.ndarray | None = None,
) -> None:
    """Add ``o − Σ_k g_k · shape(o)`` to every output frame, ``o = Enc(0)`` (the affine form).

    For an affine encoder, Enc(Σ g_k x_k) = Σ g_k Enc(x_k) + (1 − Σ g_k) Enc(0) (docs/method.md
    §4.2); with a shape (per-frame gains, a channel matrix) the origin goes through the same shape
    as the inputs. A frame beyond an input's length is that input's silence, whose latent is
    Enc(0): the sum then runs over the inputs that cover the frame only.
    """
    o = torch.from_numpy(origin)  # [C, D]
    idx, l0, l1, pos = segs.track, segs.start, segs.stop, segs.pos
    for j in range(idx.size):
        n = int(l1[j] - l0[j])
        base = o.expand(n, *o.shape)
        if shape is None or samples is None:
            shaped = base
        else:
            shaped = _shaped(base, shape, int(l0[j]), int(samples[idx[j]]))
        coef = np.zeros(n, np.float32)
        for k in range(src_frames.shape[0]):
            m = int(np.clip(src_frames[k, idx[j]] - l0[j], 0, n))
            coef[:m] += np.float32(gains[k, idx[j]])
        buf[pos[j] : pos[j] + n].add_(base - torch.from_numpy(coef)[:, None, None] * shaped)


def run_unit(
    unit: Unit,
    readers_cache: dict[str, CachedArray] | None = None,
    scratch: dict[tuple[Any, ...], np.ndarray] | None = None,
) -> int:
    """Compute and write the blocks of ``unit``; return the number of frames written.

    Background threads read the next block and write the previous ones (at most two blocks in
    flight each way) while this one is computed, so reads, arithmetic and writes overlap.

    Args:
        unit: The work unit.
        readers_cache: Input readers (with their chunk caches) kept across the units that run
            in this process (None: this unit's own).
        scratch: Block buffers kept across the units that run one after another in this
            process (None: this unit's own), sparing fresh pages (and their faults) per unit.
    """

    def buffer(name: str, shape: tuple[int, ...], dtype: Any) -> np.ndarray:
        key = (name, shape, np.dtype(dtype).str)
        got = None if scratch is None else scratch.get(key)
        if got is None:
            got = np.empty(shape, dtype)
            if scratch is not None:
                scratch[key] = got
        return got

    u = unit
    opened: dict[str, Any] = {} if readers_cache is None else readers_cache
    out_key = f"\0out:{u.out_path}"  # the output, opened once per process (one request less a unit)
    out = opened.get(out_key)
    if out is None:
        out = opened[out_key] = LatentArray.open(u.out_path, "r+")
    unique = set(u.in_paths)
    for p in unique:  # lanes of one input share its reader and its chunk cache
        if p not in opened:
            opened[p] = CachedArray(LatentArray.open(p, "r"), chunk_cache_bytes() // len(unique))
    readers = [opened[p] for p in u.in_paths]
    _, c, d = out.shape
    pl = u.placement
    dsts = [None] * len(readers) if pl is None else list(pl.dst_offset)
    lanes: list[Lane | None] = (
        [None] * len(readers)
        if pl is None
        else [
            Lane(pl.dst_offset[k], pl.ramp_in[k], pl.ramp_out[k], u.src_frames[k])
            for k in range(len(readers))
        ]
    )
    reqs = [
        [
            requests(segments(u.offs, u.frames, b0, b1), u.src_offset[k], u.src_frames[k], dsts[k])
            for k in range(len(readers))
        ]
        for b0, b1 in u.blocks
    ]
    size = max(b1 - b0 for b0, b1 in u.blocks)
    outs = [buffer(f"out{j}", (size, c, d), out.dtype) for j in range(2)]
    acc_block = torch.from_numpy(buffer("acc", (size, c, d), np.float32))  # the float32 sum
    tmp = torch.from_numpy(buffer("tmp", (size, c, d), np.float32))  # casts of float16 inputs
    limit = float(np.finfo(out.dtype).max)
    # One plain input in the output's dtype (gain, to_lufs, a copy): the fused single pass.
    fused = (
        u.fused_pass
        and len(readers) == 1
        and u.shape is None
        and pl is None
        and readers[0].dtype == out.dtype
    )
    o = None if u.origin is None else torch.from_numpy(np.asarray(u.origin, np.float32))
    writes: collections.deque[Future[None]] = collections.deque()
    # One reading thread and one writing thread, each with its own queue: a read of the next
    # block never waits behind the writes of the previous ones.
    # One torch thread: on blocks this size threading costs more than it gives.
    with torch_threads(1), ThreadPoolExecutor(1) as reader, ThreadPoolExecutor(1) as writer:
        reads = [
            [buffer(f"read{j}.{k}", (u.max_read, c, d), r.dtype) for k, r in enumerate(readers)]
            for j in range(2)
        ]
        ahead = reader.submit(fetch, readers, reqs[0], u.max_read, reads[0])
        for i, (b0, b1) in enumerate(u.blocks):
            got = ahead.result()
            if i + 1 < len(u.blocks):
                ahead = reader.submit(fetch, readers, reqs[i + 1], u.max_read, reads[(i + 1) % 2])
            n = b1 - b0
            segs = segments(u.offs, u.frames, b0, b1)
            if len(writes) == 2:
                writes.popleft().result()  # frees outs[i % 2]
            dst = torch.from_numpy(outs[i % 2][:n])
            if not (fused and direct(dst, tmp, reqs[i][0], got[0], segs, u.gains[0], o, u.merge_runs)):
                acc = acc_block[:n]
                # An input that gives every frame of the block starts the sum (no zeroing pass).
                first = u.shape is None and lanes[0] is None and covers(reqs[i][0], segs, n)
                if not first:
                    acc.zero_()
                for k in range(len(readers)):
                    _accumulate(
                        acc,
                        tmp,
                        reqs[i][k],
                        got[k],
                        u.gains[k],
                        u.shape,
                        u.samples,
                        lanes[k],
                        first=first and k == 0,
                        merge_runs=u.merge_runs,
                    )
                if u.origin is not None:
                    _add_origin(acc, segs, u.src_frames, u.gains, u.origin, u.shape, u.samples)
                dst.copy_(acc)
            # Checked in the output dtype (half the bytes of the float32 block): a value beyond
            # its range has become inf there, and NaN stays NaN.
            lo, hi = torch.aminmax(dst)
            if not (-limit <= float(lo) and float(hi) <= limit):
                raise LincaeError(
                    f"{u.out_path}: result overflows {out.dtype} (|z| > {limit:g});"
                    " use a float32 output (--dtype float32) or smaller gains"
                )
            writes.append(writer.submit(out.write, b0, outs[i % 2][:n]))
        for f in writes:
            f.result()
    return sum(b1 - b0 for b0, b1 in u.blocks)
