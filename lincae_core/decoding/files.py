"""Decode tracks of a latent store to audio files (mirrored key paths) or a WAV stream.

The tracks decode together (:mod:`lincae_core.decoding.engine`: windows of several tracks share
forward passes, several passes run at once on the CPU); each track's audio is the same bits
whatever the batch size, ``jobs`` or cluster (its own ``inference.iter_decode`` output within
float32 rounding), and its blocks are
written to its file as they come, so memory is bounded by the window, the batch and the tracks in
flight. Output paths come from track keys but can never leave the output
directory: see ``safe_relpath``. Clipping policy: integer subtypes (PCM_16, PCM_24) are
hard-clipped to [-1, 1] and the number of clipped samples is reported per track; float
subtypes (``FLOAT``) keep the samples as decoded.
"""

from __future__ import annotations

import contextlib
import logging
import os
import re
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import soundfile as sf
import soxr

from lincae_core.audio import resampled_length, sound_file
from lincae_core.config import InferenceConfig
from lincae_core.decoding.engine import DecodeTrack, iter_decode_tracks
from lincae_core.errors import AudioError, LincaeError, StoreMismatchError
from lincae_core.location import Location, RemotePath, as_location, storage_errors
from lincae_core.nn.model import LinCAE
from lincae_core.publish import atomic_path
from lincae_core.store import LatentStore

__all__ = [
    "DecodeSettings",
    "DecodeSummary",
    "check_model_matches",
    "decode_keys",
    "decode_store",
    "output_rate",
    "safe_relpath",
]

log = logging.getLogger(__name__)

FORMATS = {"wav": ("WAV", "PCM_16"), "flac": ("FLAC", "PCM_16")}
_UNSAFE = re.compile(r"[\x00-\x1f\x7f\\:*?\"<>|]")


def safe_relpath(key: str, suffix: str) -> Path:
    """Map a track key to a relative output path that cannot escape its directory.

    Components are split on '/', empty and '.' parts dropped, '..' replaced by '__', control
    characters and reserved characters replaced by '_', leading dots removed (no hidden files).
    """
    parts = []
    for part in key.split("/"):
        part = _UNSAFE.sub("_", part).strip()
        if part in ("", "."):
            continue
        part = "__" if part == ".." else part.lstrip(".") or "_"
        parts.append(part[:200])
    if not parts:
        parts = ["_"]
    return Path(*parts[:-1], parts[-1] + suffix)


def _inside(root: Location, rel: Path) -> Location:
    """``root / rel``, as the caller spelled ``root``, after checking it stays inside ``root``."""
    if isinstance(root, RemotePath):
        target_url = root / rel.as_posix()
        if not target_url.path.startswith(root.path + "/"):
            raise AudioError(f"output path for {rel} escapes {root}")  # defence in depth
        return target_url
    target = (root / rel).resolve()
    if os.path.commonpath([root.resolve(), target]) != str(root.resolve()):
        raise AudioError(f"output path for {rel} escapes {root}")  # defence in depth
    return root / rel


def check_model_matches(store: LatentStore, model: LinCAE, force: bool = False) -> None:
    """Refuse to decode a store with a model other than the one that encoded it (unless forced)."""
    geo = store.attrs["geometry"]
    cfg = model.config
    if (geo["sample_rate"], geo["samples_per_frame"], geo["latent_dim"]) != (
        cfg.sample_rate,
        cfg.samples_per_frame,
        cfg.latent_dim,
    ):
        raise StoreMismatchError(
            f"{store.path}: latent geometry {geo} does not match the model's {cfg.geometry().to_dict()}."
        )
    mid = model.model_id
    if not force and store.model_id != mid:
        raise StoreMismatchError(
            f"{store.path} was encoded by model {store.model_id[:12]}, not {str(mid)[:12]} "
            "(pass the encoding checkpoint, or --force)."
        )


