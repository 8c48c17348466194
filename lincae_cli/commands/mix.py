"""``lincae mix A B [C ...] -o OUT``: weighted sum of paired tracks (additivity)."""

from __future__ import annotations

import click

from lincae_cli.commands._ops_common import echo_result, missing_option, store_out_option
from lincae_cli.options import force_option, jobs_option, json_option, overwrite_option
from lincae_cli.progress import frame_progress
from lincae_core import mix_stores


@click.command("mix")
@click.argument("stores", nargs=-1, required=True, type=click.Path())
@store_out_option
@click.option("--gain", "gains", type=float, multiple=True,
              help="Gain for every input (once) or one per input (repeat).")
@click.option("--pair", type=click.Choice(["key", "position", "random"]), default="key",
              show_default=True, help="How tracks of the inputs are paired.")
@click.option("--seed", type=int, default=None, help="Seed of --pair random.")
@click.option("--count", type=click.IntRange(min=1), default=None,
              help="Number of random mixes (default: tracks of the first input).")
@click.option("--gain-range", type=(float, float), default=(0.5, 1.0), show_default=True,
              help="Range of the random gain factors of --pair random.")
@click.option("--length", type=click.Choice(["shortest", "longest", "first"]),
              default="shortest", show_default=True,
              help="Output length when paired tracks differ (longest pads with zero latents).")
@missing_option
@jobs_option
@force_option
@overwrite_option
@json_option
def mix_cmd(stores: tuple[str, ...], out: str, gains: tuple[float, ...], pair: str,
            seed: int | None, count: int | None, gain_range: tuple[float, float], length: str,
            missing: str, jobs: int, force: bool, overwrite: bool, as_json: bool) -> None:
    """Write a new store with z <- sum_i g_i z_i over paired tracks of STORES."""
    if len(stores) < 2:
        raise click.UsageError("mix needs at least two input stores")
    with frame_progress("mix") as progress:
        summary = mix_stores(
            list(stores), out, list(gains) or None, pair=pair, seed=seed, count=count,
            gain_range=gain_range, length=length, missing=missing, jobs=jobs, force=force,
            overwrite=overwrite, progress=progress,
        )
    echo_result(summary, as_json)
