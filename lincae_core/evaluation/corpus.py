"""The evaluation corpora: MUSDB18-HQ-style stems folders (``<track>/<stem>.wav``, Sec. 4.4) and
folders of music, listed and loaded mono at a model's rate, cut to their first seconds."""

from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path

import torch

from lincae_core.audio import load_audio
from lincae_core.discovery import discover
from lincae_core.errors import ConfigError
from lincae_core.evaluation.protocol import STEMS

__all__ = ["STEM_EXTENSIONS", "StemTrack", "find_music_files", "find_stem_tracks", "load_stems", "load_track"]

log = logging.getLogger(__name__)

STEM_EXTENSIONS = ("wav", "flac")


@dataclass(frozen=True)
class StemTrack:
    """One track of a MUSDB18-HQ-style folder: its name and one file per stem."""

    name: str
    stems: tuple[Path, ...]  # in the order of STEMS


def _stem_file(track_dir: Path, stem: str) -> Path | None:
    for ext in STEM_EXTENSIONS:
        if (track_dir / f"{stem}.{ext}").is_file():
            return track_dir / f"{stem}.{ext}"
    return None


def find_stem_tracks(stems_dir: str | Path) -> tuple[list[StemTrack], list[dict[str, str]]]:
    """List the tracks of a MUSDB18-HQ-style folder (Sec. 4.4), ``<track>/<stem>.wav``, by name.

    Returns:
        The complete tracks, and ``{"track", "reason"}`` for each folder missing a stem.

    Raises:
        ConfigError: If the folder does not exist or holds no complete track.
    """
    root = Path(stems_dir)
    if not root.is_dir():
        raise ConfigError(f"Expected a MUSDB18-HQ-style stems folder. Got {str(root)!r} (not a directory).")
    tracks, skipped = [], []
    for d in sorted(p for p in root.iterdir() if p.is_dir() and not p.name.startswith(".")):
        files = [_stem_file(d, s) for s in STEMS]
        missing = [s for s, f in zip(STEMS, files, strict=True) if f is None]
        if missing:
            log.warning("skipping %s: no %s stem", d.name, "/".join(missing))
            skipped.append({"track": d.name, "reason": f"missing stem(s): {', '.join(missing)}"})
        else:
            tracks.append(StemTrack(d.name, tuple(f for f in files if f is not None)))
    if not tracks:
        raise ConfigError(
            f"Expected track folders with {', '.join(f'{s}.wav' for s in STEMS)} in {root}. Got none."
        )
    return tracks, skipped


def load_track(path: Path, sample_rate: int, max_seconds: float | None) -> torch.Tensor:
    """Load one file mono at ``sample_rate``, cut to its first ``max_seconds``: ``[T]``."""
    x = torch.from_numpy(load_audio(path, sample_rate, "mono")[0])
    return x if max_seconds is None else x[: round(max_seconds * sample_rate)]


def load_stems(track: StemTrack, sample_rate: int, max_seconds: float | None) -> list[torch.Tensor]:
    """Load the 4 stems mono at ``sample_rate``; unequal lengths are cut to the shortest."""
    stems = [load_track(p, sample_rate, max_seconds) for p in track.stems]
    length = min(s.shape[-1] for s in stems)
    if any(s.shape[-1] != length for s in stems):
        log.warning("%s: stems differ in length; cutting all to %d samples", track.name, length)
    return [s[:length] for s in stems]


def find_music_files(music_dir: str | Path, max_tracks: int | None) -> list[tuple[str, Path]]:
    """The first ``max_tracks`` audio files of a folder (searched recursively) as ``(key, path)``."""
    try:
        sources = discover(music_dir)
    except FileNotFoundError as exc:
        raise ConfigError(str(exc)) from None
    files = [(s.key, s.path) for s in sources if isinstance(s.path, Path) and s.path.is_file()]
    if not files:
        raise ConfigError(f"Expected audio files in the music folder {music_dir}. Got none.")
    return files[:max_tracks]
