"""Training data: weighted audio sources, random mono crops at the model rate (method.md section 3).

A *source* is a folder of audio files (any format soundfile reads, searched recursively; a
MUSDB18-style ``<track>/{mixture,bass,drums,other,vocals}.wav`` folder makes every stem and
mixture an item) and/or WebDataset tar shards (a ``.tar`` file, a brace pattern such as
``shards/{000000..000009}.tar``, or ``.tar`` files inside a folder), whose audio members are
decoded with soundfile from bytes. Sources are drawn with weights (``PATH[:WEIGHT]``).

Crops are read in the training process: on two CPU cores a busy loader worker slows each step
about 2.8x (measured; docs/training.md), and reading only the crop (``sf.read(start=, frames=)``) is
cheap. The sampler draws from its own ``torch.Generator``, whose state is part of the training
checkpoint, so a resumed run reads exactly the crops an uninterrupted run would.

Layouts: a crop batch is ``[B, T]`` float32 mono at the model's sample rate.
"""

from __future__ import annotations

import io
import logging
import math
import tarfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import soundfile as sf
import soxr
import torch

from lincae_core.config import ModelConfig, TrainConfig
from lincae_core.discovery import AUDIO_EXTENSIONS, is_audio_name
from lincae_core.errors import AudioError, ConfigError

__all__ = [
    "AudioSource",
    "CropSampler",
    "find_audio_files",
    "load_validation",
    "open_source",
    "segment_length",
    "parse_data_spec",
]

log = logging.getLogger(__name__)

_MAX_ATTEMPTS = 1000  # consecutive unusable draws (silent or unreadable) before giving up


def segment_length(cfg: TrainConfig, mcfg: ModelConfig) -> int:
    """Training crop length hop·M + 3·hop samples, M = ``segment_frames`` STFT frames (method.md §1).

    Raises:
        ConfigError: if M is not a multiple of the STFT frames per latent frame.
    """
    if cfg.segment_frames % mcfg.time_downsample:
        raise ConfigError(
            f"Expected segment_frames to be a multiple of {mcfg.time_downsample} (STFT frames per "
            f"latent). Got {cfg.segment_frames} instead."
        )
    return mcfg.hop * cfg.segment_frames + mcfg.n_fft - mcfg.hop


def parse_data_spec(spec: str) -> tuple[str, float]:
    """Split a ``PATH[:WEIGHT]`` source spec into its path and sampling weight (default 1).

    Raises:
        ConfigError: if the weight is not a positive number.
    """
    path, sep, tail = spec.rpartition(":")
    if not sep or "/" in tail or not tail or Path(spec).exists():
        return spec, 1.0
    try:
        weight = float(tail)
    except ValueError:
        raise ConfigError(
            f"Expected a data source PATH[:WEIGHT] with a numeric weight. Got {spec!r} instead."
        ) from None
    if not math.isfinite(weight) or weight <= 0:
        raise ConfigError(f"Expected a positive sampling weight in {spec!r}. Got {weight} instead.")
    return path, weight


def find_audio_files(root: str | Path) -> list[Path]:
    """Return every audio file under ``root`` (recursive, sorted; directories named like audio skipped)."""
    return sorted(p for p in Path(root).rglob("*") if is_audio_name(p.name) and p.is_file())


def _shard_paths(path: str) -> list[Path]:
    """Expand a shard spec: a ``.tar`` file, a brace pattern, or the ``.tar`` files of a folder."""
    if "{" in path:
        from webdataset.shardlists import expand_urls

        return [Path(p) for p in expand_urls(path)]
    p = Path(path)
    if p.is_dir():
        return sorted(q for q in p.rglob("*.tar") if q.is_file())
    return [p] if p.suffix == ".tar" else []


def _index_tar(path: Path) -> list[tuple[str, int, int]]:
    """List a tar shard's audio members as ``(shard, data offset, size)`` for random access."""
    with tarfile.open(path, "r:") as tar:
        return [(str(path), m.offset_data, m.size) for m in tar if m.isfile() and is_audio_name(m.name)]


