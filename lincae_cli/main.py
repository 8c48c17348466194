"""Root click group of the ``lincae`` command.

Exit codes (documented in the README):
    0  success
    1  error (bad input, a refused operation); one line on stderr, no traceback unless --verbose
    2  usage error (click)
    3  partial failure: some inputs failed and are recorded (e.g. the encode ledger)
"""

from __future__ import annotations

import importlib
import logging
import sys

import click

from lincae_core.errors import LincaeError

EXIT_PARTIAL = 3

# (module under lincae_cli.commands, attribute) — explicit, no dynamic discovery.
_COMMANDS: tuple[tuple[str, str], ...] = (
    # one line per command: (module, function)
    ("encode", "encode_cmd"),
    ("ls", "ls_cmd"),
    ("gain", "gain_cmd"),
    ("mix", "mix_cmd"),
    ("extract", "extract_cmd"),
    ("select", "select_cmd"),
    ("export", "export_cmd"),
    ("info", "info_cmd"),
    ("demo", "demo_cmd"),
    ("decode", "decode_cmd"),
    ("import_weights", "import_weights_cmd"),
    ("train", "train_cmd"),
    ("evaluate", "evaluate_cmd"),
)


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


def _register() -> None:
    for module, attr in _COMMANDS:
        mod = importlib.import_module(f"lincae_cli.commands.{module}")
        cli.add_command(getattr(mod, attr))


_register()
