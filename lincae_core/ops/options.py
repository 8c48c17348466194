"""The one shape of the latent-operation surface: :class:`OpOptions` in, :class:`OpResult` out.

Every store operation (``gain_store``, ``mix_stores``, ``extract_store``, ``select_store``,
``pan_store``, ``midside_store``, ``concat_store``, ``extract_stems``) takes its own arguments
(what to compute) and one frozen :class:`OpOptions` (how to run it and where to write), and
returns a typed result whose ``to_dict()`` is the JSON record the CLI prints (``--json``).
The options may also be given as keywords of the same names (``jobs=2``): they are folded into
the options object (:func:`op_options`).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

__all__ = ["DEFAULT_MAX_BLOCK_FRAMES", "OpOptions", "OpResult", "StemsResult", "op_options"]

DEFAULT_MAX_BLOCK_FRAMES = 16384
LeftOut = dict[str, dict[str, int]]


@dataclass(frozen=True)
class OpOptions:
    """How a store operation runs and where it writes (the same for every operation).

    Attributes:
        jobs: Local joblib workers (-1: every core).
        scheduler: A Dask scheduler address or scheduler file instead of local workers
            (:mod:`lincae_core.ops.parallel`); the output is byte-identical.
        overwrite: Replace an existing output (else an existing output is refused).
        require_complete: Refuse inputs with planned or failed tracks (by default they are left
            out and counted in the result's ``left_out``).
        progress: Called with the number of frames written after each unit of work.
        max_block_frames: Largest block computed or read at once (bounds memory).
        origin: ``"linear"`` or ``"affine"`` (``+ (1 − Σ g) Enc(0)``, docs/method.md §4.2); None:
            the operation's default (the form the model measured closer to the audio operation
            for gain, mix and extract; linear for the others).
        dtype: Output dtype (None: the operation's default, usually the first input's).
        fused_pass: One plain input in the output's dtype (a gain, ``--to-lufs``, a copy) takes
            the kernel's fused single pass (False: the general float32 accumulate-then-cast path;
            the same values, tests compare the two).
        merge_runs: Consecutive track segments contiguous in the read and in the output are
            computed as one run (False: one segment at a time; the same bits).
    """

    jobs: int = 1
    scheduler: str | None = None
    overwrite: bool = False
    require_complete: bool = False
    progress: Callable[[int], None] | None = field(default=None, compare=False)
    max_block_frames: int = DEFAULT_MAX_BLOCK_FRAMES
    origin: str | None = None
    dtype: str | None = None
    fused_pass: bool = True
    merge_runs: bool = True


_FIELDS = frozenset(f.name for f in dataclasses.fields(OpOptions))


def op_options(options: OpOptions | None, overrides: Mapping[str, Any]) -> OpOptions:
    """``options`` (default :class:`OpOptions`) with keyword ``overrides`` of its fields.

    Raises:
        TypeError: An override that is not a field of :class:`OpOptions`.
    """
    bad = sorted(set(overrides) - _FIELDS)
    if bad:
        raise TypeError(f"unexpected keyword argument {bad[0]!r} (not an OpOptions field)")
    base = options if options is not None else OpOptions()
    return dataclasses.replace(base, **overrides) if overrides else base


@dataclass(frozen=True)
class OpResult:
    """What a store operation wrote. ``to_dict()`` is its JSON record (``--json``).

    Attributes:
        op: The operation (as recorded in the lineage).
        out: The output store's path.
        tracks: Output tracks.
        frames: Latent frames of the output tracks.
        origin: The form used, ``"linear"`` or ``"affine"``.
        info: The plan's own figures, in this order where present: ``skipped`` (keys dropped,
            ``missing="skip"``), ``seed`` (random pairing), ``empty`` and ``start_frame``
            (select), ``crossfade_frames`` (concat).
        left_out: Per input path, its planned and failed tracks left out (empty: none).
    """

    op: str
    out: str
    tracks: int
    frames: int
    origin: str
    info: Mapping[str, Any] = field(default_factory=dict)
    left_out: LeftOut = field(default_factory=dict)

    @property
    def skipped(self) -> int:
        """Keys dropped for want of a partner or a measurement (``missing="skip"``)."""
        return int(self.info.get("skipped", 0))

    @property
    def seed(self) -> int | None:
        """The seed of a random pairing (given or drawn), else None."""
        return self.info.get("seed")

    def to_dict(self) -> dict[str, Any]:
        """The JSON record: op, out, tracks, frames, origin, the plan's figures, left_out."""
        return {
            "op": self.op,
            "out": self.out,
            "tracks": self.tracks,
            "frames": self.frames,
            "origin": self.origin,
            **self.info,
            **({"left_out": self.left_out} if self.left_out else {}),
        }


@dataclass(frozen=True)
class StemsResult:
    """What ``extract_stems`` wrote: one :class:`OpResult` per stem store in the folder ``out``."""

    out: str
    consistent: bool
    origin: str
    stems: Mapping[str, OpResult]
    op: str = "extract"

    @property
    def tracks(self) -> int:
        """Tracks of each stem store (they all have the mixture's)."""
        return next(iter(self.stems.values())).tracks

    @property
    def frames(self) -> int:
        """Latent frames written over all stem stores."""
        return sum(r.frames for r in self.stems.values())

    @property
    def left_out(self) -> LeftOut:
        """Planned and failed tracks of the inputs, left out of every stem."""
        return next(iter(self.stems.values())).left_out

    def to_dict(self) -> dict[str, Any]:
        """The JSON record: op, out, consistent, origin, tracks, frames, skipped, left_out, stems."""
        first = next(iter(self.stems.values())).to_dict()
        return {
            "op": self.op,
            "out": self.out,
            "consistent": self.consistent,
            "origin": self.origin,
            "tracks": self.tracks,
            "frames": self.frames,
            **{k: first[k] for k in ("skipped", "left_out") if k in first},
            "stems": {name: r.to_dict() for name, r in self.stems.items()},
        }
