"""The canonical batch schedule of an encode: which windows of which tracks share a forward pass.

Neither CPU nor GPU kernels are batch-invariant to the last bit (a window encoded alone and the
same window encoded next to others can differ by 1e-7). For a resumed, a sharded and an
uninterrupted encode to write byte-identical latents, every window must therefore always be
encoded in the *same* batch, next to the same windows. The schedule is a pure function of the
planned track table, never of what is already done or of the shard count:

* the table is cut into blocks of :data:`BLOCK_TRACKS` consecutive rows (batches never cross a
  block, so a shard only ever touches the blocks that overlap its rows);
* inside a block, rows are visited in order, each row's windows
  (:func:`lincae_core.windowing.plan_windows`) in order,
  and each window's channels in order; every such *segment* joins the open batch of its window
  length (long tracks: all windows are ``W`` frames; a track shorter than ``W`` is one window
  of its own length), and a batch closes when it holds ``batch_size`` segments.

A resumed run only executes the *needed* batches, those holding a segment of a row still to be
encoded, but executes them whole, re-reading (and discarding) the other windows they hold.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import NamedTuple

import numpy as np

from lincae_core.windowing import crossfade_regions, plan_windows

__all__ = ["BLOCK_TRACKS", "BlockSchedule", "Segment", "Slot", "block_schedule", "blocks_of"]

BLOCK_TRACKS = 64


class Segment(NamedTuple):
    """One channel of one window of one row: what a batch slot holds."""

    row: int
    window: int
    channel: int


class Slot(NamedTuple):
    """Where a segment sits: batch ``batch``, position ``slot`` in it."""

    batch: int
    slot: int


@dataclass
class BlockSchedule:
    """The batches of one block of rows and, for each segment, its (batch, slot)."""

    block: int
    rows: range
    windows: dict[int, list[tuple[int, int]]] = field(default_factory=dict)
    regions: dict[int, list[tuple[int, int]]] = field(default_factory=dict)  # cross-fade regions
    slots: dict[int, list[list[Slot]]] = field(default_factory=dict)  # row -> window -> channel
    batches: list[list[Segment]] = field(default_factory=list)
    lengths: list[int] = field(default_factory=list)
    needed: list[bool] = field(default_factory=list)

    def window_needed(self, row: int) -> list[bool]:
        """For each window of ``row``: whether a needed batch holds one of its channels."""
        return [any(self.needed[slot.batch] for slot in chans) for chans in self.slots[row]]

    def needed_rows(self) -> list[int]:
        """Rows with at least one window in a needed batch, in order."""
        return [r for r in self.rows if any(self.window_needed(r))]


def blocks_of(rows: range, block_tracks: int = BLOCK_TRACKS) -> range:
    """The blocks that overlap a range of rows."""
    if not len(rows):
        return range(0)
    return range(rows.start // block_tracks, (rows.stop - 1) // block_tracks + 1)


def block_schedule(
    block: int,
    frames: np.ndarray,
    window: int,
    overlap: int,
    channels: int,
    batch_size: int,
    pending: Sequence[bool] | np.ndarray,
    block_tracks: int = BLOCK_TRACKS,
) -> BlockSchedule:
    """Lay out the batches of one block of the track table.

    Args:
        block: Block index (rows ``[block*block_tracks, (block+1)*block_tracks)``).
        frames: ``(N,)`` latent frames of every row of the table.
        window: Window length W in latent frames.
        overlap: Window overlap O in latent frames.
        channels: Latent channels C (each channel of a window is one segment).
        batch_size: Segments per forward pass.
        pending: ``(N,)`` rows this run must encode; a batch is needed if it holds one.
        block_tracks: Rows per block.

    Returns:
        The block's schedule.
    """
    n = int(frames.shape[0])
    rows = range(block * block_tracks, min((block + 1) * block_tracks, n))
    s = BlockSchedule(block, rows)
    open_batch: dict[int, int] = {}  # window length -> index of its open batch
    for r in rows:
        s.windows[r] = plan_windows(int(frames[r]), window, overlap)
        s.regions[r] = crossfade_regions(s.windows[r], overlap)
        s.slots[r] = []
        for start, stop in s.windows[r]:
            length, chans = stop - start, []
            for c in range(channels):
                b = open_batch.get(length)
                if b is None or len(s.batches[b]) == batch_size:
                    b = open_batch[length] = len(s.batches)
                    s.batches.append([])
                    s.lengths.append(length)
                chans.append(Slot(b, len(s.batches[b])))
                s.batches[b].append(Segment(r, len(s.slots[r]), c))
            s.slots[r].append(chans)
    s.needed = [any(bool(pending[seg.row]) for seg in batch) for batch in s.batches]
    return s
