"""Planning an encode: probe every source's header, fix the store layout once, atomically.

The planning step reads headers only (``probe_audio``): it fixes each track's exact length at the
model rate (``samples``), its latent frames and its place in the latent array. Inputs that cannot
be planned (unreadable, empty, truncated, directories, outside the library root) go to the
failure ledger and get no row.

Plan once, atomically: a store is planned in a hidden sibling directory
(``.OUT.plan-<host>-<pid>-<rand>``) and renamed onto ``OUT`` when complete. ``rename`` is atomic
and refuses to replace a non-empty directory, so when N shard processes start together each may
plan, exactly one rename wins, and the others discard their copy and open the winner. A reader
never sees a half-planned store, and a kill during planning leaves only a hidden temporary that
a later run on the same host removes.
"""

from __future__ import annotations

import logging
import os
import re
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any, NamedTuple

import numpy as np
import soundfile as sf

from lincae_core.audio import AudioInfo, check_source, probe_audio, resampled_length, sound_file
from lincae_core.config import ModelConfig
from lincae_core.discovery import Source, unreadable_reason
from lincae_core.encoding.settings import EncodeProgress
from lincae_core.errors import AudioError, StoreFormatError
from lincae_core.location import Location, RemotePath
from lincae_core.nn.model import LinCAE
from lincae_core.nn.transforms import padded_length
from lincae_core.publish import building_dir
from lincae_core.store import LatentStore
from lincae_core.store.layout import PlanRow

__all__ = ["EncodePlan", "PlanFailure", "build_plan", "create_planned_store", "plan_encode", "probe_source"]

log = logging.getLogger(__name__)

_DATA_LINE = re.compile(r"^data\s*:\s*(\d+)\s*\(should be (\d+)\)", re.MULTILINE)
_UNKNOWN_SIZES = (0, 0xFFFFFFFF, 0x7FFFFFFF)  # streaming writers leave the size open


def probe_source(source: Source) -> AudioInfo:
    """Read one source's header, refusing files that cannot be encoded exactly.

    libsndfile silently shortens a WAV/AIFF whose data chunk is cut off; its header log
    (``data : N (should be M)``) says so, and such a file is refused as truncated.

    Raises:
        AudioError: Naming the file and the reason.
    """
    if source.outside:
        raise AudioError(f"{source.path}: outside the library root (keys are relative to it).")
    if (why := unreadable_reason(source.path.name)) is not None:
        raise AudioError(f"{source.path}: {why}.")
    if isinstance(source.path, RemotePath):
        if not source.path.is_file():
            raise AudioError(f"{source.path}: no such object.")
        if source.path.size() == 0:
            raise AudioError(f"{source.path}: empty object (0 bytes).")
    elif not os.path.lexists(source.path):
        raise AudioError(f"{source.path}: no such file.")
    elif source.path.is_file() and source.path.stat().st_size == 0:
        raise AudioError(f"{source.path}: empty file (0 bytes).")
    info = probe_audio(source.path)
    src = sound_file(source.path)
    try:
        log_text = sf.info(src).extra_info
    except Exception:  # probe_audio just read it; a race with a deleter is not ours to report
        log_text = ""
    finally:
        if not isinstance(src, str):
            src.close()
    check_source(src)
    m = _DATA_LINE.search(log_text)
    if m and int(m.group(1)) not in _UNKNOWN_SIZES and int(m.group(2)) < int(m.group(1)):
        raise AudioError(
            f"{source.path}: truncated file (header declares {m.group(1)} bytes of audio data, "
            f"the file holds {m.group(2)})."
        )
    return info


class PlanFailure(NamedTuple):
    """A source that gets no row, and why."""

    source: Source
    reason: str


