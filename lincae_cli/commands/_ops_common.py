"""Helpers shared by the latent-operation commands: progress bars, key lists, result output."""

from __future__ import annotations

import contextlib
import json
import sys
from collections.abc import Callable, Iterator
from typing import IO, Any

import click
from tqdm import tqdm

out_option = click.option(
    "-o", "--out", "out", required=True, type=click.Path(), help="Output store (a new directory)."
)
missing_option = click.option(
    "--missing", type=click.Choice(["error", "skip"]), default="error", show_default=True,
    help="A key missing from some input: refuse, or drop it.",
)
keys_from_option = click.option(
    "--keys-from", type=click.File("r", encoding="utf-8"), default=None,
    help="File with one track key per line ('-' reads stdin).",
)


@contextlib.contextmanager
def frame_progress(desc: str, unit: str = "frame") -> Iterator[Callable[[int], None]]:
    """Yield a progress callback drawing a tqdm bar on stderr (hidden when not a terminal)."""
    with tqdm(desc=desc, unit=unit, unit_scale=True, file=sys.stderr, disable=None,
              leave=False) as bar:
        yield bar.update


def read_keys(stream: IO[str] | None) -> list[str] | None:
    """Read one key per line (line ends stripped, blank lines skipped)."""
    if stream is None:
        return None
    return [line.rstrip("\r\n") for line in stream if line.rstrip("\r\n")]


def echo_result(summary: dict[str, Any], as_json: bool) -> None:
    """Print an operation summary: JSON, or one human-readable line."""
    if as_json:
        click.echo(json.dumps(summary))
        return
    extra = [f"{k} {v}" for k, v in summary.items()
             if k in ("skipped", "empty") and v]
    click.echo(f"{summary['op']}: wrote {summary['out']} ({summary['tracks']} tracks, "
               f"{summary['frames']} frames{''.join(', ' + e for e in extra)})")
