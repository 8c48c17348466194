"""Out-of-core execution of an :class:`~lincae_core.ops.plan.OpPlan` into a new store.

The output latent array is cut into blocks of whole chunks (at most ``max_block_frames`` frames,
at least one chunk). A work unit is a run of consecutive blocks; each unit opens the stores
itself (so it can run in a joblib worker process or on a Dask cluster), fills one float32
block buffer ``[B, C, D]`` from bounded reads of the inputs, casts it to the output dtype and
writes whole chunks that no other unit touches. Memory per worker is therefore about
``(1 + 1.5 K) * max_block_frames * C * D * 4`` bytes, whatever the size of the stores.

The output is built under a temporary name next to the final path and renamed into place only
when complete, so a kill never leaves a half-written store under the final name.
"""

from __future__ import annotations

import collections
import logging
import math
import os
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from pathlib import Path
from typing import Any

import joblib
import numpy as np
import torch

from lincae_core.device import torch_threads
from lincae_core.errors import LincaeError
from lincae_core.ops.cluster import parallel_backend
from lincae_core.ops.plan import OpPlan
from lincae_core.ops.shape import FrameShape, Placement, ramp_gains
from lincae_core.publish import building_dir, check_free, free_name
from lincae_core.store import LatentArray, LatentStore
from lincae_core.store.array import CachedArray, chunk_cache_bytes
from lincae_core.store.layout import STATUS_FAILED, STATUS_PLANNED
from lincae_core.store.lineage import lineage_entry

log = logging.getLogger(__name__)
DEFAULT_MAX_BLOCK_FRAMES = 16384


def _segments(offs: np.ndarray, frs: np.ndarray, b0: int, b1: int) -> tuple[np.ndarray, ...]:
    """Output tracks overlapping frames ``[b0, b1)``: their indices and local frame ranges."""
    ends = offs + frs
    i0 = int(np.searchsorted(ends, b0, side="right"))
    i1 = int(np.searchsorted(offs, b1, side="left"))
    idx = np.arange(i0, i1)
    idx = idx[frs[idx] > 0]
    s0 = np.maximum(offs[idx], b0)
    s1 = np.minimum(ends[idx], b1)
    return idx, s0 - offs[idx], s1 - offs[idx], s0 - b0


Request = tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray, np.ndarray]


def _requests(
    segs: tuple[np.ndarray, ...], src_off: np.ndarray, src_fr: np.ndarray, dst: np.ndarray | None = None
) -> Request | None:
    """What one input (or lane) contributes to a block: ``(track idx, block pos, input start,
    stop, track frame)``, the last being the frame of the output track where the piece starts.
    ``dst``: ``(N,)`` frame of each output track where the input starts (default 0)."""
    idx, l0, l1, pos = segs
    d = np.zeros_like(l0) if dst is None else dst[idx]
    r0 = np.maximum(l0, d)
    r1 = np.minimum(l1, d + src_fr[idx])
    ok = r1 > r0
    if not ok.any():
        return None
    start = src_off[idx] + r0 - d
    return idx[ok], (pos + r0 - l0)[ok], start[ok], (start + r1 - r0)[ok], r0[ok]


Got = tuple[np.ndarray, np.ndarray]  # frames read for a block, and each segment's first row


