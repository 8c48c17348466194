"""``concat``: tracks of one store joined end to end on the latent frame grid, with a crossfade.

A concat list names, for every output track, the input tracks to join in order. Consecutive
segments overlap by ``W`` whole latent frames (the crossfade, ``W = round(S * sr / spf)``), where
the first fades out and the second fades in with linear ramps that sum to 1 at every frame
(:func:`lincae_core.ops.envelopes.ramp_gains`). The latent crossfade decodes to the audio crossfade
because the decoder is homogeneous (each ramp is a gain, Eq. 1 of arXiv:2510.23530) and additive
(the two faded segments are summed, Eq. 2); the ramps summing to 1, the affine and linear forms of
the sum agree (docs/linearity.md), so concat has no ``--origin``. :func:`plan_concat` plans purely
(no I/O); :func:`concat_store` runs the plan through the engine.

List format (``--keys-from``), one of:

- **plain**: one input key a line (no tab anywhere): one output track ``concat`` made of all of
  them in order;
- **tabbed**: ``OUT_KEY<TAB>IN_KEY<TAB>IN_KEY...`` a line: one output track per line.

Blank lines and ``#`` comment lines are skipped and line ends stripped, as in every list file
(:func:`lincae_core.discovery.list_entries`); keys are taken literally (spaces included).
"""

from __future__ import annotations

import hashlib
import math
import os
from collections.abc import Sequence
from typing import Any

import numpy as np

from lincae_core.discovery import list_entries
from lincae_core.errors import ConfigError, StoreMismatchError
from lincae_core.ops.engine import run_plan
from lincae_core.ops.options import OpOptions, OpResult, op_options
from lincae_core.ops.plan import OpPlan, Placement, Table, done_rows
from lincae_core.store import StoreLike, open_store

__all__ = [
    "PLAIN_KEY",
    "concat_record",
    "concat_store",
    "crossfade_frames",
    "parse_concat_list",
    "plan_concat",
]

PLAIN_KEY = "concat"  # the output key of a plain (one key a line) list
Entries = list[tuple[str, list[str]]]


def parse_concat_list(text: str, name: str = "list") -> Entries:
    """Parse a concat list (module docstring) into ``[(out_key, [in_key, ...]), ...]``.

    Raises:
        ConfigError: Empty list, a tabbed line without input keys, an empty key, a repeated
            output key, or plain and tabbed lines mixed.
    """
    lines = list_entries(text.splitlines())
    if not lines:
        raise ConfigError(f"{name}: expected at least one key; got an empty list")
    tabbed = ["\t" in line for _, line in lines]
    if not any(tabbed):
        return [(PLAIN_KEY, [line for _, line in lines])]
    if not all(tabbed):
        n = lines[tabbed.index(False)][0]
        raise ConfigError(
            f"{name}: line {n}: expected 'OUT_KEY<TAB>IN_KEY<TAB>...' like the other "
            "lines (a list is either one key a line or tabbed on every line)"
        )
    entries: Entries = []
    seen: set[str] = set()
    for n, line in lines:
        out, *keys = line.split("\t")
        if not out or not keys or not all(keys):
            raise ConfigError(
                f"{name}: line {n}: expected 'OUT_KEY<TAB>IN_KEY[<TAB>IN_KEY...]' "
                f"with non-empty keys; got {line!r}"
            )
        if out in seen:
            raise ConfigError(f"{name}: line {n}: expected each output key once; got {out!r} again")
        seen.add(out)
        entries.append((out, keys))
    return entries


def crossfade_frames(crossfade_s: float, sample_rate: int, samples_per_frame: int) -> int:
    """Whole latent frames of a crossfade of ``crossfade_s`` seconds (rounded to the nearest)."""
    if not (isinstance(crossfade_s, (int, float)) and math.isfinite(crossfade_s) and crossfade_s >= 0):
        raise ConfigError(f"crossfade: expected seconds >= 0, got {crossfade_s!r}")
    return int(round(crossfade_s * sample_rate / samples_per_frame))


def _rows(table: Table, name: str, entries: Entries) -> list[np.ndarray]:
    index = {str(table["key"][r]): int(r) for r in done_rows(table)}
    absent = list(dict.fromkeys(k for _, keys in entries for k in keys if k not in index))
    if absent:
        raise StoreMismatchError(
            f"{len(absent)} keys of the concat list are not done tracks of "
            f"{name}, e.g. " + ", ".join(repr(k) for k in absent[:3])
        )
    return [np.array([index[k] for k in keys], dtype=np.int64) for _, keys in entries]


def _check_lengths(frames: np.ndarray, keys: Sequence[str], out: str, w: int) -> None:
    """Every segment must hold its ramps: ``W`` frames at each end that has a neighbour."""
    m = frames.size
    for j, (f, key) in enumerate(zip(frames.tolist(), keys, strict=True)):
        need = w * ((j > 0) + (j < m - 1))
        if f < need:
            raise ConfigError(
                f"concat: expected tracks of at least {need} frames for a crossfade "
                f"of {w} frames; got {key!r} with {f} frames in output {out!r}"
            )