def _check_keys(store: LatentStore, keys: Sequence[str]) -> None:
    """Unknown or not-done keys are an error before anything is written."""
    for k in keys:
        try:
            status = store.track(k).status
        except KeyError:
            raise StoreMismatchError(f"{store.path}: no track with key {k!r}.") from None
        if status != 1:
            raise StoreMismatchError(f"{store.path}: track {k!r} has no latents (status {status}).")


@dataclass
class DecodeSummary:
    """What a decode run wrote."""

    files: list[str] = field(default_factory=list)
    seconds: float = 0.0
    clipped: dict[str, int] = field(default_factory=dict)
    resumed: list[str] = field(default_factory=list)  # finished files of an earlier run, kept
    left_out: dict[str, int] = field(default_factory=dict)  # planned / failed tracks not decoded


def output_rate(rate: str | int, source_rate: int, model_rate: int) -> int:
    """The sample rate a track is decoded to: ``"model"``, ``"source"`` (the recorded one) or Hz."""
    if rate == "model":
        return model_rate
    if rate == "source":
        return int(source_rate) if source_rate > 0 else model_rate
    try:
        hz = int(rate)
    except (TypeError, ValueError):
        raise AudioError(f"Expected a sample rate 'model', 'source' or Hz. Got {rate!r} instead.") from None
    if not 1000 <= hz <= 768_000:
        raise AudioError(f"Expected a sample rate between 1000 and 768000 Hz. Got {hz}.")
    return hz


class _Rate:
    """Carry one track's ``[C, n]`` blocks from the model rate to its output rate (soxr, streamed),
    cut or padded to exactly ``length`` samples."""

    def __init__(self, channels: int, rate_in: int, rate_out: int, length: int) -> None:
        self.channels, self.length, self.done = channels, length, 0
        self.stream = (
            None
            if rate_in == rate_out
            else soxr.ResampleStream(rate_in, rate_out, channels, dtype="float32", quality="HQ")
        )

    def push(self, block: np.ndarray) -> list[np.ndarray]:
        """The output blocks of one model-rate block."""
        if self.stream is None:
            return [block]
        return self._emit(self.stream.resample_chunk(np.ascontiguousarray(block.T, dtype=np.float32)))

    def close(self) -> list[np.ndarray]:
        """The stream's last samples, and zeros up to ``length`` if it fell short."""
        if self.stream is None:
            return []
        out = self._emit(self.stream.resample_chunk(np.zeros((0, self.channels), np.float32), last=True))
        if self.done < self.length:
            out.append(np.zeros((self.channels, self.length - self.done), np.float32))
        return out

    def _emit(self, y: np.ndarray) -> list[np.ndarray]:
        y = y[: max(self.length - self.done, 0)]
        self.done += y.shape[0]
        return [np.ascontiguousarray(y.T)] if y.shape[0] else []


def _plan_track(store: LatentStore, key: str, model: LinCAE, rate: str | int) -> tuple[int, int]:
    """Output rate and length of one track: the exact original length at the model rate, or that
    length carried to the output rate by soxr."""
    t = store.track(key)
    model_rate = model.config.sample_rate
    out_rate = output_rate(rate, t.source_rate, model_rate)
    length = t.samples if out_rate == model_rate else resampled_length(t.samples, model_rate, out_rate)
    return out_rate, length


def _latents(store: LatentStore, keys: Sequence[str]) -> Iterator[DecodeTrack]:
    """Each track's latents ``[C, D, Z]`` (float32), read when the decoder reaches it."""
    for key in keys:
        z = store.read_track(key).astype(np.float32).transpose(1, 2, 0)
        yield DecodeTrack(z, store.track(key).samples)


