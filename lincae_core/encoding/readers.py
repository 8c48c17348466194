"""The reader threads of an encode: each streams one row's audio, window by window, into a queue.

Readers decode and resample (soundfile and soxr release the GIL) while the model runs, and
measure each row's integrated loudness (BS.1770, :mod:`lincae_core.loudness`) from the same
windows, every sample once, without holding the audio. Each reader streams its file through a
small bounded queue, so memory is bounded by the batch size, the window and the look-ahead, never
by a track's length. Audio that cannot be read (a decode error mid-file) is replaced by zeros in
its windows, so that the batch content, hence every other window's latents, is the same in every
run; the error is reported once, with the row's end.
"""

from __future__ import annotations

import queue
import threading
from dataclasses import dataclass
from typing import Any, NamedTuple

import numpy as np

from lincae_core.audio import AudioStream
from lincae_core.errors import AudioError
from lincae_core.location import Location, StorageError
from lincae_core.loudness import StreamLoudness

__all__ = ["RowEnd", "RowJob", "Window", "read_row"]

_DRAIN = 1 << 16


class _Cancelled(Exception):
    """The consumer stopped; a reader thread gives up."""


@dataclass(frozen=True)
class RowJob:
    """What a reader thread needs to stream one row's windows."""

    row: int
    path: Location | None  # None: a finished row whose input is gone (grown store): silence
    spans: list[tuple[int, int]]  # audio samples [a, b) of each window
    needed: list[bool]
    samples: int  # planned exact length at the model rate
    full: bool  # read to the end (to check the length), not just to the last needed window


class Window(NamedTuple):
    """A queue item: the audio ``[C, L]`` of the row's window number ``number``."""

    number: int
    audio: np.ndarray


class RowEnd(NamedTuple):
    """The last queue item of a row: its decoded length (None unless read in full), the read error
    (None: none), and the integrated loudness of its audio as encoded (NaN unless read in full)."""

    length: int | None
    error: str | None
    lufs: float


def _put(q: queue.Queue[Any], item: Any, stop: threading.Event) -> None:
    while not stop.is_set():
        try:
            q.put(item, timeout=0.1)
            return
        except queue.Full:
            continue
    raise _Cancelled


def read_row(job: RowJob, rate: int, mode: str, q: queue.Queue[Any], stop: threading.Event) -> None:
    """Stream a row's needed windows into ``q``: a :class:`Window` each, then a :class:`RowEnd`.

    Any read error is reported once in the :class:`RowEnd`; the windows from the failure on are
    zeros, so the batches they are part of have the same content in every run.
    """
    channels = 1 if mode == "mono" else 2
    error: str | None = None
    length: int | None = None
    stream: AudioStream | None = None
    try:
        if job.path is None:
            raise AudioError(f"row {job.row}: its input is no longer in the library")
        stream = AudioStream(job.path, rate, mode)
    except StorageError:
        raise  # the network, not the file: the encode stops, the row stays planned
    except Exception as exc:  # soundfile raises more than AudioError on garbage
        error = _reason(job.path, exc)
    last = len(job.spans) - 1 if job.full else max(i for i, n in enumerate(job.needed) if n)
    meter = _Meter(rate, channels, job.samples) if job.full else None
    try:
        for i, (a, b) in enumerate(job.spans[: last + 1]):
            x = None
            if stream is not None and error is None:
                try:
                    x = np.ascontiguousarray(stream.read(a, b), dtype=np.float32)
                except StorageError:
                    raise
                except Exception as exc:
                    error = _reason(job.path, exc)
            if meter is not None and x is not None:
                meter.feed(a, x)
            if job.needed[i]:
                _put(q, Window(i, x if x is not None else np.zeros((channels, b - a), np.float32)), stop)
        if stream is not None and error is None and job.full:
            try:
                length = _drain(stream, job.spans[-1][1])
            except StorageError:
                raise
            except Exception as exc:
                error = _reason(job.path, exc)
    finally:
        if stream is not None:
            stream.close()
    _put(q, RowEnd(length, error, meter.lufs() if meter is not None else float("nan")), stop)


class _Meter:
    """Loudness of a row from its overlapping windows: each sample below ``samples`` fed once."""

    def __init__(self, rate: int, channels: int, samples: int) -> None:
        self.meter, self.samples, self.pos = StreamLoudness(rate, channels), samples, 0

    def feed(self, a: int, x: np.ndarray) -> None:
        start, stop = max(self.pos, a), min(a + x.shape[-1], self.samples)
        if a <= self.pos and stop > start:
            self.meter.feed(x[:, start - a : stop - a])
            self.pos = stop

    def lufs(self) -> float:
        """Integrated loudness, NaN unless every sample was fed (see :mod:`lincae_core.loudness`)."""
        return self.meter.integrated() if self.pos == self.samples else float("nan")


def _reason(path: Location | None, exc: Exception) -> str:
    return str(exc) if isinstance(exc, AudioError) else f"{path}: read failed ({type(exc).__name__}: {exc})."


def _drain(stream: AudioStream, pos: int) -> int:
    """Read a stream to its end in bounded blocks and return its length."""
    while stream.length is None:
        stream.read(pos, pos + _DRAIN)
        pos += _DRAIN
    return stream.length
