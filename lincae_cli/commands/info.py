"""``lincae info [PATH]``: describe a checkpoint (a released model by name too) or a latent store."""

from __future__ import annotations

import json

import click

from lincae_cli.options import json_option
from lincae_core import describe_path


def _echo_human(info: dict, prefix: str = "") -> None:
    for key, value in info.items():
        if isinstance(value, dict) and key not in ("config",):
            click.echo(f"{prefix}{key}:")
            _echo_human(value, prefix + "  ")
        elif key == "failures" and isinstance(value, list):
            click.echo(f"{prefix}failures: {len(value)}")
            for rec in value:
                click.echo(f"{prefix}  {rec['key']}: {rec['reason']}")
        elif isinstance(value, list) and value and isinstance(value[0], dict):
            click.echo(f"{prefix}{key}: {len(value)} entr{'y' if len(value) == 1 else 'ies'}")
        else:
            click.echo(f"{prefix}{key}: {json.dumps(value) if isinstance(value, (dict, list)) else value}")


@click.command("info")
@click.argument("path", required=False, type=click.Path())
@json_option
def info_cmd(path: str | None, as_json: bool) -> None:
    """Describe a checkpoint directory, a latent store or a released model (lin-cae, lin-cae-2, m2l,
    hf:REPO[@REVISION]/PATH: fetched and cached on first use) (default: the embedded model)."""
    info = describe_path(path)
    if as_json:
        click.echo(json.dumps(info, default=str))
    else:
        _echo_human(info)
