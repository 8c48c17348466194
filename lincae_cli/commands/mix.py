"""``lincae mix A B [C ...] [-o OUT] [--gain G ...]``: weighted sum of paired tracks (additivity)."""

from __future__ import annotations

from dataclasses import replace

import click

from lincae_cli.commands._ops_common import echo_result, echo_warnings
from lincae_cli.options import force_option, missing_option, op_options, store_out_option
from lincae_cli.progress import frame_progress
from lincae_core.ops import RANDOM_GAIN_RANGE, OpOptions, operation_warnings


@click.command("mix")
@click.argument("stores", nargs=-1, required=True, type=click.Path())
@store_out_option
@click.option(
    "--gain",
    "gains",
    type=float,
    multiple=True,
    help="Gain for every input (once) or one per input (repeat).",
)
@click.option(
    "--pair",
    type=click.Choice(["key", "position", "random"]),
    default="key",
    show_default=True,
    help="How tracks of the inputs are paired.",
)
@click.option(
    "--seed",
    type=int,
    default=None,
    help="Seed of --pair random (drawn and printed on stderr when not given).",
)
@click.option(
    "--count",
    type=click.IntRange(min=1),
    default=None,
    help="Number of random mixes (default: tracks of the first input).",
)
@click.option(
    "--gain-range",
    type=(float, float),
    default=None,
    help="Range LO HI of the random gain factors of --pair random [default: 0.5 1.0].",
)
@click.option(
    "--length",
    type=click.Choice(["shortest", "longest", "first"]),
    default="shortest",
    show_default=True,
    help="Output length when paired tracks differ (longest pads with zero latents).",
)
@missing_option
@force_option
@op_options(origin=True)
def mix_cmd(
    stores: tuple[str, ...],
    out: str | None,
    gains: tuple[float, ...],
    pair: str,
    seed: int | None,
    count: int | None,
    gain_range: tuple[float, float] | None,
    length: str,
    missing: str,
    force: bool,
    options: OpOptions,
    as_json: bool,
) -> None:
    """Write a new store with z <- sum_i g_i z_i over paired tracks of STORES.

    --gain once applies to every input; repeated, once per input in order. Each output track's
    sources and gains are recorded in the store (lincae ls --json OUT).
    """
    from lincae_core.ops import mix_stores  # torch only when the command runs

    if len(stores) < 2:
        raise click.UsageError("mix needs at least two input stores")
    lo, hi = gain_range or (RANDOM_GAIN_RANGE if pair == "random" else (1.0, 1.0))
    applied = [g * f for g in (gains or (1.0,)) for f in (lo, hi)]
    warnings = operation_warnings(list(stores), "mix", applied)
    with frame_progress("mix") as progress:
        result = mix_stores(
            list(stores),
            out,
            list(gains) or None,
            pair=pair,
            seed=seed,
            count=count,
            gain_range=gain_range,
            length=length,
            missing=missing,
            force=force,
            options=replace(options, progress=progress),
        )
    echo_warnings(warnings)
    echo_result(result, as_json)
