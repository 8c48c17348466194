"""Progress bars on stderr (hidden when stderr is not a terminal), the only place the CLI draws,
and the stderr notes that -q/--quiet silences (tqdm is imported with the first bar, so that a
command that draws none, such as ``ls``, does not pay for it)."""

from __future__ import annotations

import contextlib
import sys
from collections.abc import Callable, Iterator
from typing import Any

import click


def _tqdm() -> Any:
    """tqdm, imported with the first bar."""
    from tqdm import tqdm

    return tqdm


_HOURS = "{l_bar}{bar}| {n:.3f}/{total:.3f} h [{elapsed}<{remaining}{postfix}]"


@contextlib.contextmanager
def frame_progress(desc: str, unit: str = "frame") -> Iterator[Callable[[int], None]]:
    """Yield a progress callback drawing a tqdm bar of ``unit`` counts."""
    with _tqdm()(desc=desc, unit=unit, unit_scale=True, file=sys.stderr, disable=None, leave=False) as bar:
        yield bar.update


class EncodeBar:
    """Encode progress: files while planning, then hours of audio and x real time."""

    def __init__(self) -> None:
        self.bar: Any = None  # a tqdm bar
        self.phase = ""

    def __call__(self, p: Any) -> None:
        """Show one ``EncodeProgress`` update."""
        if p.phase != self.phase:
            self.close()
            self.phase = p.phase
            total = p.files_total if p.phase == "plan" else p.seconds_total / 3600
            fmt = None if p.phase == "plan" else _HOURS
            self.bar = _tqdm()(
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


@contextlib.contextmanager
def labelled_progress(unit: str = "track") -> Iterator[Callable[[int, int, str], None]]:
    """Yield a ``progress(done, total, label)`` callback (eval, card): a bar whose total is set
    by the first call and whose postfix names the current item."""
    with _tqdm()(total=None, file=sys.stderr, unit=unit, dynamic_ncols=True, disable=None) as bar:

        def progress(done: int, total: int, label: str) -> None:
            bar.total = total
            bar.set_postfix_str(label, refresh=False)
            bar.update(done - bar.n)

        yield progress


@contextlib.contextmanager
def count_progress(total: int | None, unit: str = "track") -> Iterator[Callable[..., None]]:
    """Yield a callback that advances a bar of ``total`` items by one per call (decode)."""
    with _tqdm()(total=total or None, unit=unit, file=sys.stderr, disable=None) as bar:
        yield lambda *_: bar.update(1)


class TrainBar:
    """Training progress: steps with the loss, learning rate and gain range as postfix.

    Created on the first step, so that set-up errors print without a bar; drawn by rank 0 only.
    """

    def __init__(self, enabled: bool) -> None:
        self.enabled = enabled
        self.bar: Any = None  # a tqdm bar

    def __call__(self, step: int, total: int, row: dict[str, float]) -> None:
        """Show the state after ``step`` of ``total``."""
        if self.bar is None:
            self.bar = _tqdm()(
                total=total, initial=step - 1, file=sys.stderr, disable=not self.enabled, dynamic_ncols=True
            )
        self.bar.set_postfix(
            loss=f"{row['loss']:.4g}",
            lr=f"{row['lr']:.2e}",
            gain=f"[{row['a_min']:.2f},{row['a_max']:.2f}]",
            refresh=False,
        )
        self.bar.update(step - self.bar.n)

    def close(self) -> None:
        """Close the bar."""
        if self.bar is not None:
            self.bar.close()


def quiet() -> bool:
    """Whether -q/--quiet was given (before or after the command)."""
    ctx = click.get_current_context(silent=True)
    return ctx is not None and bool((ctx.find_root().obj or {}).get("quiet"))


def note(line: str) -> None:
    """A summary or warning on stderr, which -q/--quiet silences (results and errors still print)."""
    if not quiet():
        click.echo(line, err=True)