class _FileSink:
    """One output file being written: a temporary name, renamed into place by ``close``."""

    def __init__(
        self, target: Location, rate: int, channels: int, subtype: str, major: str, fmt: str
    ) -> None:
        self.stack = contextlib.ExitStack()
        tmp = self.stack.enter_context(atomic_path(target, suffix="." + fmt))
        self.file = self.stack.enter_context(sf.SoundFile(tmp, "w", rate, channels, subtype, format=major))
        self.clip = subtype not in ("FLOAT", "DOUBLE")
        self.clipped = 0

    def write(self, block: np.ndarray) -> None:
        if self.clip:
            self.clipped += int(np.count_nonzero(np.abs(block) > 1.0))
            block = np.clip(block, -1.0, 1.0)
        self.file.write(block.T)

    def close(self) -> None:
        self.stack.close()

    def abort(self, exc: BaseException) -> None:
        """Remove the temporary file (the error propagates from the caller)."""
        self.stack.__exit__(type(exc), exc, exc.__traceback__)


def decode_store(
    store_path: str | Path,
    out_dir: str | Path,
    model: LinCAE,
    keys: Sequence[str] | None = None,
    fmt: str = "wav",
    subtype: str | None = None,
    seed: int = 0,
    steps: int | None = None,
    inference: InferenceConfig | None = None,
    force: bool = False,
    progress: Callable[[str, float], None] | None = None,
    sample_rate: str | int = "model",
    overwrite: bool = False,
    jobs: int | None = None,
    scheduler: str | None = None,
    resume: bool = False,
) -> DecodeSummary:
    """Decode tracks (all done tracks, or ``keys``) into ``out_dir/<key>.<fmt>``.

    Files have the store's channel count and ``sample_rate`` (``"model"``: the model's rate,
    ``"source"``: each track's recorded source rate, or a rate in Hz). Existing files are refused
    before anything is written, unless ``overwrite``. Each file is written to a temporary name and
    renamed into place when complete. ``jobs`` forward passes run at once (default: one per core on
    the CPU); with ``scheduler`` (a Dask scheduler address or file) the tracks are split among the
    cluster's workers, which must see the store and ``out_dir`` at the same paths. Neither changes
    a byte of the output. ``resume`` keeps the files an interrupted run finished (a file appears
    only when complete; its header must match what this run would write: format, rate, channels,
    length) and decodes the rest. Without ``keys`` the store's planned and failed tracks are
    counted in ``left_out``.
    """
    store = LatentStore.open(store_path)
    check_model_matches(store, model, force)
    if fmt not in FORMATS:
        raise AudioError(f"Unknown format {fmt!r}; expected one of {sorted(FORMATS)}.")
    major, default_subtype = FORMATS[fmt]
    subtype = (subtype or default_subtype).upper()
    if not sf.check_format(major, subtype):
        raise AudioError(f"Subtype {subtype} is not valid for {fmt}.")
    left_out: dict[str, int] = {}
    if not keys:
        st = store.table()["status"]
        left_out = {n: int((st == v).sum()) for v, n in ((0, "planned"), (2, "failed")) if (st == v).any()}
    keys = list(keys) if keys else [t.key for t in store.tracks(status=1)]
    _check_keys(store, keys)
    root = as_location(out_dir)
    root.mkdir(parents=True, exist_ok=True)
    inference = inference or InferenceConfig(batch_size="auto")
    targets = {key: _inside(root, safe_relpath(key, "." + fmt)) for key in keys}
    taken = _existing(root, list(targets.values()))
    resumed: list[str] = []
    if resume and taken and not overwrite:
        finished = {k for k, p in targets.items() if p in set(taken)}
        for k in sorted(finished):
            _check_finished(targets[k], store, k, model, sample_rate, major, subtype)
        resumed = [str(targets[k]) for k in keys if k in finished]
        targets = {k: p for k, p in targets.items() if k not in finished}
        keys = [k for k in keys if k not in finished]
        taken = []
    if taken and not overwrite:
        raise LincaeError(
            f"{taken[0]} already exists ({len(taken)} of {len(targets)} outputs do); "
            "use --resume to keep them and decode the rest, --overwrite to replace them, or another "
            "output folder."
        )
    if scheduler:
        from lincae_core.decoding.cluster import decode_on_cluster

        settings = DecodeSettings(fmt, subtype, seed, steps, inference, sample_rate)
        summary = decode_on_cluster(as_location(store_path), root, model, keys, settings, scheduler, progress)
    else:
        settings = DecodeSettings(fmt, subtype, seed, steps, inference, sample_rate, jobs)
        summary = decode_keys(store, targets, model, settings, progress) if keys else DecodeSummary()
    summary.resumed, summary.left_out = resumed, left_out
    return summary


