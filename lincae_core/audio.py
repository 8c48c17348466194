"""Audio file I/O: probing, loading (soxr resampling, mono/stereo), streaming reads, saving.

Layout: audio arrays are ``[C, T]`` float32 numpy arrays at the model sample rate.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any, BinaryIO

import numpy as np
import soundfile as sf
import soxr

from lincae_core.errors import AudioError
from lincae_core.location import RemotePath, as_location, storage_errors

__all__ = [
    "AudioInfo",
    "AudioStream",
    "CHANNEL_MODES",
    "load_audio",
    "probe_audio",
    "resampled_length",
    "save_audio",
]

CHANNEL_MODES = ("mono", "stereo")
_BLOCK = 1 << 16


@dataclass(frozen=True)
class AudioInfo:
    """What a file's header says: frames, sample rate and channel count."""

    frames: int
    sample_rate: int
    channels: int


def resampled_length(frames: int, rate_in: int, rate_out: int) -> int:
    """Length of a signal after soxr resampling: round-half-up of frames * out / in."""
    return (2 * frames * rate_out + rate_in) // (2 * rate_in)


class _RemoteSource:
    """A remote file object for libsndfile's virtual I/O that keeps the storage layer's failure.

    libsndfile calls ``read``/``seek`` from C callbacks, where an exception is printed and lost
    (the read returns 0 bytes: end of file, or a format it does not know). This wrapper stores the
    first failure instead and reports end of file; :meth:`check` raises it as a one-line
    :class:`StorageError`, so a network failure is never taken for a corrupt or truncated file.
    """

    def __init__(self, loc: RemotePath) -> None:
        self.loc = loc
        self.error: BaseException | None = None
        self._f = loc.open("rb", block_size=2**20, cache_type="readahead")

    def _guard(self, fn: Any, *args: Any, default: Any) -> Any:
        if self.error is not None:
            return default
        try:
            return fn(*args)
        except Exception as exc:
            self.error = exc
            return default

    def read(self, n: int = -1) -> bytes:
        return self._guard(self._f.read, n, default=b"")

    def readinto(self, buf: Any) -> int:
        return self._guard(self._f.readinto, buf, default=0)

    def seek(self, offset: int, whence: int = 0) -> int:
        return self._guard(self._f.seek, offset, whence, default=self._f.loc)

    def tell(self) -> int:
        return self._f.tell()

    def close(self) -> None:
        self._f.close()

    def check(self) -> None:
        """Raise the storage failure seen, if any (a :class:`StorageError` naming the URL)."""
        if self.error is not None:
            with storage_errors(self.loc, "read"):
                raise self.error


def check_source(src: Any) -> None:
    """Raise the storage failure a :func:`sound_file` source saw, if any."""
    if isinstance(src, _RemoteSource):
        src.check()


def sound_file(path: str | os.PathLike | RemotePath) -> Any:
    """What soundfile opens for ``path``: the local path, or a seekable file object on a URL
    (buffered range reads: a header probe reads the first block, not the whole object)."""
    loc = as_location(path)
    if isinstance(loc, RemotePath):
        with storage_errors(loc, "open"):
            return _RemoteSource(loc)
    return str(loc)


def probe_audio(path: str | os.PathLike | RemotePath) -> AudioInfo:
    """Read an audio file's header, raising ``AudioError`` naming the file on failure."""
    p = as_location(path)
    if p.is_dir():
        raise AudioError(f"{p}: is a directory, expected an audio file.")
    src = sound_file(p)
    try:
        info = sf.info(src)
    except Exception as exc:  # soundfile raises LibsndfileError / RuntimeError / TypeError
        check_source(src)
        raise AudioError(f"{p}: not a readable audio file ({_reason(exc)}).") from exc
    finally:
        if not isinstance(src, str):
            src.close()
    check_source(src)
    if info.frames <= 0:
        raise AudioError(f"{p}: empty audio file (0 frames).")
    if info.samplerate <= 0 or info.channels <= 0:
        raise AudioError(f"{p}: invalid header (rate {info.samplerate}, channels {info.channels}).")
    return AudioInfo(int(info.frames), int(info.samplerate), int(info.channels))


def _reason(exc: Exception) -> str:
    """libsndfile's reason, without its misleading wording for a regular file it cannot parse."""
    text = str(exc).strip().splitlines()[0][:200] if str(exc).strip() else type(exc).__name__
    if "possibly a pipe" in text or "Format not recognised" in text:
        return "its content is not in an audio format libsndfile reads: a wrong extension or a corrupt file"
    return text


def _to_mode(x: np.ndarray, mode: str) -> np.ndarray:
    """Map ``[T, C_in]`` to ``[C, T]``: mono averages channels, stereo duplicates mono."""
    if mode == "mono":
        return x.mean(axis=1, dtype=np.float32)[None]
    if mode == "stereo":
        if x.shape[1] == 1:
            return np.repeat(x.T, 2, axis=0)
        return x[:, :2].T.copy()
    raise AudioError(f"Unknown channel mode {mode!r}; expected one of {CHANNEL_MODES}.")


