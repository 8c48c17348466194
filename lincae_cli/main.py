"""Root click group of the ``lincae`` command: global options, explicit command registration, and
the mapping of library errors to one-line messages (exit codes: ``lincae_cli.options``).

Commands are registered by name in :data:`COMMANDS` and imported only when run (or asked for
their options), so ``lincae --version``, ``--help`` and shell completion import neither torch nor
zarr: the short help shown by ``--help`` is kept in the registry (a test checks that it is each
command's own).
"""

from __future__ import annotations

import errno
import importlib
import logging
import os
import sys
from collections.abc import Iterator, Mapping
from typing import Any, NamedTuple

import click

from lincae_cli.options import EXIT_PARTIAL
from lincae_core.errors import ConfigError, LincaeError

__all__ = ["COMMANDS", "EXIT_PARTIAL", "cli"]


class _Entry(NamedTuple):
    module: str  # in lincae_cli.commands
    attr: str
    short_help: str  # what --help lists; equal to the command's own (tests/test_cli_startup.py)


#: Every command, in registration order: imported on first use.
COMMANDS: dict[str, _Entry] = {
    "encode": _Entry(
        "encode",
        "encode_cmd",
        "Encode the audio files under LIBRARY into the latent store OUT (resumable, shardable).",
    ),
    "ls": _Entry(
        "ls", "ls_cmd", "List the tracks of STORE: key, duration in seconds, status (one per line)."
    ),
    "gain": _Entry(
        "gain",
        "gain_cmd",
        "Write a new store with every latent of STORE scaled: z <- a z (per frame: a(t) z).",
    ),
    "mix": _Entry(
        "mix", "mix_cmd", "Write a new store with z <- sum_i g_i z_i over paired tracks of STORES."
    ),
    "extract": _Entry(
        "extract", "extract_cmd", "Write a new store with z <- z_MIX - sum z_MINUS (the paper's Fig."
    ),
    "concat": _Entry(
        "concat", "concat_cmd", "Write a new store whose tracks are tracks of STORE joined end to end."
    ),
    "select": _Entry(
        "select", "select_cmd", "Write a new store with a subset of STORE's tracks, cut in time."
    ),
    "pan": _Entry(
        "stereo",
        "pan_cmd",
        "Write a new stereo store with z_L <- gL z_L, z_R <- gR z_R (gL = cos, gR = sin of (pan + 1) pi / "
        "4).",
    ),
    "midside": _Entry(
        "stereo", "midside_cmd", "Write a new stereo store converted between left/right and mid/side latents."
    ),
    "verify": _Entry(
        "verify",
        "verify_cmd",
        "Check that every latent chunk of STORE's done tracks exists with its full size and, in a "
        "store encoded with --checksums, that its CRC32C matches (every such chunk is read).",
    ),
    "stats": _Entry(
        "stats",
        "stats_cmd",
        "Measure the mean and std of every latent dimension (per channel) of STORE's done tracks.",
    ),
    "export": _Entry(
        "export",
        "export_cmd",
        "Write windows of STORE's tracks as .npy [C*D, T] + .json WebDataset shards at PATTERN.",
    ),
    "info": _Entry(
        "info",
        "info_cmd",
        "Describe a checkpoint directory, a latent store or a released model (lin-cae, lin-cae-2, m2l, "
        "hf:REPO[@REVISION]/PATH: fetched and cached on first use) (default: the embedded model).",
    ),
    "demo": _Entry(
        "demo",
        "demo_cmd",
        "Build a stems library, encode it, extract/remix/re-gain on latents, decode, and score.",
    ),
    "decode": _Entry(
        "decode", "decode_cmd", "Decode tracks of STORE into OUTDIR/<key>.<format> (paths mirror the keys)."
    ),
    "import-weights": _Entry(
        "import_weights",
        "import_weights_cmd",
        "Convert a Lin-CAE release (.pth) or Music2Latent (.pt) weights file into a checkpoint.",
    ),
    "models": _Entry(
        "models",
        "models_cmd",
        "List the models -c takes: the embedded default, the shipped baseline, the released names and "
        "lincae's cached checkpoints, with sample rate, channels, parameters, whether each is usable "
        "offline and its measured card summary (--json: one record a line).",
    ),
    "train": _Entry(
        "train",
        "train_cmd",
        "Train a Lin-CAE (or the baseline/ablations) into RUN_DIR; CLI options override --config.",
    ),
    "eval": _Entry(
        "evaluate",
        "evaluate_cmd",
        "Evaluate checkpoints side by side with the paper's protocol and write a report.",
    ),
    "card": _Entry(
        "card",
        "card_cmd",
        "Measure CHECKPOINT ('default': the embedded model) and write the results into its model card.",
    ),
}


class _LazyCommands(Mapping[str, click.Command]):
    """``cli.commands``: the registered commands, each imported when first looked up."""

    def __init__(self) -> None:
        self._loaded: dict[str, click.Command] = {}

    def __getitem__(self, name: str) -> click.Command:
        if name not in self._loaded:
            entry = COMMANDS[name]
            module = importlib.import_module(f"lincae_cli.commands.{entry.module}")
            self._loaded[name] = _with_verbosity(getattr(module, entry.attr))
        return self._loaded[name]

    def __iter__(self) -> Iterator[str]:
        return iter(COMMANDS)

    def __len__(self) -> int:
        return len(COMMANDS)


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


