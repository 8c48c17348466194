"""Which input frames a block of the output needs, and reading them (the kernel's I/O half).

The output latent array is computed in blocks of whole chunks. For a block ``[b0, b1)``:
:func:`segments` finds the output tracks it overlaps, :func:`requests` what one input (or lane)
gives them, and :func:`fetch` reads it, in bounded reads, in the kernel's prefetch thread
(:mod:`lincae_core.ops.kernel` does the arithmetic).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import NamedTuple

import numpy as np

from lincae_core.store import LatentArray
from lincae_core.store.array import CachedArray

__all__ = ["Got", "Request", "Segments", "covers", "fetch", "requests", "segments"]


class Segments(NamedTuple):
    """The output tracks overlapping a block: per track, ``(M,)`` arrays."""

    track: np.ndarray  # index of the output track
    start: np.ndarray  # first frame of the piece, local to the track
    stop: np.ndarray  # last + 1 frame of the piece, local to the track
    pos: np.ndarray  # where the piece starts in the block


class Request(NamedTuple):
    """What one input (or lane) gives a block: per piece, ``(M,)`` arrays."""

    track: np.ndarray  # index of the output track
    pos: np.ndarray  # where the piece starts in the block
    start: np.ndarray  # first frame read from the input's latent array
    stop: np.ndarray  # last + 1 frame read
    local: np.ndarray  # frame of the output track where the piece starts


class Got(NamedTuple):
    """The frames read for a block from one input, and where each piece starts in them."""

    data: np.ndarray
    rows: np.ndarray


def segments(offs: np.ndarray, frs: np.ndarray, b0: int, b1: int) -> Segments:
    """Output tracks overlapping frames ``[b0, b1)``: their indices and local frame ranges."""
    ends = offs + frs
    i0 = int(np.searchsorted(ends, b0, side="right"))
    i1 = int(np.searchsorted(offs, b1, side="left"))
    idx = np.arange(i0, i1)
    idx = idx[frs[idx] > 0]
    s0 = np.maximum(offs[idx], b0)
    s1 = np.minimum(ends[idx], b1)
    return Segments(idx, s0 - offs[idx], s1 - offs[idx], s0 - b0)


def requests(
    segs: Segments, src_off: np.ndarray, src_fr: np.ndarray, dst: np.ndarray | None = None
) -> Request | None:
    """What one input (or lane) contributes to a block (None: nothing).

    ``src_off``/``src_fr``: ``(N,)`` where each output track starts in the input and how many
    frames the input gives it; ``dst``: ``(N,)`` frame of each output track where the input
    starts (default 0)."""
    idx, l0, l1, pos = segs.track, segs.start, segs.stop, segs.pos
    d = np.zeros_like(l0) if dst is None else dst[idx]
    r0 = np.maximum(l0, d)
    r1 = np.minimum(l1, d + src_fr[idx])
    ok = r1 > r0
    if not ok.any():
        return None
    start = src_off[idx] + r0 - d
    return Request(idx[ok], (pos + r0 - l0)[ok], start[ok], (start + r1 - r0)[ok], r0[ok])


def fetch(
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
    tracks at once (:func:`lincae_core.ops.kernel.runs`). No read exceeds ``max_read`` frames.
    ``buffers``: one reusable read buffer per input (the caller alternates two sets: one being
    read, one in use).
    """
    got: list[Got | None] = []
    for k, (reader, req) in enumerate(zip(readers, reqs, strict=True)):
        buf = None if buffers is None else buffers[k]
        if req is None:
            got.append(None)
            continue
        a, b = req.start, req.stop
        lo, hi = int(a.min()), int(b.max())
        if hi - lo <= max_read:
            got.append(Got(reader.read(lo, hi, buf), a - lo))
        else:  # segments of a block hold at most its frames, and a block at most max_read
            n = b - a
            got.append(Got(reader.gather(a, b, buf), np.cumsum(n) - n))
    return got


def covers(req: Request | None, segs: Segments, n: int) -> bool:
    """Whether an input gives every output frame of a block of ``n`` frames (no silence)."""
    return req is not None and req.track.size == segs.track.size and int((req.stop - req.start).sum()) == n
