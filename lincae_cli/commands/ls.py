"""``lincae ls STORE``: list the tracks of a latent store."""

from __future__ import annotations

import json

import click

from lincae_cli.options import json_option
from lincae_core import STATUS_NAMES, LatentStore


def _printable(key: str) -> str:
    # Keys are stored as given; escape control characters so one track stays one line.
    return json.dumps(key) if any(ord(ch) < 32 for ch in key) else key


@click.command("ls")
@click.argument("store", type=click.Path())
@click.option("--status", type=click.Choice(["all", *STATUS_NAMES.values()]), default="all",
              show_default=True, help="Only tracks with this status.")
@json_option
def ls_cmd(store: str, status: str, as_json: bool) -> None:
    """List the tracks of STORE: key, duration in seconds, status (one per line)."""
    s = LatentStore.open(store)
    t = s.table()
    sr = s.geometry.sample_rate
    rows = [
        {"key": str(t["key"][i]), "duration_s": int(t["samples"][i]) / sr,
         "frames": int(t["frames"][i]), "status": STATUS_NAMES[int(t["status"][i])]}
        for i in range(s.n_tracks)
        if status == "all" or STATUS_NAMES[int(t["status"][i])] == status
    ]
    if as_json:
        click.echo(json.dumps(rows))
        return
    for r in rows:
        click.echo(f"{_printable(r['key'])}\t{r['duration_s']:.3f}\t{r['status']}")