def _fetch(
    readers: Sequence[LatentArray | CachedArray],
    reqs: Sequence[Request | None],
    max_read: int,
    buffers: Sequence[np.ndarray] | None = None,
) -> list[Got | None]:
    """Read, per input, the frames a block needs, and where each track segment starts in them.

    Inputs in the usual order (same track order as the output) need one read per block: the
    span from the first to the last frame needed, when it fits in ``max_read`` frames. Scattered
    tracks (e.g. random pairing) are gathered one after another into the block's buffer: from
    the input's chunk cache, chunk by chunk (:meth:`CachedArray.gather`), or else one read a
    segment.
    Either way this runs in the prefetch thread, and the arithmetic then takes whole runs of
    tracks at once (:func:`_runs`). No read exceeds ``max_read`` frames. ``buffers``: one
    reusable read buffer per input (the caller alternates two sets: one being read, one in use).
    """
    got: list[Got | None] = []
    for k, (reader, req) in enumerate(zip(readers, reqs, strict=True)):
        buf = None if buffers is None else buffers[k]
        if req is None:
            got.append(None)
            continue
        a, b = req[2], req[3]
        lo, hi = int(a.min()), int(b.max())
        if hi - lo <= max_read:
            got.append((reader.read(lo, hi, buf), a - lo))
        else:  # segments of a block hold at most its frames, and a block at most max_read
            n = b - a
            got.append((reader.gather(a, b, buf), np.cumsum(n) - n))
    return got


def _shaped(z: torch.Tensor, shape: FrameShape, start: int, samples: int) -> torch.Tensor:
    """``z[n, C, D]`` through the channel matrix and the per-frame gains (``FrameShape.apply``)."""
    z = z.float()
    if shape.matrix is not None:
        z = torch.einsum("ec,ncd->ned", torch.tensor(shape.matrix, dtype=torch.float32), z)
    if shape.time_varying:
        z = z * torch.from_numpy(shape.frame_gains(start, z.shape[0], samples))[:, None, None]
    return z


Lane = tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]  # dst, ramp in, ramp out, frames


def _runs(
    req: Request, rows: np.ndarray, gains: np.ndarray, merge: bool, split_gains: bool
) -> tuple[list[int], list[int]]:
    """First and last+1 segment of each run of a request that is read and computed as one piece.

    ``merge``: consecutive track segments contiguous both in the block's read (``rows``: their
    first rows) and in the output block form one run, and so do their gains, unless
    ``split_gains`` (then a gain change also ends a run). A keyed mix of stores with the same
    track layout then takes one vectorised pass per block instead of one small pass per track,
    and so does a random pairing from its gathered read. Otherwise one segment a run (per-track
    work: frame shapes, crossfade lanes)."""
    idx, pos, a, b, _ = req
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
    """``(j, p, z, g)`` for each run of a request (:func:`_runs`): its first segment ``j``, its
    position ``p`` in the block, its input frames ``z`` (sliced from the block's read ``got``,
    :func:`_fetch`) and its gain ``g``: a number, or a float32 ``[n, 1, 1]`` tensor of per-frame
    gains where the run's tracks have different gains."""
    idx, pos, a, b, _ = req
    data, rows = got
    for j, k in zip(*_runs(req, rows, gains, merge, split_gains), strict=True):
        n = int(pos[k - 1] + b[k - 1] - a[k - 1] - pos[j])  # a run is contiguous in the output
        g = gains[idx[j:k]]
        if k - j == 1 or bool((g == g[0]).all()):
            gain: float | torch.Tensor = float(g[0])
        else:
            gain = torch.from_numpy(np.repeat(g.astype(np.float32), b[j:k] - a[j:k]))[:, None, None]
        yield j, int(pos[j]), torch.from_numpy(data[int(rows[j]) : int(rows[j]) + n]), gain