@dataclass
class AudioSource:
    """One weighted source of training audio: files and tar members, each an item.

    Attributes:
        path: the spec path as given.
        weight: relative sampling weight.
        items: a file path, or ``(shard, offset, size)`` for a tar member.
        unreadable_shards: shards that could not be indexed.
    """

    path: str
    weight: float
    items: list[str | tuple[str, int, int]]
    unreadable_shards: int = 0
    _info: dict[int, tuple[int, int]] = field(default_factory=dict, repr=False)

    def __len__(self) -> int:
        return len(self.items)

    def _handle(self, index: int) -> Any:
        item = self.items[index]
        if isinstance(item, str):
            return item
        shard, offset, size = item
        with open(shard, "rb") as f:
            f.seek(offset)
            return io.BytesIO(f.read(size))

    def info(self, index: int) -> tuple[int, int]:
        """Return ``(frames, sample_rate)`` of item ``index`` (cached; raises on unreadable audio)."""
        if index not in self._info:
            meta = sf.info(self._handle(index))
            if meta.frames <= 0 or meta.samplerate <= 0:
                raise AudioError(f"{self.items[index]}: empty audio")
            self._info[index] = (int(meta.frames), int(meta.samplerate))
        return self._info[index]

    def read(self, index: int, start: int, frames: int) -> np.ndarray:
        """Read ``frames`` samples from ``start`` as mono float32 ``[frames']`` (native rate)."""
        data, _ = sf.read(self._handle(index), start=start, frames=frames, dtype="float32", always_2d=True)
        return data.mean(axis=1)


def open_source(spec: str) -> AudioSource:
    """Open a ``PATH[:WEIGHT]`` source: scan a folder for audio files and tar shards.

    Raises:
        ConfigError: bad weight syntax, a missing path, or no audio found.
    """
    path, weight = parse_data_spec(spec)
    p = Path(path)
    if "{" not in path and not p.exists():
        raise ConfigError(f"Data source {path} does not exist.")
    items: list[str | tuple[str, int, int]] = []
    if p.is_dir():
        items += [str(f) for f in find_audio_files(p)]
    elif p.is_file() and is_audio_name(p.name):
        items.append(str(p))
    bad_shards = 0
    for shard in _shard_paths(path):
        try:
            items += _index_tar(shard)
        except (OSError, tarfile.TarError) as exc:
            bad_shards += 1
            log.warning("Skipping unreadable shard %s: %s", shard, exc)
    if not items:
        raise ConfigError(
            f"No audio found under data source {path}. Expected audio files "
            f"({', '.join(sorted(AUDIO_EXTENSIONS))}) or WebDataset .tar shards with audio members."
        )
    return AudioSource(path=path, weight=weight, items=items, unreadable_shards=bad_shards)


def _resample_crop(mono: np.ndarray, sr_in: int, sr_out: int, length: int) -> np.ndarray:
    """Resample a native-rate crop with soxr and cut or zero-pad it to ``length`` samples."""
    out = mono if sr_in == sr_out else soxr.resample(mono, sr_in, sr_out)
    if out.shape[0] < length:
        out = np.pad(out, (0, length - out.shape[0]))
    return np.ascontiguousarray(out[:length], dtype=np.float32)


def _rms(x: np.ndarray) -> float:
    return float(np.sqrt(np.mean(np.square(x, dtype=np.float64)))) if x.size else 0.0


