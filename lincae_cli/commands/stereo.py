"""``lincae pan STORE --pan P | --channel-gains GL GR`` and ``lincae midside STORE --to ms|lr``:
channel edits of stereo stores, by linearity."""

from __future__ import annotations

from dataclasses import replace

import click

from lincae_cli.commands._ops_common import echo_result
from lincae_cli.options import op_options, store_out_option
from lincae_cli.progress import frame_progress
from lincae_core.ops import OpOptions


@click.command("pan")
@click.argument("store", type=click.Path())
@store_out_option
@click.option(
    "--pan",
    "pan",
    type=click.FloatRange(-1.0, 1.0),
    default=None,
    help="Constant-power pan: -1 left, 0 centre (both channels -3 dB), +1 right.",
)
@click.option(
    "--channel-gains",
    type=(float, float),
    default=None,
    help="Amplitude factors GL GR of the left and right channels instead of --pan.",
)
@op_options()
def pan_cmd(
    store: str,
    out: str | None,
    pan: float | None,
    channel_gains: tuple[float, float] | None,
    options: OpOptions,
    as_json: bool,
) -> None:
    """Write a new stereo store with z_L <- gL z_L, z_R <- gR z_R (gL = cos, gR = sin of
    (pan + 1) pi / 4). Mono stores are refused."""
    from lincae_core.ops import pan_store  # torch only when the command runs

    if (pan is None) == (channel_gains is None):
        raise click.UsageError("give exactly one of --pan or --channel-gains")
    with frame_progress("pan") as progress:
        result = pan_store(
            store, out, pan=pan, channel_gains=channel_gains, options=replace(options, progress=progress)
        )
    echo_result(result, as_json)


@click.command("midside")
@click.argument("store", type=click.Path())
@store_out_option
@click.option(
    "--to",
    "to",
    type=click.Choice(["ms", "lr"]),
    required=True,
    help="ms: M = (L + R) / 2, S = (L - R) / 2; lr: L = M + S, R = M - S (exact inverse).",
)
@op_options()
def midside_cmd(
    store: str,
    out: str | None,
    to: str,
    options: OpOptions,
    as_json: bool,
) -> None:
    """Write a new stereo store converted between left/right and mid/side latents.

    A mid/side store is float32 and decodes to M and S as its two channels; --to lr restores
    the left/right latents exactly. Mono stores are refused.
    """
    from lincae_core.ops import midside_store  # torch only when the command runs

    with frame_progress("midside") as progress:
        result = midside_store(store, out, to, options=replace(options, progress=progress))
    echo_result(result, as_json)
