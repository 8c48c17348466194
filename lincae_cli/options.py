"""Shared click options, parameter types and exit codes: one spelling per option on every command.

The latent operations share one decorator, :func:`op_options` (``--require-complete``,
``-j/--jobs``, ``--scheduler``, ``--overwrite``, ``--json`` and, where the operation has forms,
``--origin``), which hands the command one :class:`~lincae_core.ops.options.OpOptions`.

Exit codes (documented in the README):
    0  success
    1  error (bad input, a refused operation); one line on stderr, no traceback unless --verbose
    2  usage error (click)
    3  partial failure: some inputs failed and are recorded (e.g. the encode ledger)
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from typing import Any, TypeVar

import click

from lincae_core.ops.options import OpOptions

EXIT_PARTIAL = 3

F = TypeVar("F", bound=Callable[..., Any])

json_option = click.option("--json", "as_json", is_flag=True, help="Print machine-readable JSON on stdout.")
overwrite_option = click.option(
    "--overwrite", is_flag=True, help="Replace an existing output instead of refusing."
)
force_option = click.option(
    "--force", is_flag=True, help="Combine stores even if their models/geometries differ."
)
jobs_option = click.option(
    "-j",
    "--jobs",
    type=int,
    default=1,
    show_default=True,
    help="Parallel workers (joblib); -1 uses every core.",
)
scheduler_option = click.option(
    "--scheduler",
    default=None,
    envvar="LINCAE_SCHEDULER",
    help="Run on a Dask cluster: scheduler address (tcp://host:8786) or scheduler file (.json); "
    "replaces --jobs; the output is byte-identical. Env: LINCAE_SCHEDULER.",
)
checkpoint_option = click.option(
    "-c",
    "--checkpoint",
    type=click.Path(),
    default=None,
    envvar="LINCAE_CHECKPOINT",
    help="Checkpoint directory, 'default' (the model embedded in the package; also when omitted), or a "
    "released model: lin-cae, lin-cae-2, m2l or hf:REPO[@REVISION]/PATH (downloaded, converted and cached "
    "on first use, offline afterwards; see `lincae models`). Env: LINCAE_CHECKPOINT.",
)
device_option = click.option(
    "--device",
    default="auto",
    show_default=True,
    envvar="LINCAE_DEVICE",
    help="Where the model runs: auto (CUDA when available), cpu or cuda[:i]. Env: LINCAE_DEVICE.",
)

checksums_option = click.option(
    "--checksums/--no-checksums",
    default=None,
    help="Store a CRC32C after every latent chunk, checked on every read and by `lincae verify`, so "
    "a bit flip is found and named [default: off for a new store; a store being resumed or updated "
    "keeps its own; op outputs keep their input's]. docs/store-format.md measures the cost.",
)


origin_option = click.option(
    "--origin",
    type=click.Choice(["linear", "affine"]),
    default=None,
    help="linear: the plain sum of gained latents; affine: plus (1 - sum of gains)·Enc(0), exact for "
    "an encoder that maps silence to Enc(0) [default: the form the store's model measured closer "
    "to the audio operation, docs/linearity.md].",
)
require_complete_option = click.option(
    "--require-complete",
    is_flag=True,
    help="Refuse inputs with planned or failed tracks (default: leave them out, exit 3).",
)
missing_option = click.option(
    "--missing",
    type=click.Choice(["error", "skip"]),
    default="error",
    show_default=True,
    help="A key missing from some input: refuse, or drop it.",
)
keys_from_option = click.option(
    "--keys-from",
    type=click.File("r", encoding="utf-8"),
    default=None,
    help="File with one track key per line ('-' reads stdin; blank lines and # comment lines are skipped).",
)


out_dtype_option = click.option(
    "--dtype",
    "out_dtype",
    type=click.Choice(["float16", "float32"]),
    default=None,
    help="Precision of the output store [default: the first input's]; float32 holds sums and "
    "gains that overflow float16 (|z| > 65504).",
)


def op_options(origin: bool = False) -> Callable[[F], F]:
    """The options every latent operation shares, handed to the command as ``options`` (an
    :class:`~lincae_core.ops.options.OpOptions`, ``progress`` left to the command) beside
    ``as_json``: ``--require-complete``, ``-j/--jobs``, ``--scheduler``, ``--overwrite``,
    ``--dtype``, ``--json`` and, with ``origin``, ``--origin``."""

    def deco(f: F) -> F:
        @functools.wraps(f)
        def command(
            *args: Any,
            jobs: int,
            scheduler: str | None,
            overwrite: bool,
            require_complete: bool,
            out_dtype: str | None,
            **kwargs: Any,
        ) -> Any:
            options = OpOptions(
                jobs=jobs,
                scheduler=scheduler,
                overwrite=overwrite,
                require_complete=require_complete,
                origin=kwargs.pop("origin", None),
                dtype=out_dtype,
            )
            return f(*args, options=options, **kwargs)

        wrapped: Any = command
        for option in (
            json_option,
            overwrite_option,
            scheduler_option,
            jobs_option,
            require_complete_option,
            out_dtype_option,
        ):
            wrapped = option(wrapped)
        if origin:
            wrapped = origin_option(wrapped)
        return wrapped

    return deco


def out_option(
    help_text: str, required: bool = False, file_okay: bool = True, old: str | None = None
) -> Callable[[F], F]:
    """``-o/--out PATH``: the output of a command (``old``: a former spelling kept as a hidden alias).

    The value lands in the ``out`` parameter; a hidden alias lands in ``out_alias`` and is merged by
    :func:`pick_out`.
    """

    def deco(f: F) -> F:
        f = click.option(
            "-o",
            "--out",
            "out",
            required=required and old is None,
            type=click.Path(file_okay=file_okay),
            help=help_text,
            callback=_remember,
        )(f)
        if old is not None:
            f = click.option(old, "out_alias", hidden=True, type=click.Path(file_okay=file_okay))(f)
        return f

    return deco


store_out_option = out_option(
    "Output store (a new directory; default: beside the first input, named after the inputs and "
    "the operation, e.g. a+b.mix.zarr, never replacing one)."
)


def pick_out(*candidates: tuple[str, str | None], required: str | None = None) -> str | None:
    """Return the one output path given among ``(spelling, value)`` candidates.

    Raises:
        click.UsageError: Two spellings were given, or none when ``required`` names what is missing.
    """
    given = [(name, v) for name, v in candidates if v is not None]
    if len(given) > 1:
        raise click.UsageError(f"Give the output once: {' and '.join(n for n, _ in given)} both set it.")
    if not given:
        if required:
            raise click.UsageError(f"Missing the output: {required}.")
        return None
    remember_output(given[0][1])
    return given[0][1]


def remember_output(path: str | None) -> None:
    """Record the command's output, which a machine failure that names no file is reported
    against (``lincae_cli.main.machine_error``)."""
    ctx = click.get_current_context(silent=True)
    if ctx is not None and path is not None:
        ctx.find_root().ensure_object(dict)["output"] = path


def _remember(ctx: click.Context, param: click.Parameter, value: Any) -> Any:
    remember_output(value)
    return value


class BatchSizeType(click.ParamType):
    """A positive integer, or ``auto`` (chosen per device by the library)."""

    name = "N|auto"

    def convert(self, value: Any, param: click.Parameter | None, ctx: click.Context | None) -> int | str:
        """Parse ``auto`` or a positive integer."""
        if value == "auto" or (isinstance(value, int) and value >= 1):
            return value
        try:
            n = int(str(value))
        except ValueError:
            n = 0
        if n < 1:
            self.fail(f"Expected a positive integer or auto. Got {value!r} instead.", param, ctx)
        return n


class ShardType(click.ParamType):
    """``i/N``: shard i of N (0-based), or ``auto`` (from Slurm array or torchrun variables)."""

    name = "i/N|auto"

    def convert(
        self, value: Any, param: click.Parameter | None, ctx: click.Context | None
    ) -> tuple[int, int]:
        """Parse ``i/N`` into ``(i, N)``."""
        if isinstance(value, tuple):
            return value
        if value == "auto":
            from lincae_core import shard_from_env

            return shard_from_env()
        try:
            i, n = (int(v) for v in str(value).split("/"))
        except ValueError:
            self.fail(f"Expected i/N, e.g. 0/4. Got {value!r} instead.", param, ctx)
        if not 0 <= i < n:
            self.fail(f"Expected 0 <= i < N. Got {value!r} instead.", param, ctx)
        return i, n