def _covers(req: Request | None, segs: tuple[np.ndarray, ...], n: int) -> bool:
    """Whether an input gives every output frame of a block of ``n`` frames (no silence)."""
    return req is not None and req[0].size == segs[0].size and int((req[3] - req[2]).sum()) == n


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
) -> None:
    """Add ``gain * shape(z_k)`` of one input (``lane``: times its crossfade ramps, for placed
    segments, ``ops.shape.Placement``) into the float32 block buffer ``buf[B, C, D]`` (``tmp``:
    a float32 scratch block of the same size).

    ``first``: the input covers the whole block (:func:`_covers`) and ``buf`` holds garbage: its
    products are written instead of added (one pass instead of zeroing, then adding; the same
    float32 values, ``0 + g*z == g*z``, but for the sign of a zero)."""
    if req is None or got is None:
        return
    idx, _, _, _, local = req
    plain = shape is None and lane is None
    # A channel matrix alone (pan, midside) is the same for every frame: runs of tracks too.
    merge = lane is None and (shape is None or not shape.time_varying)
    for j, p, z, g in _pieces(req, got, gains, merge=merge):
        n = z.shape[0]
        if not plain:
            if shape is not None:
                assert samples is not None, "a shaped plan ships the tracks' samples"
                z = _shaped(z, shape, int(local[j]), int(samples[idx[j]]))
            if lane is not None:
                t = idx[j]
                r = ramp_gains(
                    int(local[j] - lane[0][t]), n, int(lane[3][t]), int(lane[1][t]), int(lane[2][t])
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


def _direct(
    dst: torch.Tensor,
    tmp: torch.Tensor,
    req: Request | None,
    got: Got | None,
    segs: tuple[np.ndarray, ...],
    gains: np.ndarray,
    origin: torch.Tensor | None,
) -> bool:
    """One plain input (no shape, no lanes): write ``g * z`` (affine: ``g * z + o - g * o``)
    into the output-dtype block ``dst``, float32 arithmetic rounded once to the output dtype, as
    :func:`_accumulate` + :func:`_add_origin` + the cast give: one fused pass for a plain gain
    (``tmp``, a float32 scratch block, takes the input's cast where gains vary per frame or the
    origin term is added). False (nothing written) unless the input covers every output frame
    of the block."""
    if not _covers(req, segs, dst.shape[0]) or got is None:
        return False
    assert req is not None
    for _, p, z, g in _pieces(req, got, gains, merge=True, split_gains=origin is not None):
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
    segs: tuple[np.ndarray, ...],
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
    idx, l0, l1, pos = segs
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
    out_path: str,
    in_paths: Sequence[str],
    offs: np.ndarray,
    frs: np.ndarray,
    src_offset: np.ndarray,
    src_frames: np.ndarray,
    gains: np.ndarray,
    blocks: Sequence[tuple[int, int]],
    max_read: int,
    shape: FrameShape | None = None,
    samples: np.ndarray | None = None,
    origin: np.ndarray | None = None,
    placement: Placement | None = None,
    readers_cache: dict[str, CachedArray] | None = None,
    scratch: dict[tuple[Any, ...], np.ndarray] | None = None,
) -> int:
    """Compute and write a run of output blocks; return the number of frames written.

    Background threads read the next block and write the previous ones (at most two blocks in
    flight each way) while this one is computed, so reads, arithmetic and writes overlap.

    Args:
        out_path: Output store (opened ``r+``; only these blocks' chunks are written).
        in_paths: ``K`` input stores.
        offs: ``(N,)`` output offsets, ascending.
        frs: ``(N,)`` output frames.
        src_offset: ``(K, N)`` where each output track starts in each input (see OpPlan).
        src_frames: ``(K, N)`` frames each input can give (the rest is silence).
        gains: ``(K, N)`` gain of each input for each output track.
        blocks: Chunk-aligned output frame ranges ``[b0, b1)``.
        max_read: Largest number of frames read from an input at once.
        shape: Per-frame gains / channel matrix applied to every input (None: plain sums).
        samples: ``(N,)`` exact lengths of the output tracks (fade-outs end there).
        origin: ``Enc(0)`` ``[C, D]`` for the affine form (None: the linear form).
        placement: Lanes placed along the output tracks with crossfade ramps (``in_paths``
            then holds one path per lane).
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

    out = LatentArray.open(out_path, "r+")
    opened = {} if readers_cache is None else readers_cache
    unique = set(in_paths)
    for p in unique:  # lanes of one input share its reader and its chunk cache
        if p not in opened:
            opened[p] = CachedArray(LatentArray.open(p, "r"), chunk_cache_bytes() // len(unique))
    readers = [opened[p] for p in in_paths]
    _, c, d = out.shape
    dst = [None] * len(readers) if placement is None else list(placement.dst_offset)
    lanes: list[Lane | None] = (
        [None] * len(readers)
        if placement is None
        else [
            (placement.dst_offset[k], placement.ramp_in[k], placement.ramp_out[k], src_frames[k])
            for k in range(len(readers))
        ]
    )
    reqs = [
        [
            _requests(_segments(offs, frs, b0, b1), src_offset[k], src_frames[k], dst[k])
            for k in range(len(readers))
        ]
        for b0, b1 in blocks
    ]
    size = max(b1 - b0 for b0, b1 in blocks)
    outs = [buffer(f"out{j}", (size, c, d), out.dtype) for j in range(2)]
    acc_block = torch.from_numpy(buffer("acc", (size, c, d), np.float32))  # the float32 sum
    tmp = torch.from_numpy(buffer("tmp", (size, c, d), np.float32))  # casts of float16 inputs
    limit = float(np.finfo(out.dtype).max)
    # One plain input in the output's dtype (gain, to_lufs, a copy): the fused single pass.
    direct = len(readers) == 1 and shape is None and placement is None and readers[0].dtype == out.dtype
    o = None if origin is None else torch.from_numpy(np.asarray(origin, np.float32))
    writes: collections.deque[Future[None]] = collections.deque()
    # One reading thread and one writing thread, each with its own queue: a read of the next
    # block never waits behind the writes of the previous ones.
    # One torch thread: on blocks this size threading costs more than it gives.
    with torch_threads(1), ThreadPoolExecutor(1) as reader, ThreadPoolExecutor(1) as writer:
        reads = [
            [buffer(f"read{j}.{k}", (max_read, c, d), r.dtype) for k, r in enumerate(readers)]
            for j in range(2)
        ]
        ahead = reader.submit(_fetch, readers, reqs[0], max_read, reads[0])
        for i, (b0, b1) in enumerate(blocks):
            got = ahead.result()
            if i + 1 < len(blocks):
                ahead = reader.submit(_fetch, readers, reqs[i + 1], max_read, reads[(i + 1) % 2])
            n = b1 - b0
            segs = _segments(offs, frs, b0, b1)
            if len(writes) == 2:
                writes.popleft().result()  # frees outs[i % 2]
            dst = torch.from_numpy(outs[i % 2][:n])
            if not (direct and _direct(dst, tmp, reqs[i][0], got[0], segs, gains[0], o)):
                acc = acc_block[:n]
                # An input that gives every frame of the block starts the sum (no zeroing pass).
                first = shape is None and lanes[0] is None and _covers(reqs[i][0], segs, n)
                if not first:
                    acc.zero_()
                for k in range(len(readers)):
                    _accumulate(
                        acc,
                        tmp,
                        reqs[i][k],
                        got[k],
                        gains[k],
                        shape,
                        samples,
                        lanes[k],
                        first=first and k == 0,
                    )
                if origin is not None:
                    _add_origin(acc, segs, src_frames, gains, origin, shape, samples)
                dst.copy_(acc)
            # Checked in the output dtype (half the bytes of the float32 block): a value beyond
            # its range has become inf there, and NaN stays NaN.
            lo, hi = torch.aminmax(dst)
            if not (-limit <= float(lo) and float(hi) <= limit):
                raise LincaeError(
                    f"{out_path}: result overflows {out.dtype} (|z| > {limit:g});"
                    " use a float32 output or smaller gains"
                )
            writes.append(writer.submit(out.write, b0, outs[i % 2][:n]))
        for f in writes:
            f.result()
    return sum(b1 - b0 for b0, b1 in blocks)


def _units(total: int, chunk_frames: int, max_block_frames: int, n_jobs: int) -> list[list[tuple[int, int]]]:
    bf = max(chunk_frames, max_block_frames // chunk_frames * chunk_frames)
    blocks = [(b, min(b + bf, total)) for b in range(0, total, bf)]
    per = max(1, min(16, math.ceil(len(blocks) / (4 * n_jobs))))
    return [blocks[i : i + per] for i in range(0, len(blocks), per)]


def _execute(
    plan: OpPlan,
    offs: np.ndarray,
    out_path: str,
    in_paths: list[str],
    total: int,
    chunk_frames: int,
    jobs: int,
    max_block_frames: int,
    progress: Callable[[int], None] | None,
    origin: np.ndarray | None = None,
    scheduler: str | None = None,
) -> None:
    with parallel_backend(jobs, scheduler) as n_jobs:
        _run_units(
            plan, offs, out_path, in_paths, total, chunk_frames, n_jobs, max_block_frames, progress, origin
        )


def _run_units(
    plan: OpPlan,
    offs: np.ndarray,
    out_path: str,
    in_paths: list[str],
    total: int,
    chunk_frames: int,
    n_jobs: int,
    max_block_frames: int,
    progress: Callable[[int], None] | None,
    origin: np.ndarray | None,
) -> None:
    units = _units(total, chunk_frames, max_block_frames, n_jobs)

    def task(blocks: list[tuple[int, int]]) -> tuple[Any, ...]:
        # Ship only the rows of the tracks this unit touches.
        i0 = int(np.searchsorted(offs + plan.frames, blocks[0][0], side="right"))
        i1 = int(np.searchsorted(offs, blocks[-1][1], side="left"))
        sl = slice(i0, i1)
        return (
            out_path,
            in_paths,
            offs[sl],
            plan.frames[sl],
            plan.src_offset[:, sl],
            plan.src_frames[:, sl],
            plan.gains[:, sl],
            blocks,
            max_block_frames,
            plan.shape,
            plan.samples[sl],
            origin,
            None if plan.placement is None else plan.placement.columns(sl),
        )

    if n_jobs == 1:
        shared: dict[str, CachedArray] = {}  # one chunk cache per input for the whole operation
        scratch: dict[tuple[Any, ...], np.ndarray] = {}
        results: Any = (run_unit(*task(u), readers_cache=shared, scratch=scratch) for u in units)
    else:
        par = joblib.Parallel(n_jobs=n_jobs, return_as="generator_unordered")
        results = par(joblib.delayed(run_unit)(*task(u)) for u in units)
    for n in results:
        if progress is not None:
            progress(n)


def default_output(inputs: Sequence[LatentStore], op: str) -> Path:
    """The output path of an operation run without one: beside the first input, named after the
    inputs and the operation (``a+b.mix.zarr``); a taken name gets a suffix (``a+b.mix-2.zarr``).
    """
    stems = [Path(s.path).name.removesuffix(".zarr") for s in inputs]
    name = "+".join(stems[:3]) + (f"+{len(stems) - 3}more" if len(stems) > 3 else "")
    return free_name(Path(inputs[0].path).parent, f"{name}.{op}", ".zarr")


def unfinished(inputs: Sequence[LatentStore]) -> dict[str, dict[str, int]]:
    """Per input path, how many tracks are still planned or failed (left out of an operation)."""
    out = {}
    for s in inputs:
        st = s.table()["status"]
        planned, failed = int((st == STATUS_PLANNED).sum()), int((st == STATUS_FAILED).sum())
        if planned or failed:
            out[str(s.path)] = {"planned": planned, "failed": failed}
    return out


def check_output(out: str | os.PathLike, inputs: Sequence[LatentStore], overwrite: bool) -> Path:
    """Refuse an output that exists (unless ``overwrite``) or that is one of the inputs."""
    out = Path(out)
    for s in inputs:
        if out.resolve() == Path(s.path).resolve():
            raise LincaeError(f"{out} is also an input; write the result to another path")
    return check_free(out, overwrite)


def run_plan(
    plan: OpPlan,
    inputs: Sequence[LatentStore],
    out: str | os.PathLike | None,
    *,
    op: str,
    args: dict[str, Any],
    dtype: str | None = None,
    jobs: int = 1,
    overwrite: bool = False,
    progress: Callable[[int], None] | None = None,
    max_block_frames: int = DEFAULT_MAX_BLOCK_FRAMES,
    require_complete: bool = False,
    origin: str = "linear",
    scheduler: str | None = None,
) -> dict[str, Any]:
    """Write the output store of ``plan`` at ``out`` and return a JSON-ready summary.

    The output copies model, geometry, channels, encoding and chunk layout (frames a chunk,
    chunk key separator) from ``inputs[0]`` and records a
    lineage entry (op, args, every input's path and store id) after the first input's lineage.
    Without ``out`` the store goes beside the first input (:func:`default_output`). Tracks of the
    inputs that are still planned or failed are left out and counted in the summary
    (``left_out``); ``require_complete`` refuses such inputs instead. ``origin="affine"`` adds
    ``(1 − Σ g) · Enc(0)`` with the first input's recorded ``Enc(0)`` (docs/method.md §4.2).
    ``scheduler`` runs the work units on a Dask cluster (:mod:`lincae_core.ops.cluster`).
    """
    if origin not in ("linear", "affine"):
        raise LincaeError(f"Expected origin 'linear' or 'affine'. Got {origin!r} instead.")
    enc0 = inputs[0].origin() if origin == "affine" else None
    if origin == "affine" and plan.placement is not None:
        raise LincaeError(
            "Expected origin 'linear' for placed segments (their crossfade gains sum "
            "to 1, where both forms agree). Got 'affine' instead."
        )
    if origin == "affine" and enc0 is None:
        raise LincaeError(
            f"{inputs[0].path} records no Enc(0) (made before lincae stored it): "
            "re-encode it, or use --origin linear"
        )
    left = unfinished(inputs)
    if left and require_complete:
        path, n = next(iter(left.items()))
        raise LincaeError(
            f"{path} has {n['planned']} planned and {n['failed']} failed tracks "
            "(require_complete); finish its encode first, or drop --require-complete"
        )
    out = check_output(default_output(inputs, op) if out is None else out, inputs, overwrite)
    first = inputs[0]
    entry = lineage_entry(op, {**args, "origin": origin}, inputs)
    for rec, s in zip(entry["inputs"][1:], inputs[1:], strict=True):
        rec["lineage"] = s.lineage
    with building_dir(out, replace=overwrite) as building:
        tmp = building.tmp
        store = LatentStore.create(
            tmp,
            model_id=first.model_id,
            model_config=first.model_config,
            geometry=first.geometry,
            channels=first.channels,
            dtype=dtype or first.dtype,
            chunk_frames=first.chunk_frames,
            chunk_key_separator=first.chunk_key_separator,
            encoding=first.encoding,
            model_card=first.model_card,
            lineage=[*first.lineage, entry],
        )
        store.plan(plan.rows())
        if plan.sources is not None:
            store.write_sources(plan.sources.T, plan.gains.T, [str(Path(s.path).resolve()) for s in inputs])
        offs = store.table()["offset"]
        frames0 = first.origin_frames()
        if frames0 is not None:
            store.write_origin(frames0)
        paths = [str(s.path) for s in inputs]
        if plan.placement is not None:
            paths = [paths[k] for k in plan.placement.input_index]
        _execute(
            plan,
            offs,
            str(tmp),
            paths,
            store.total_frames,
            store.chunk_frames,
            jobs,
            max_block_frames,
            progress,
            enc0,
            scheduler,
        )
        store.mark_done(np.arange(store.n_tracks))
    return {
        "op": op,
        "out": str(out),
        "tracks": len(plan.keys),
        "frames": int(plan.frames.sum()),
        "origin": origin,
        **plan.info,
        **({"left_out": left} if left else {}),
    }
