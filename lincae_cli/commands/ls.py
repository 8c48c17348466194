"""``lincae ls STORE``: list the tracks of a latent store."""

from __future__ import annotations

import json

import click

from lincae_cli.options import json_option
from lincae_cli.progress import note
from lincae_core import STATUS_NAMES, list_tracks


def _printable(key: str) -> str:
    # Keys are stored as given; escape control characters so one track stays one line.
    return json.dumps(key) if any(ord(ch) < 32 for ch in key) else key


@click.command("ls")
@click.argument("store", type=click.Path())
@click.option(
    "--status",
    type=click.Choice(["all", *STATUS_NAMES.values()]),
    default="done",
    show_default=True,
    help="Only tracks with this status (default: the decodable ones, so that `ls | xargs decode` "
    "works on any store); all: every track.",
)
@json_option
def ls_cmd(store: str, status: str, as_json: bool) -> None:
    """List the tracks of STORE: key, duration in seconds, status (one per line).

    Failed tracks carry their reason; --status failed also lists the inputs that failed at
    planning (no row in the store). --json prints one JSON record a track, one a line (JSON
    Lines), with each mix track's sources and gains.
    """
    every = list_tracks(store, None)  # one pass over the store; the filter is on the rows
    rows = every if status == "all" else [r for r in every if r["status"] == status]
    if status == "done":
        others = [r["status"] for r in every if r["status"] != "done"]
        if others:
            counts = ", ".join(f"{others.count(s)} {s}" for s in sorted(set(others)))
            note(f"ls: {counts} tracks not listed (--status all lists them)")
    if as_json:
        for r in rows:
            click.echo(json.dumps(r))
        return
    for r in rows:
        reason = f"\t{r['reason']}" if r.get("reason") else ""
        click.echo(f"{_printable(r['key'])}\t{r['duration_s']:.3f}\t{r['status']}{reason}")
