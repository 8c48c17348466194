"""``lincae select STORE [-o OUT] [--keys-from FILE|-] [--start S] [--duration D]``."""

from __future__ import annotations

from typing import IO

import click

from lincae_cli.commands._ops_common import (
    echo_result,
    keys_from_option,
    read_keys,
    require_complete_option,
    store_out_option,
)
from lincae_cli.options import jobs_option, json_option, overwrite_option, scheduler_option
from lincae_cli.progress import frame_progress
from lincae_core import select_store


@click.command("select")
@click.argument("store", type=click.Path())
@store_out_option
@keys_from_option
@click.option(
    "--start", "start_s", type=float, default=None, help="Start in seconds (rounded down to a latent frame)."
)
@click.option(
    "--duration",
    "duration_s",
    type=float,
    default=None,
    help="Duration in seconds (rounded up to whole latent frames).",
)
@require_complete_option
@jobs_option
@scheduler_option
@overwrite_option
@json_option
def select_cmd(
    store: str,
    out: str | None,
    keys_from: IO[str] | None,
    start_s: float | None,
    duration_s: float | None,
    require_complete: bool,
    jobs: int,
    scheduler: str | None,
    overwrite: bool,
    as_json: bool,
) -> None:
    """Write a new store with a subset of STORE's tracks, cut in time."""
    keys = read_keys(keys_from)
    with frame_progress("select") as progress:
        summary = select_store(
            store,
            out,
            keys=keys,
            start_s=start_s,
            duration_s=duration_s,
            jobs=jobs,
            scheduler=scheduler,
            overwrite=overwrite,
            progress=progress,
            require_complete=require_complete,
        )
    echo_result(summary, as_json)