def _existing(root: Location, paths: list[Location]) -> list[Location]:
    """The ``paths`` that exist: one listing of ``root`` in object storage (not a request each)."""
    if not isinstance(root, RemotePath):
        return [p for p in paths if p.exists()]
    with storage_errors(root, "list"):
        found = set(root.fs.find(root.path)) if root.exists() else set()
    return [p for p in paths if isinstance(p, RemotePath) and p.path in found]


def _check_finished(
    path: Location, store: LatentStore, key: str, model: LinCAE, rate: str | int, major: str, subtype: str
) -> None:
    """Refuse to keep a file ``decode --resume`` did not write: another format, rate, channel count
    or length than this decode gives the track."""
    out_rate, length = _plan_track(store, key, model, rate)
    try:
        src = sound_file(path)
        try:
            info = sf.info(src)
        finally:
            if not isinstance(src, str):
                src.close()
    except Exception as exc:
        raise LincaeError(
            f"{path}: exists but is not a readable audio file ({exc}); remove it, or use --overwrite"
        ) from None
    want = (major, subtype, out_rate, store.channels, length)
    got = (info.format, info.subtype, info.samplerate, info.channels, info.frames)
    if got != want:
        raise LincaeError(
            f"{path}: exists but is not what this decode writes for {key!r} (format, subtype, rate, "
            f"channels, samples: {got} vs {want}); use another output folder, or --overwrite"
        )


@dataclass(frozen=True)
class DecodeSettings:
    """How ``decode_store`` decodes and writes (picklable: shipped to cluster workers)."""

    fmt: str = "wav"
    subtype: str = "PCM_16"
    seed: int = 0
    steps: int | None = None
    inference: InferenceConfig = field(default_factory=InferenceConfig)
    sample_rate: str | int = "model"
    jobs: int | None = None


def decode_keys(
    store: LatentStore,
    targets: dict[str, Location],
    model: LinCAE,
    settings: DecodeSettings,
    progress: Callable[[str, float], None] | None = None,
) -> DecodeSummary:
    """Decode the tracks ``targets`` names into their files (checked by the caller), together."""
    keys = list(targets)
    major = FORMATS[settings.fmt][0]
    plans = [_plan_track(store, key, model, settings.sample_rate) for key in keys]
    sinks: dict[int, tuple[_FileSink, _Rate]] = {}
    summary = DecodeSummary()
    done: dict[int, tuple[str, int]] = {}
    blocks = iter_decode_tracks(
        model, _latents(store, keys), settings.inference, settings.seed, settings.steps, settings.jobs
    )
    try:
        for i, block in blocks:
            if i not in sinks:
                rate, length = plans[i]
                targets[keys[i]].parent.mkdir(parents=True, exist_ok=True)
                sink = _FileSink(
                    targets[keys[i]], rate, store.channels, settings.subtype, major, settings.fmt
                )
                sinks[i] = sink, _Rate(store.channels, model.config.sample_rate, rate, length)
            sink, stage = sinks[i]
            for out in stage.push(block) if block is not None else stage.close():
                sink.write(out)
            if block is None:
                sink.close()
                del sinks[i]
                done[i] = (str(targets[keys[i]]), sink.clipped)
                if progress:
                    progress(keys[i], plans[i][1] / plans[i][0])
    except BaseException as exc:
        for sink, _ in sinks.values():
            sink.abort(exc)
        raise
    for i, key in enumerate(keys):
        path, clipped = done[i]
        if clipped:
            summary.clipped[key] = clipped
            log.warning("%s: %d samples clipped to [-1, 1] (use --subtype FLOAT to keep them)", key, clipped)
        summary.files.append(path)
        summary.seconds += plans[i][1] / plans[i][0]
    return summary
