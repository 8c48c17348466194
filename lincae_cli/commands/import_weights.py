"""``lincae import-weights SRC -o CKPT_DIR``: convert released Lin-CAE / Music2Latent weights."""

from __future__ import annotations

import click

from lincae_core.checkpoint import import_weights
from lincae_core.config import ModelConfig, get_preset, load_json_config


@click.command("import-weights")
@click.argument("src", type=click.Path(dir_okay=False))
@click.option("-o", "--output", "out_dir", required=True, type=click.Path(file_okay=False),
              help="Checkpoint directory to write.")
@click.option("--preset", default="paper", show_default=True, help="Model preset of the weights.")
@click.option("--config", "config_path", type=click.Path(dir_okay=False), default=None,
              help="JSON model config of the weights (overrides --preset).")
def import_weights_cmd(src: str, out_dir: str, preset: str, config_path: str | None) -> None:
    """Convert a Lin-CAE release (.pth) or Music2Latent (.pt) weights file into a checkpoint.

    The file is loaded with torch.load(weights_only=True); every key must match the model
    exactly (a missing or unknown key is an error naming it).
    """
    cfg = ModelConfig.from_dict(load_json_config(config_path)) if config_path else get_preset(preset)
    mid = import_weights(src, out_dir, cfg)
    click.echo(f"{out_dir}\t{mid}")
