"""``lincae stats STORE``: per-dimension mean and std of the latents, stored in the store."""

from __future__ import annotations

import json

import click

from lincae_cli.options import EXIT_PARTIAL, json_option
from lincae_cli.progress import frame_progress
from lincae_core import stats_store


@click.command("stats")
@click.argument("store", type=click.Path())
@json_option
def stats_cmd(store: str, as_json: bool) -> None:
    """Measure the mean and std of every latent dimension (per channel) of STORE's done tracks.

    Streamed (float64 accumulation); the record is stored in STORE's 'stats' attribute (used by
    'lincae export --normalize'), replacing an older one. Prints STORE (--json: the record).
    """
    with frame_progress("stats") as progress:
        summary = stats_store(store, progress=progress)
    click.echo(json.dumps(summary) if as_json else summary["out"])
    st = summary["stats"]
    std = [x for ch in st["std"] for x in ch]
    click.echo(
        f"stats: {summary['out']}: {st['count_frames']} frames of {st['count_tracks']} done "
        f"tracks; std per dimension {min(std):.4g}..{max(std):.4g}",
        err=True,
    )
    left = summary.get("left_out") or {}
    for path, n in left.items():
        click.echo(
            f"stats: left out {n['planned']} planned and {n['failed']} failed tracks of {path}", err=True
        )
    if left:
        raise click.exceptions.Exit(EXIT_PARTIAL)