@dataclass
class EncodePlan:
    """What an encode will do: one row per plannable source, and the failures."""

    rows: list[PlanRow] = field(default_factory=list)
    paths: list[Location] = field(default_factory=list)
    failures: list[PlanFailure] = field(default_factory=list)
    sample_rate: int = 1

    @property
    def audio_seconds(self) -> float:
        """Total duration of the planned rows at the model rate."""
        return sum(r.samples for r in self.rows) / self.sample_rate

    def store_bytes(self, channels: int, latent_dim: int, dtype: str) -> int:
        """Size of the latent array of a single-shard store (excluding chunk padding)."""
        return sum(r.frames for r in self.rows) * channels * latent_dim * np.dtype(dtype).itemsize

    def to_dict(self, channels: int, latent_dim: int, dtype: str) -> dict[str, Any]:
        """Return a JSON-ready summary (``--dry-run``)."""
        return {
            "files": len(self.rows) + len(self.failures),
            "planned": len(self.rows),
            "failed": len(self.failures),
            "hours": self.audio_seconds / 3600,
            "frames": sum(r.frames for r in self.rows),
            "store_bytes": self.store_bytes(channels, latent_dim, dtype),
            "failures": [
                {"key": f.source.key, "path": str(f.source.path), "reason": f.reason} for f in self.failures
            ],
        }


def build_plan(
    sources: Sequence[Source],
    cfg: ModelConfig,
    workers: int = 2,
    progress: Callable[[int], None] | None = None,
) -> EncodePlan:
    """Probe every source's header (in parallel) and lay out one row per good source.

    Args:
        sources: From :func:`lincae_core.discovery.discover`.
        cfg: The model config (sample rate and samples per latent frame).
        workers: Threads probing headers.
        progress: Called with 1 after each probed source.

    Returns:
        The plan: a :class:`PlanRow` per good source, a :class:`PlanFailure` per other.
    """

    def probe(src: Source) -> AudioInfo | str:
        try:
            return probe_source(src)
        except AudioError as exc:
            return str(exc)

    plan = EncodePlan(sample_rate=cfg.sample_rate)
    with ThreadPoolExecutor(max(1, workers)) as pool:
        for src, info in zip(sources, pool.map(probe, sources), strict=True):
            if progress:
                progress(1)  # from this thread only: callbacks need not be thread-safe
            if isinstance(info, str):
                log.warning("skipped: %s", info)
                plan.failures.append(PlanFailure(src, info))
                continue
            samples = resampled_length(info.frames, info.sample_rate, cfg.sample_rate)
            frames, _ = padded_length(samples, cfg)
            plan.rows.append(PlanRow(src.key, frames, samples, info.sample_rate, info.channels))
            plan.paths.append(src.path)
    return plan


def plan_encode(
    sources: Sequence[Source],
    model: LinCAE,
    workers: int = 2,
    progress: Callable[[EncodeProgress], None] | None = None,
) -> EncodePlan:
    """Probe every source's header and return the plan (``--dry-run``: writes nothing)."""
    done = [0]

    def tick(n: int) -> None:
        done[0] += n
        if progress:
            progress(EncodeProgress("plan", done[0], len(sources)))

    return build_plan(sources, model.config, workers, tick)


def create_planned_store(
    out: Location,
    plan: EncodePlan,
    shards: int,
    replace: bool,
    origin: np.ndarray | None = None,
    fingerprints: Sequence[int] | None = None,
    fill: Callable[[LatentStore], None] | None = None,
    **create_args: Any,
) -> bool:
    """Create, plan and atomically publish a store at ``out``.

    Args:
        out: Destination path.
        plan: The rows and the planning failures.
        shards: Number of shard processes the layout keeps apart.
        replace: Replace an existing ``out`` (a store of another model/config, or not a store).
        origin: ``Enc(0)`` ``[W, C, D]`` to record (:meth:`LatentStore.write_origin`).
        fingerprints: One per row: its input's fingerprint (``tracks/input_fingerprint``).
        fill: Called with the planned store before it is published (a grown store's carried
            tracks, :mod:`lincae_core.encoding.grow`).
        **create_args: Passed to :meth:`LatentStore.create`.

    Returns:
        True if this process published the store, False if another process was first.
    """
    with building_dir(out, replace=replace, kind="plan", exist_ok=True) as building:
        tmp = building.tmp
        store = LatentStore.create(tmp, **create_args)
        store.plan(plan.rows, shards=shards, loudness=True)
        if origin is not None:
            store.write_origin(origin)
        if fingerprints is not None:
            store.write_input_fingerprints(fingerprints)
        if fill is not None:
            fill(store)
        for failure in plan.failures:
            store.record_failure(failure.source.key, failure.reason, writer="plan")
        if out.exists() and not out.is_dir() and not replace:
            raise StoreFormatError(f"{out} exists and is not a directory.")
    return building.published
