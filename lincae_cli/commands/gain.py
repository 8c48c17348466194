"""``lincae gain STORE [-o OUT] --gain A | --db DB``: scale every latent (homogeneity)."""

from __future__ import annotations

import click

from lincae_cli.commands._ops_common import (
    echo_result,
    echo_warnings,
    origin_option,
    require_complete_option,
    store_out_option,
)
from lincae_cli.options import jobs_option, json_option, overwrite_option, scheduler_option
from lincae_cli.progress import frame_progress
from lincae_core import db_to_amplitude, gain_store, operation_warnings


@click.command("gain")
@click.argument("store", type=click.Path())
@store_out_option
@click.option("--gain", "amplitude", type=float, default=None, help="Amplitude factor, e.g. 0.5.")
@click.option("--db", type=float, default=None, help="Gain in decibels, e.g. -6.")
@origin_option
@require_complete_option
@jobs_option
@scheduler_option
@overwrite_option
@json_option
def gain_cmd(
    store: str,
    out: str | None,
    amplitude: float | None,
    db: float | None,
    origin: str | None,
    require_complete: bool,
    jobs: int,
    scheduler: str | None,
    overwrite: bool,
    as_json: bool,
) -> None:
    """Write a new store with every latent of STORE scaled: z <- a z."""
    if (amplitude is None) == (db is None):
        raise click.UsageError("give exactly one of --gain or --db")
    a = db_to_amplitude(db) if db is not None else amplitude
    warnings = operation_warnings([store], "gain", [a])
    with frame_progress("gain") as progress:
        summary = gain_store(
            store,
            out,
            a,
            jobs=jobs,
            scheduler=scheduler,
            overwrite=overwrite,
            progress=progress,
            require_complete=require_complete,
            origin=origin,
        )
    echo_warnings(warnings)
    echo_result(summary, as_json)
