"""Progress bars on stderr (hidden when stderr is not a terminal): the only place the CLI draws."""

from __future__ import annotations

import contextlib
import sys
from collections.abc import Callable, Iterator
from typing import Any

from tqdm import tqdm

_HOURS = "{l_bar}{bar}| {n:.3f}/{total:.3f} h [{elapsed}<{remaining}{postfix}]"


@contextlib.contextmanager
def frame_progress(desc: str, unit: str = "frame") -> Iterator[Callable[[int], None]]:
    """Yield a progress callback drawing a tqdm bar of ``unit`` counts."""
    with tqdm(desc=desc, unit=unit, unit_scale=True, file=sys.stderr, disable=None, leave=False) as bar:
        yield bar.update


class EncodeBar:
    """Encode progress: files while planning, then hours of audio and x real time."""

    def __init__(self) -> None:
        self.bar: tqdm | None = None
        self.phase = ""

    def __call__(self, p: Any) -> None:
        """Show one ``EncodeProgress`` update."""
        if p.phase != self.phase:
            self.close()
            self.phase = p.phase
            total = p.files_total if p.phase == "plan" else p.seconds_total / 3600
            fmt = None if p.phase == "plan" else _HOURS
            self.bar = tqdm(
                total=total,
                desc="probe" if p.phase == "plan" else "encode",
                unit="file",
                file=sys.stderr,
                disable=None,
                bar_format=fmt,
                dynamic_ncols=True,
            )
        assert self.bar is not None
        if p.phase == "plan":
            self.bar.update(p.files_done - self.bar.n)
            return
        self.bar.update(p.seconds_done / 3600 - self.bar.n)
        rt = p.seconds_done / p.elapsed_s if p.elapsed_s > 0 else 0.0
        self.bar.set_postfix_str(f"files {p.files_done}/{p.files_total}, {rt:.1f}x real time", refresh=False)

    def close(self) -> None:
        """Close the current bar."""
        if self.bar is not None:
            self.bar.close()
            self.bar = None
