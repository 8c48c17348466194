"""``lincae concat STORE --keys-from LIST [-o OUT] [--crossfade S]``: join tracks end to end on the
latent frame grid, with a linear crossfade in the latent domain (homogeneity and additivity)."""

from __future__ import annotations

from dataclasses import replace
from typing import IO

import click

from lincae_cli.commands._ops_common import echo_result, echo_warnings
from lincae_cli.options import op_options, store_out_option
from lincae_cli.progress import frame_progress
from lincae_core.ops import OpOptions, operation_warnings


@click.command("concat")
@click.argument("store", type=click.Path())
@click.option(
    "--keys-from",
    "keys_from",
    type=click.File("r", encoding="utf-8"),
    required=True,
    help="Concat list ('-' reads stdin): one input key a line (one output track "
    "'concat'), or 'OUT_KEY<TAB>IN_KEY<TAB>IN_KEY...' a line (one output track each); "
    "blank lines and # comment lines are skipped.",
)
@store_out_option
@click.option(
    "--crossfade",
    type=click.FloatRange(min=0),
    default=0.0,
    show_default=True,
    help="Crossfade between consecutive tracks, in seconds (rounded to whole latent "
    "frames; 0 butts them on the frame grid).",
)
@op_options()
def concat_cmd(
    store: str,
    keys_from: IO[str],
    out: str | None,
    crossfade: float,
    options: OpOptions,
    as_json: bool,
) -> None:
    """Write a new store whose tracks are tracks of STORE joined end to end.

    Consecutive tracks overlap by the crossfade, the first ramping down and the next up
    (linear ramps summing to 1 at every latent frame), which decodes to the audio crossfade
    because the model is homogeneous and additive (docs/editing.md). Each output track's exact
    length is recorded: inputs but the last count in whole latent frames, minus the overlaps.
    """
    from lincae_core.ops import concat_store, parse_concat_list  # torch only when the command runs

    entries = parse_concat_list(keys_from.read(), keys_from.name)
    warnings = operation_warnings([store], "concat", [0.5]) if crossfade > 0 else []
    with frame_progress("concat") as progress:
        result = concat_store(
            store, out, entries, crossfade_s=crossfade, options=replace(options, progress=progress)
        )
    echo_warnings(warnings)
    echo_result(result, as_json)