def load_audio(path: str | Path | BinaryIO, sample_rate: int, channels: str = "mono") -> np.ndarray:
    """Load a whole file, resampled to ``sample_rate`` with soxr (VHQ): ``[C, T]`` float32."""
    name = getattr(path, "name", path)
    try:
        data, rate = sf.read(
            path if not isinstance(path, Path) else str(path), dtype="float32", always_2d=True
        )
    except Exception as exc:
        raise AudioError(f"{name}: not a readable audio file ({_reason(exc)}).") from exc
    if data.shape[0] == 0:
        raise AudioError(f"{name}: empty audio file (0 frames).")
    if not np.isfinite(data).all():
        raise AudioError(f"{name}: contains NaN or infinite samples.")
    if rate != sample_rate:
        data = soxr.resample(data, rate, sample_rate, quality="VHQ").astype(np.float32, copy=False)
    return np.ascontiguousarray(_to_mode(data, channels))


class AudioStream:
    """Sequential reader of one file at the model rate, for bounded-memory encoding.

    ``read(start, stop)`` returns ``[C, stop-start]`` (zero-padded past the end); successive
    calls must not move ``start`` backwards, so only a window's worth of audio is buffered.
    """

    def __init__(
        self, path: str | os.PathLike | RemotePath, sample_rate: int, channels: str = "mono"
    ) -> None:
        self.path = as_location(path)
        info = probe_audio(self.path)
        self.rate_in = info.sample_rate
        self.sample_rate = sample_rate
        self.mode = channels
        self.num_channels = 1 if channels == "mono" else 2
        self.expected_length = resampled_length(info.frames, info.sample_rate, sample_rate)
        self._src = sound_file(self.path)
        try:
            self._file = sf.SoundFile(self._src)
        except Exception as exc:
            check_source(self._src)
            raise AudioError(f"{self.path}: not a readable audio file ({_reason(exc)}).") from exc
        check_source(self._src)
        self._resampler = (
            soxr.ResampleStream(self.rate_in, sample_rate, info.channels, dtype="float32", quality="VHQ")
            if self.rate_in != sample_rate
            else None
        )
        self._buf = np.zeros((self.num_channels, 0), np.float32)
        self._buf_start = 0
        self._eof = False
        self.length: int | None = None  # known once the file is exhausted

    def close(self) -> None:
        """Close the underlying file."""
        self._file.close()
        if not isinstance(self._src, str):
            self._src.close()

    def __enter__(self) -> AudioStream:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def _pull(self) -> None:
        try:
            block = self._file.read(_BLOCK, dtype="float32", always_2d=True)
        except Exception as exc:
            check_source(self._src)
            raise AudioError(f"{self.path}: read failed ({_reason(exc)}).") from exc
        check_source(self._src)  # a failed read looks like the end of the file to libsndfile
        last = block.shape[0] < _BLOCK
        if block.size and not np.isfinite(block).all():
            raise AudioError(f"{self.path}: contains NaN or infinite samples.")
        if self._resampler is not None:
            block = self._resampler.resample_chunk(block, last=last)
        if block.shape[0]:
            self._buf = np.concatenate([self._buf, _to_mode(block, self.mode)], axis=1)
        if last:
            self._eof = True
            self.length = self._buf_start + self._buf.shape[1]
            if self.length == 0:
                raise AudioError(f"{self.path}: empty audio file (0 frames).")

    def read(self, start: int, stop: int) -> np.ndarray:
        """Return samples ``[start, stop)`` as ``[C, stop-start]``, zero-padded past the end."""
        if start < self._buf_start:
            raise AudioError(
                f"{self.path}: stream reads must not go backwards ({start} < {self._buf_start})."
            )
        while not self._eof and self._buf_start + self._buf.shape[1] < stop:
            self._pull()
        drop = start - self._buf_start
        if drop > 0:
            self._buf = self._buf[:, drop:]
            self._buf_start = start
        out = self._buf[:, : stop - start]
        if out.shape[1] < stop - start:
            out = np.pad(out, ((0, 0), (0, stop - start - out.shape[1])))
        return out


SUBTYPES_FLOAT = ("FLOAT", "DOUBLE")


def save_audio(
    path: str | Path | BinaryIO,
    audio: np.ndarray,
    sample_rate: int,
    format: str = "WAV",
    subtype: str | None = None,
) -> int:
    """Write ``[C, T]`` audio; integer subtypes are hard-clipped to [-1, 1].

    Returns:
        The number of samples that were clipped (0 for float subtypes, which keep them).
    """
    subtype = subtype or ("PCM_16" if format.upper() != "WAV" else "PCM_16")
    x = np.asarray(audio, dtype=np.float32)
    clipped = 0
    if subtype.upper() not in SUBTYPES_FLOAT:
        clipped = int(np.count_nonzero(np.abs(x) > 1.0))
        x = np.clip(x, -1.0, 1.0)
    target = path if not isinstance(path, (str, Path)) else os.fspath(path)
    try:
        sf.write(target, x.T, sample_rate, format=format, subtype=subtype)
    except Exception as exc:
        raise AudioError(
            f"{getattr(path, 'name', path)}: cannot write {format}/{subtype} ({_reason(exc)})."
        ) from exc
    return clipped
