"""``lincae select STORE [-o OUT] [--keys-from FILE|-] [--start S] [--duration D]``."""

from __future__ import annotations

from dataclasses import replace
from typing import IO

import click

from lincae_cli.commands._ops_common import echo_result, read_keys
from lincae_cli.options import keys_from_option, op_options, store_out_option
from lincae_cli.progress import frame_progress
from lincae_core.ops import OpOptions


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
@op_options()
def select_cmd(
    store: str,
    out: str | None,
    keys_from: IO[str] | None,
    start_s: float | None,
    duration_s: float | None,
    options: OpOptions,
    as_json: bool,
) -> None:
    """Write a new store with a subset of STORE's tracks, cut in time."""
    from lincae_core.ops import select_store  # torch only when the command runs

    keys = read_keys(keys_from)
    with frame_progress("select") as progress:
        result = select_store(
            store,
            out,
            keys=keys,
            start_s=start_s,
            duration_s=duration_s,
            options=replace(options, progress=progress),
        )
    echo_result(result, as_json)
