"""Helpers shared by the latent-operation commands: the output store option, key lists, result output."""

from __future__ import annotations

import json
from typing import IO, Any

import click

from lincae_cli.options import out_option

store_out_option = out_option("Output store (a new directory).", required=True)
missing_option = click.option(
    "--missing", type=click.Choice(["error", "skip"]), default="error", show_default=True,
    help="A key missing from some input: refuse, or drop it.",
)
keys_from_option = click.option(
    "--keys-from", type=click.File("r", encoding="utf-8"), default=None,
    help="File with one track key per line ('-' reads stdin).",
)


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
