"""Helpers shared by the latent-operation commands: the output store option, key lists, result output."""

from __future__ import annotations

import json
from typing import IO, Any

import click

from lincae_cli.options import EXIT_PARTIAL, out_option

store_out_option = out_option(
    "Output store (a new directory; default: beside the first input, named after the inputs and "
    "the operation, e.g. a+b.mix.zarr, never replacing one)."
)
origin_option = click.option(
    "--origin",
    type=click.Choice(["linear", "affine"]),
    default=None,
    help="linear: the plain sum of gained latents; affine: plus (1 - sum of gains)·Enc(0), exact for "
    "an encoder that maps silence to Enc(0) [default: the form the store's model measured closer "
    "to the audio operation, docs/linearity.md].",
)
require_complete_option = click.option(
    "--require-complete",
    is_flag=True,
    help="Refuse inputs with planned or failed tracks (default: leave them out, exit 3).",
)
missing_option = click.option(
    "--missing",
    type=click.Choice(["error", "skip"]),
    default="error",
    show_default=True,
    help="A key missing from some input: refuse, or drop it.",
)
keys_from_option = click.option(
    "--keys-from",
    type=click.File("r", encoding="utf-8"),
    default=None,
    help="File with one track key per line ('-' reads stdin).",
)


def read_keys(stream: IO[str] | None) -> list[str] | None:
    """Read one key per line (line ends stripped, blank lines skipped)."""
    if stream is None:
        return None
    return [line.rstrip("\r\n") for line in stream if line.rstrip("\r\n")]


def echo_warnings(lines: list[str]) -> None:
    """Print linearity warnings on stderr, unless -q/--quiet."""
    ctx = click.get_current_context(silent=True)
    if ctx is not None and (ctx.find_root().obj or {}).get("quiet"):
        return
    for line in lines:
        click.echo(line, err=True)


def echo_result(summary: dict[str, Any], as_json: bool) -> None:
    """Print an operation's result: its output path alone on stdout (``--json``: the record).

    The human summary, a drawn random seed and any left-out tracks go to stderr; left-out tracks
    (planned or failed in an input) make the exit status 3.
    """
    click.echo(json.dumps(summary) if as_json else summary["out"])
    extra = [f"{k} {v}" for k, v in summary.items() if k in ("skipped", "empty") and v]
    click.echo(
        f"{summary['op']}: wrote {summary['out']} ({summary['tracks']} tracks, "
        f"{summary['frames']} frames{''.join(', ' + e for e in extra)})",
        err=True,
    )
    if "seed" in summary:  # a random pairing (its seed was given or drawn)
        click.echo(
            f"{summary['op']}: random seed {summary['seed']} (--seed {summary['seed']} "
            "reproduces these mixes)",
            err=True,
        )
    left = summary.get("left_out") or {}
    for path, n in left.items():
        click.echo(
            f"{summary['op']}: left out {n['planned']} planned and {n['failed']} failed "
            f"tracks of {path} (finish its encode, or see: lincae ls --status failed {path})",
            err=True,
        )
    if left:
        raise click.exceptions.Exit(EXIT_PARTIAL)