def machine_error(exc: OSError, output: str | None = None) -> str:
    """One line for a failure of the machine (not of the input): the path, the cause, what to do
    (``output``: the command's output, for a failure that names no file)."""
    path = exc.filename if exc.filename is not None else output or "(output)"
    if str(path).startswith("/proc/self/fd/"):  # a pinned store's directory: name its path
        from lincae_core.store.group import shown_path

        path = shown_path(str(path))
    cause = exc.strerror or type(exc).__name__
    advice = _ADVICE.get(exc.errno or -1, "fix the cause and re-run: finished work is kept")
    return f"{path}: {cause}; {advice}."


class LincaeGroup(click.Group):
    """Click group that turns library errors and machine failures into one-line messages.

    ``LincaeError`` (bad input, refused operation) and ``OSError`` (disk full, permissions, a
    vanished path) exit 1 with one line on stderr (a traceback with ``-v``), ``ConfigError`` (a
    value out of range or a wrong combination of options) exits 2 as click's usage errors do; a
    closed stdout (``| head``) ends the command quietly with status 0, as Unix filters do.
    """

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.commands = _LazyCommands()  # type: ignore[assignment]

    def get_command(self, ctx: click.Context, cmd_name: str) -> click.Command | None:  # noqa: D102
        return self.commands[cmd_name] if cmd_name in COMMANDS else None

    def list_commands(self, ctx: click.Context) -> list[str]:  # noqa: D102
        return sorted(COMMANDS)

    def format_commands(self, ctx: click.Context, formatter: click.HelpFormatter) -> None:
        """The command list of ``--help`` from the registry (no command is imported)."""
        with formatter.section("Commands"):
            formatter.write_dl([(name, COMMANDS[name].short_help) for name in self.list_commands(ctx)])

    def shell_complete(self, ctx: click.Context, incomplete: str) -> list[Any]:
        """Complete command names from the registry (no command is imported), then the options."""
        from click.shell_completion import CompletionItem

        names = [n for n in self.list_commands(ctx) if n.startswith(incomplete)]
        return [CompletionItem(n, help=COMMANDS[n].short_help) for n in names] + click.Command.shell_complete(
            self, ctx, incomplete
        )

    def invoke(self, ctx: click.Context):  # noqa: D102
        try:
            return super().invoke(ctx)
        except BrokenPipeError:
            _quiet_stdout()
            ctx.exit(0)
        except (KeyboardInterrupt, click.Abort):
            click.echo(
                "interrupted: finished work is kept; run the same command again to resume "
                "(encode continues where it stopped)",
                err=True,
            )
            ctx.exit(130)
        except (LincaeError, OSError) as exc:
            settle_io()
            if ctx.obj is not None and ctx.obj.get("verbose"):
                raise
            output = (ctx.obj or {}).get("output")
            msg = str(exc) if isinstance(exc, LincaeError) else machine_error(exc, output)
            error = click.ClickException(msg)
            if isinstance(exc, ConfigError):  # a value given on the command line: a usage error
                error.exit_code = 2
            raise error from exc


def settle_io(timeout_s: float = 5.0) -> None:
    """Cancel the storage requests still in flight after a failure, and wait for them to end.

    zarr and fsspec run requests as tasks on their own event loops (in I/O threads); when one of
    a batch of concurrent chunk writes fails, the error is raised at once and the others are left
    running. At exit the interpreter would destroy them pending, printing "Task was destroyed but
    it is pending!" and a traceback each: cancelled here, they end quietly.
    """
    import asyncio
    import contextlib

    async def cancel_all() -> None:
        me = asyncio.current_task()
        tasks = [t for t in asyncio.all_tasks() if t is not me]
        for t in tasks:
            t.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)

    loops = []
    for name in ("zarr.core.sync", "fsspec.asyn"):
        mod = sys.modules.get(name)
        holder = getattr(mod, "loop", None) if mod is not None else None
        if isinstance(holder, list) and holder and holder[0] is not None:
            loops.append(holder[0])
    for loop in loops:
        if loop.is_running() and not loop.is_closed():
            with contextlib.suppress(Exception):  # best effort: the error is what the user must see
                asyncio.run_coroutine_threadsafe(cancel_all(), loop).result(timeout_s)


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


def _set_storage_options(ctx: click.Context, param: click.Parameter, value: str | None) -> None:
    """``--storage-options JSON``: fsspec options for URLs, in ``LINCAE_STORAGE_OPTIONS`` so that
    worker processes started later inherit them (lincae_core.location reads it)."""
    if value is None:
        return
    import json

    try:
        ok = isinstance(json.loads(value), dict)
    except ValueError:
        ok = False
    if not ok:
        raise click.BadParameter(f"expected a JSON object, got {value[:60]!r}", ctx, param)
    os.environ["LINCAE_STORAGE_OPTIONS"] = value


def _with_verbosity(command: click.Command) -> click.Command:
    command.params.append(
        click.Option(
            ["--storage-options"],
            metavar="JSON",
            expose_value=False,
            is_eager=True,
            callback=_set_storage_options,
            help="fsspec options for s3:// and other URLs, a JSON object (default: "
            "$LINCAE_STORAGE_OPTIONS; endpoint and keys come from the AWS_* variables).",
        )
    )
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
    if not ctx.obj["verbose"]:  # the object-storage clients log every endpoint lookup at INFO
        for name in ("botocore", "aiobotocore", "s3fs", "fsspec", "urllib3"):
            logging.getLogger(name).setLevel(logging.WARNING)
        # asyncio logs the aborted siblings of a failed storage request ("Task exception was
        # never retrieved"); lincae reports the failure itself, in one line (-v shows them)
        logging.getLogger("asyncio").setLevel(logging.CRITICAL)
