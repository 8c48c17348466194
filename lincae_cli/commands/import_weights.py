"""``lincae import-weights SRC -o CKPT_DIR``: convert released Lin-CAE / Music2Latent weights."""

from __future__ import annotations

import click

from lincae_cli.options import out_option, overwrite_option, pick_out
from lincae_core import ModelConfig, get_preset, load_json_config


@click.command("import-weights")
@click.argument("src", type=click.Path(dir_okay=False))
@out_option("Checkpoint directory to write.", required=True, file_okay=False, old="--output")
@click.option("--preset", default="paper", show_default=True, help="Model preset of the weights.")
@click.option(
    "--config",
    "config_path",
    type=click.Path(dir_okay=False),
    default=None,
    help="JSON model config of the weights (overrides --preset).",
)
@overwrite_option
def import_weights_cmd(
    src: str, out: str | None, out_alias: str | None, preset: str, config_path: str | None, overwrite: bool
) -> None:
    """Convert a Lin-CAE release (.pth) or Music2Latent (.pt) weights file into a checkpoint.

    The file is loaded with torch.load(weights_only=True); every key must match the model
    exactly (a missing or unknown key is an error naming it).
    """
    from lincae_core import import_weights  # torch only when the command runs

    out_dir = pick_out(("-o/--out", out), ("--output", out_alias), required="give -o/--out DIR")
    assert out_dir is not None, "pick_out raised"
    cfg = ModelConfig.from_dict(load_json_config(config_path)) if config_path else get_preset(preset)
    mid = import_weights(src, out_dir, cfg, overwrite=overwrite)
    click.echo(f"{out_dir}\t{mid}")
