"""Root click group of the ``lincae`` command: global options, explicit command registration, and
the mapping of library errors to one-line messages (exit codes: ``lincae_cli.options``)."""

from __future__ import annotations

import logging
import sys

import click

from lincae_cli.commands.card import card_cmd
from lincae_cli.commands.decode import decode_cmd
from lincae_cli.commands.demo import demo_cmd
from lincae_cli.commands.encode import encode_cmd
from lincae_cli.commands.evaluate import evaluate_cmd
from lincae_cli.commands.export import export_cmd
from lincae_cli.commands.extract import extract_cmd
from lincae_cli.commands.gain import gain_cmd
from lincae_cli.commands.import_weights import import_weights_cmd
from lincae_cli.commands.info import info_cmd
from lincae_cli.commands.ls import ls_cmd
from lincae_cli.commands.mix import mix_cmd
from lincae_cli.commands.select import select_cmd
from lincae_cli.commands.train import train_cmd
from lincae_cli.options import EXIT_PARTIAL
from lincae_core import LincaeError

__all__ = ["EXIT_PARTIAL", "cli"]


class LincaeGroup(click.Group):
    """Click group that turns LincaeError into a one-line ClickException."""

    def invoke(self, ctx: click.Context):  # noqa: D102
        try:
            return super().invoke(ctx)
        except LincaeError as exc:
            if ctx.obj is not None and ctx.obj.get("verbose"):
                raise
            raise click.ClickException(str(exc)) from exc


@click.group(cls=LincaeGroup, context_settings={"help_option_names": ["-h", "--help"]})
@click.option("-v", "--verbose", is_flag=True, help="Debug logging and full tracebacks.")
@click.version_option(package_name="lincae")
@click.pass_context
def cli(ctx: click.Context, verbose: bool) -> None:
    """lincae: latent audio datasets with a linear consistency autoencoder (Lin-CAE)."""
    ctx.ensure_object(dict)
    ctx.obj["verbose"] = verbose
    logging.basicConfig(
        level=logging.DEBUG if verbose else logging.INFO,
        stream=sys.stderr,
        format="%(levelname)s %(name)s: %(message)s",
    )


for _command in (encode_cmd, ls_cmd, gain_cmd, mix_cmd, extract_cmd, select_cmd, export_cmd, info_cmd,
                 demo_cmd, decode_cmd, import_weights_cmd, train_cmd, evaluate_cmd, card_cmd):
    cli.add_command(_command)