class CropSampler:
    """Random fixed-length mono crops from weighted sources, resumable (method.md section 3).

    Each attempt draws a source by weight, an item uniformly, and a start uniformly; silent
    crops (RMS < ``silence_rms``) are redrawn and unreadable items are skipped, counted and
    never drawn again. Ranks of a distributed run use distinct streams (``rank`` enters the seed).

    Args:
        sources: the opened sources.
        sample_rate: model sample rate (crops are resampled to it).
        segment: crop length in samples at ``sample_rate``.
        seed: run seed.
        rank: process rank in a distributed run.
        silence_rms: RMS threshold below which a crop is redrawn.
    """

    def __init__(
        self,
        sources: list[AudioSource],
        sample_rate: int,
        segment: int,
        seed: int = 0,
        rank: int = 0,
        silence_rms: float = 1e-3,
    ) -> None:
        if not sources:
            raise ConfigError("Expected at least one data source (--data PATH[:WEIGHT]).")
        self.sources = sources
        self.sample_rate = sample_rate
        self.segment = segment
        self.silence_rms = silence_rms
        self.generator = torch.Generator().manual_seed(seed * 65537 + 7919 + rank)
        self.bad: list[set[int]] = [set() for _ in sources]
        self.stats = {"crops": 0, "silent": 0, "unreadable": 0}

    def _weights(self) -> torch.Tensor:
        w = [s.weight if len(self.bad[i]) < len(s) else 0.0 for i, s in enumerate(self.sources)]
        if not any(w):
            raise AudioError("Every training audio item is unreadable: nothing left to train on.")
        return torch.tensor(w, dtype=torch.float64)

    def _attempt(self) -> np.ndarray | None:
        """One draw: a crop, or None when the item is unreadable or the crop silent."""
        g = self.generator
        si = int(torch.multinomial(self._weights(), 1, generator=g))
        src = self.sources[si]
        index = int(torch.randint(len(src), (1,), generator=g))
        u = float(torch.rand(1, generator=g, dtype=torch.float64))
        if index in self.bad[si]:
            return None
        try:
            frames, sr = src.info(index)
            need = math.ceil(self.segment * sr / self.sample_rate) + 16
            start = int(u * max(frames - need + 1, 1))
            crop = _resample_crop(src.read(index, start, need), sr, self.sample_rate, self.segment)
        except Exception as exc:  # noqa: BLE001 - any decoder failure means "skip this item"
            self.bad[si].add(index)
            self.stats["unreadable"] += 1
            log.warning("Skipping unreadable audio %s: %s", src.items[index], exc)
            return None
        if _rms(crop) < self.silence_rms:
            self.stats["silent"] += 1
            return None
        return crop

    def crop(self) -> np.ndarray:
        """Draw one non-silent crop ``[segment]``."""
        for _ in range(_MAX_ATTEMPTS):
            crop = self._attempt()
            if crop is not None:
                self.stats["crops"] += 1
                return crop
        raise AudioError(
            f"No usable crop in {_MAX_ATTEMPTS} draws: the training audio is silent "
            f"(RMS < {self.silence_rms}) or unreadable."
        )

    def batch(self, n: int) -> torch.Tensor:
        """Draw a batch of crops ``[n, segment]`` (float32)."""
        return torch.from_numpy(np.stack([self.crop() for _ in range(n)]))

    def state_dict(self) -> dict[str, Any]:
        """Resumable state: generator, skipped items and counters (tensors and plain types only)."""
        return {
            "generator": self.generator.get_state(),
            "bad": [sorted(b) for b in self.bad],
            "stats": dict(self.stats),
            "sources": [s.path for s in self.sources],
            "sizes": [len(s) for s in self.sources],
        }

    def load_state_dict(self, state: dict[str, Any]) -> None:
        """Restore a ``state_dict``; the sources must be the same as when it was saved."""
        sizes = [len(s) for s in self.sources]
        if state["sources"] != [s.path for s in self.sources] or state["sizes"] != sizes:
            log.warning("Data sources changed since the checkpoint: the crop stream will differ.")
        self.generator.set_state(state["generator"])
        self.bad = [set(b) for b in state["bad"]][: len(self.sources)]
        self.bad += [set() for _ in range(len(self.sources) - len(self.bad))]
        self.stats.update(state["stats"])


def load_validation(
    folder: str | Path, sample_rate: int, segment: int, n_items: int, silence_rms: float = 1e-3
) -> torch.Tensor:
    """Load a fixed validation batch: the centre crop of the first ``n_items`` usable files.

    Files are taken in sorted order; unreadable and silent ones are skipped.

    Returns:
        Audio ``[N, segment]`` with N ≤ ``n_items``.

    Raises:
        ConfigError: when the folder holds no usable audio.
    """
    src = open_source(str(folder))
    crops: list[np.ndarray] = []
    for index in range(len(src)):
        if len(crops) == n_items:
            break
        try:
            frames, sr = src.info(index)
            need = math.ceil(segment * sr / sample_rate) + 16
            mono = src.read(index, max((frames - need) // 2, 0), need)
            crop = _resample_crop(mono, sr, sample_rate, segment)
        except Exception as exc:  # noqa: BLE001
            log.warning("Skipping unreadable validation audio %s: %s", src.items[index], exc)
            continue
        if _rms(crop) >= silence_rms:
            crops.append(crop)
    if not crops:
        raise ConfigError(f"No usable (readable, non-silent) validation audio in {folder}.")
    return torch.from_numpy(np.stack(crops))
