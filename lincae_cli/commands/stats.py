"""``lincae stats STORE``: per-dimension mean and std of the latents, stored in the store."""

from __future__ import annotations

import click

from lincae_cli.commands._ops_common import echo_result
from lincae_cli.options import json_option
from lincae_cli.progress import frame_progress
from lincae_core.ops import stats_store


@click.command("stats")
@click.argument("store", type=click.Path())
@json_option
def stats_cmd(store: str, as_json: bool) -> None:
    """Measure the mean and std of every latent dimension (per channel) of STORE's done tracks.

    Streamed (float64 accumulation); the record is stored in STORE's 'stats' attribute (used by
    'lincae export --normalize'), replacing an older one. Prints STORE (--json: the record).
    """
    with frame_progress("stats") as progress:
        result = stats_store(store, progress=progress)
    st = result.stats
    std = [x for ch in st["std"] for x in ch]
    note = (
        f"{result.out}: {st['count_frames']} frames of {st['count_tracks']} done "
        f"tracks; std per dimension {min(std):.4g}..{max(std):.4g}"
    )
    echo_result(result, as_json, notes=[note])
