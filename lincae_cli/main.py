"""Root click group of the ``lincae`` command: global options, explicit command registration, and
the mapping of library errors to one-line messages (exit codes: ``lincae_cli.options``)."""

from __future__ import annotations

import errno
import logging
import os
import sys

import click

from lincae_cli.commands.card import card_cmd
from lincae_cli.commands.concat import concat_cmd
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
from lincae_cli.commands.models import models_cmd
from lincae_cli.commands.select import select_cmd
from lincae_cli.commands.stats import stats_cmd
from lincae_cli.commands.stereo import midside_cmd, pan_cmd
from lincae_cli.commands.train import train_cmd
from lincae_cli.options import EXIT_PARTIAL
from lincae_core import LincaeError

__all__ = ["EXIT_PARTIAL", "cli"]


_ADVICE = {
    errno.ENOSPC: "free space (or write elsewhere) and re-run: finished work is kept and an encode "
    "resumes where it stopped",
    errno.EDQUOT: "free space in your quota and re-run: finished work is kept and an encode resumes "
    "where it stopped",
    errno.EACCES: "check the permissions of that path, or write the output elsewhere",
    errno.EPERM: "check the permissions of that path, or write the output elsewhere",
    errno.EROFS: "the file system is read-only: write the output elsewhere",
    errno.ENOENT: "it vanished while lincae used it (deleted or unmounted?): check it and re-run",
}


def machine_error(exc: OSError) -> str:
    """One line for a failure of the machine (not of the input): the path, the cause, what to do."""
    path = exc.filename if exc.filename is not None else "(output)"
    cause = exc.strerror or type(exc).__name__
    advice = _ADVICE.get(exc.errno or -1, "fix the cause and re-run: finished work is kept")
    return f"{path}: {cause}; {advice}."


class LincaeGroup(click.Group):
    """Click group that turns library errors and machine failures into one-line messages.

    ``LincaeError`` (bad input, refused operation) and ``OSError`` (disk full, permissions, a
    vanished path) exit 1 with one line on stderr (a traceback with ``-v``); a closed stdout (``|
    head``) ends the command quietly with status 0, as Unix filters do.
    """

    def invoke(self, ctx: click.Context):  # noqa: D102
        try:
            return super().invoke(ctx)
        except BrokenPipeError:
            _quiet_stdout()
            ctx.exit(0)
        except (LincaeError, OSError) as exc:
            if ctx.obj is not None and ctx.obj.get("verbose"):
                raise
            msg = str(exc) if isinstance(exc, LincaeError) else machine_error(exc)
            raise click.ClickException(msg) from exc


def _quiet_stdout() -> None:
    """Point stdout at /dev/null so that the interpreter's final flush cannot fail again."""
    devnull = os.open(os.devnull, os.O_WRONLY)
    try:
        os.dup2(devnull, sys.stdout.fileno())
    except (OSError, ValueError):  # not a real file descriptor (a test runner's buffer)
        pass
    finally:
        os.close(devnull)


def _set_verbosity(ctx: click.Context, param: click.Parameter, value: bool) -> None:
    """``-v``/``-q`` given after the subcommand: the same effect as before it."""
    if not value:
        return
    obj = ctx.find_root().ensure_object(dict)
    obj[param.name] = True
    logging.getLogger().setLevel(logging.DEBUG if param.name == "verbose" else logging.ERROR)


def _with_verbosity(command: click.Command) -> click.Command:
    for name, flag, text in (
        ("verbose", "-v", "Debug logging and full tracebacks."),
        ("quiet", "-q", "No logs or warnings on stderr (results and errors only)."),
    ):
        command.params.append(
            click.Option(
                [flag, f"--{name}"],
                is_flag=True,
                expose_value=False,
                is_eager=True,
                callback=_set_verbosity,
                help=text,
            )
        )
    return command


@click.group(cls=LincaeGroup, context_settings={"help_option_names": ["-h", "--help"]})
@click.option("-v", "--verbose", is_flag=True, help="Debug logging and full tracebacks.")
@click.option("-q", "--quiet", is_flag=True, help="No logs or warnings on stderr (results and errors only).")
@click.version_option(package_name="lincae")
@click.pass_context
def cli(ctx: click.Context, verbose: bool, quiet: bool) -> None:
    """lincae: latent audio datasets with a linear consistency autoencoder (Lin-CAE).

    Results go to stdout (one path or record a line), logs and progress to stderr. Exit status:
    0 success, 1 error (one line; -v for a traceback), 2 usage error, 3 partial (some inputs
    failed or were left out; they are listed on stderr).
    """
    ctx.ensure_object(dict)
    ctx.obj["verbose"] = ctx.obj.get("verbose", False) or verbose
    ctx.obj["quiet"] = ctx.obj.get("quiet", False) or quiet
    logging.basicConfig(
        level=logging.DEBUG if verbose else logging.ERROR if quiet else logging.INFO,
        stream=sys.stderr,
        format="%(levelname)s %(name)s: %(message)s",
    )


for _command in (
    encode_cmd,
    ls_cmd,
    gain_cmd,
    mix_cmd,
    extract_cmd,
    concat_cmd,
    select_cmd,
    pan_cmd,
    midside_cmd,
    stats_cmd,
    export_cmd,
    info_cmd,
    demo_cmd,
    decode_cmd,
    import_weights_cmd,
    models_cmd,
    train_cmd,
    evaluate_cmd,
    card_cmd,
):
    cli.add_command(_with_verbosity(_command))
