"""``lincae extract MIX --minus ACC [--minus ...] [-o OUT]``: latent-arithmetic separation."""

from __future__ import annotations

import click

from lincae_cli.commands._ops_common import (
    echo_result,
    echo_warnings,
    missing_option,
    origin_option,
    require_complete_option,
    store_out_option,
)
from lincae_cli.options import force_option, jobs_option, json_option, overwrite_option, scheduler_option
from lincae_cli.progress import frame_progress
from lincae_core import extract_store, operation_warnings


@click.command("extract")
@click.argument("mix", type=click.Path())
@click.option(
    "--minus",
    "minus",
    multiple=True,
    required=True,
    type=click.Path(),
    help="Store to subtract, paired by key (repeat for several).",
)
@store_out_option
@click.option(
    "--length",
    type=click.Choice(["shortest", "longest", "first"]),
    default="first",
    show_default=True,
    help="Output length when paired tracks differ.",
)
@missing_option
@origin_option
@require_complete_option
@jobs_option
@scheduler_option
@force_option
@overwrite_option
@json_option
def extract_cmd(
    mix: str,
    minus: tuple[str, ...],
    out: str | None,
    length: str,
    missing: str,
    origin: str | None,
    require_complete: bool,
    jobs: int,
    scheduler: str | None,
    force: bool,
    overwrite: bool,
    as_json: bool,
) -> None:
    """Write a new store with z <- z_MIX - sum z_MINUS (the paper's Fig. 3)."""
    warnings = operation_warnings([mix], "extract")
    with frame_progress("extract") as progress:
        summary = extract_store(
            mix,
            list(minus),
            out,
            length=length,
            missing=missing,
            jobs=jobs,
            scheduler=scheduler,
            force=force,
            overwrite=overwrite,
            progress=progress,
            require_complete=require_complete,
            origin=origin,
        )
    echo_warnings(warnings)
    echo_result(summary, as_json)