def plan_concat(
    table: Table, name: str, entries: Entries, samples_per_frame: int, crossfade: int = 0
) -> OpPlan:
    """Plan the output tracks of a concat list over one store (see the module docstring).

    Segment ``m`` of an output starts at frame ``P_m = sum_{j<m} (F_j - W)``; it ramps up over
    its first ``W`` frames (not the first segment) and down over its last ``W`` (not the last).
    The output has ``P_last + F_last`` frames and ``P_last * spf + S_last`` samples: each input
    but the last counts in whole frames (its last frame's padding stays, less than one frame),
    minus the ``W``-frame overlaps.

    Args:
        table: The store's track table.
        name: The store's name, for errors.
        entries: :func:`parse_concat_list` output.
        samples_per_frame: The store's geometry.
        crossfade: ``W``, overlap of consecutive segments in frames (:func:`crossfade_frames`).

    Raises:
        StoreMismatchError: A key is not a done track of the store.
        ConfigError: A track is shorter than its ramps.
    """
    rows = _rows(table, name, entries)
    k, n = max(r.size for r in rows), len(rows)
    src_off, src_fr, dst, r_in, r_out = (np.zeros((k, n), np.int64) for _ in range(5))
    frames, samples = np.zeros(n, np.int64), np.zeros(n, np.int64)
    for i, ((out, keys), r) in enumerate(zip(entries, rows, strict=True)):
        f = table["frames"][r].astype(np.int64)
        _check_lengths(f, keys, out, crossfade)
        m = r.size
        starts = np.concatenate([[0], np.cumsum(f[:-1] - crossfade)])
        src_off[:m, i], src_fr[:m, i], dst[:m, i] = table["offset"][r], f, starts
        r_in[1:m, i], r_out[: m - 1, i] = crossfade, crossfade
        frames[i] = starts[-1] + f[-1]
        samples[i] = starts[-1] * samples_per_frame + int(table["samples"][r[-1]])
    first = np.array([r[0] for r in rows], dtype=np.int64)
    return OpPlan(
        keys=[out for out, _ in entries],
        frames=frames,
        samples=samples,
        source_rate=table["source_rate"][first],
        channels=table["channels"][first],
        src_offset=src_off,
        src_frames=src_fr,
        gains=np.ones((k, n)),
        info={"crossfade_frames": crossfade},
        placement=Placement((0,) * k, dst, r_in, r_out),
    )


def concat_record(entries: Entries) -> dict[str, Any]:
    """Lineage form of a concat list: output count, SHA-256 of its tabbed text, and the entries
    themselves when they name at most 1000 keys."""
    text = "\n".join("\t".join([out, *keys]) for out, keys in entries)
    total = sum(len(keys) for _, keys in entries)
    return {
        "outputs": len(entries),
        "inputs": total,
        "sha256": hashlib.sha256(text.encode("utf-8")).hexdigest(),
        **({"entries": [[out, list(keys)] for out, keys in entries]} if total <= 1000 else {}),
    }


def concat_store(
    src: StoreLike,
    out: str | os.PathLike | None,
    entries: Entries | str | os.PathLike,
    *,
    crossfade_s: float = 0.0,
    options: OpOptions | None = None,
    **option_fields: Any,
) -> OpResult:
    """Join tracks of ``src`` end to end on the latent frame grid, with a latent crossfade.

    Consecutive segments overlap by ``W = round(crossfade_s * sr / spf)`` whole latent frames, the
    first ramping down and the second up, linearly; the ramps sum to 1 at every frame, so the
    result decodes to the audio crossfade by homogeneity (each ramp is a gain, Eq. 1) and
    additivity (the faded segments are summed, Eq. 2). The output track's ``samples`` is exact:
    each input but the last counts in whole frames, minus the overlaps (see :func:`plan_concat`).
    Always the linear form (the gains sum to 1: the affine form is the same; an ``"affine"``
    origin is refused).

    Args:
        src: Input store.
        out: Output store (default beside ``src``: ``S.concat.zarr``).
        entries: ``[(out_key, [in_key, ...]), ...]`` or a list file (format: the module
            docstring).
        crossfade_s: Crossfade length in seconds (0: butt joins on the frame grid).
        options: How to run it (:class:`~lincae_core.ops.options.OpOptions`); its fields may
            also be given as keywords (``jobs=2``).

    Raises:
        StoreMismatchError: A listed key is not a done track of ``src``.
        ConfigError: A bad list, a negative crossfade, or a track shorter than its ramps.
    """
    opts = op_options(options, option_fields)
    s = open_store(src)
    if isinstance(entries, (str, os.PathLike)):
        with open(entries, encoding="utf-8") as f:
            entries = parse_concat_list(f.read(), str(entries))
    geo = s.geometry
    w = crossfade_frames(crossfade_s, geo.sample_rate, geo.samples_per_frame)
    plan = plan_concat(s.table(), str(s.path), entries, geo.samples_per_frame, w)
    args = {"list": concat_record(entries), "crossfade_s": float(crossfade_s), "crossfade_frames": w}
    return run_plan(plan, [s], out, op="concat", args=args, options=opts, origin=opts.origin or "linear")
