"""What the latent-operation commands share beside their options (all in ``lincae_cli.options``):
key lists, linearity warnings and the one result printer."""

from __future__ import annotations

import json
from collections.abc import Sequence
from typing import IO, Any, Protocol

import click

from lincae_cli.options import EXIT_PARTIAL
from lincae_cli.progress import note
from lincae_core.discovery import read_file_list
from lincae_core.ops.options import OpResult


class Result(Protocol):
    """What every latent operation returns (``OpResult``, ``StemsResult``, ``StatsResult``)."""

    op: str
    out: str

    @property
    def left_out(self) -> dict[str, dict[str, int]]: ...

    def to_dict(self) -> dict[str, Any]: ...


def read_keys(stream: IO[str] | None) -> list[str] | None:
    """The keys of a ``--keys-from`` list (one a line; blank and ``#`` lines skipped), or None."""
    return None if stream is None else read_file_list(stream)


def echo_warnings(lines: list[str]) -> None:
    """Print linearity warnings on stderr, unless -q/--quiet."""
    for line in lines:
        note(line)


def wrote(result: OpResult) -> list[str]:
    """The human summary of an operation that wrote one store, and its drawn or given seed."""
    extra = "".join(f", {k} {v}" for k, v in result.to_dict().items() if k in ("skipped", "empty") and v)
    lines = [f"wrote {result.out} ({result.tracks} tracks, {result.frames} frames{extra})"]
    if result.seed is not None:  # a random pairing (its seed was given or drawn)
        lines.append(f"random seed {result.seed} (--seed {result.seed} reproduces these mixes)")
    return lines


def echo_result(
    result: Result, as_json: bool, paths: Sequence[str] | None = None, notes: Sequence[str] | None = None
) -> None:
    """Print an operation's result: the paths it wrote on stdout, one a line (default: its
    output; ``--json``: the record instead), and on stderr its ``notes`` (default:
    :func:`wrote`), each after the operation's name, and the tracks it left out.

    Left-out tracks (planned or failed in an input) make the exit status 3.
    """
    if as_json:
        click.echo(json.dumps(result.to_dict()))
    else:
        for path in [result.out] if paths is None else paths:
            click.echo(path)
    if notes is None:
        assert isinstance(result, OpResult), "results of other shapes bring their notes"
        notes = wrote(result)
    for line in notes:
        note(f"{result.op}: {line}")
    empty = isinstance(result, OpResult) and (result.tracks == 0 or result.frames == 0)
    if empty:  # e.g. select --start past every track's end: a store with nothing in it
        click.echo(
            f"{result.op}: {result.out} holds no latent frames ({result.tracks} tracks): check the "
            "keys, --start and --duration against the input's tracks (lincae ls)",
            err=True,
        )
    left = result.left_out
    for path, n in left.items():
        click.echo(
            f"{result.op}: left out {n['planned']} planned and {n['failed']} failed "
            f"tracks of {path} (finish its encode, or see: lincae ls --status failed {path})",
            err=True,
        )
    if left or empty:
        raise click.exceptions.Exit(EXIT_PARTIAL)
