"""Where an operation writes, and which input tracks it leaves out (the output policy).

Without an output path, an operation writes beside its first input, named after the inputs and
the operation (:func:`default_output`); an output is never one of the inputs and never replaces
an existing path without ``overwrite`` (:func:`check_output`). Only done tracks are used: the
planned and failed tracks of the inputs are counted (:func:`unfinished`) and reported as
``left_out``, or refused with ``require_complete``. The output is built under a temporary name
and renamed into place when complete (:func:`lincae_core.publish.building_dir`); in object
storage it is written in place and committed last (:mod:`lincae_core.remote_publish`).
"""

from __future__ import annotations

import os
from collections.abc import Sequence

from lincae_core.errors import LincaeError
from lincae_core.location import Location, RemotePath, as_location, resolved
from lincae_core.publish import check_free, free_name
from lincae_core.store import LatentStore
from lincae_core.store.layout import STATUS_FAILED, STATUS_PLANNED

__all__ = ["check_complete", "check_output", "default_output", "unfinished"]


def default_output(inputs: Sequence[LatentStore], op: str) -> Location:
    """The output path of an operation run without one: beside the first input, named after the
    inputs and the operation (``a+b.mix.zarr``); a taken name gets a suffix (``a+b.mix-2.zarr``).
    """
    stems = [as_location(s.path).name.removesuffix(".zarr") for s in inputs]
    name = "+".join(stems[:3]) + (f"+{len(stems) - 3}more" if len(stems) > 3 else "")
    return free_name(as_location(inputs[0].path).parent, f"{name}.{op}", ".zarr")


def unfinished(inputs: Sequence[LatentStore]) -> dict[str, dict[str, int]]:
    """Per input path, how many tracks are still planned or failed (left out of an operation)."""
    out = {}
    for s in inputs:
        st = s.table()["status"]
        planned, failed = int((st == STATUS_PLANNED).sum()), int((st == STATUS_FAILED).sum())
        if planned or failed:
            out[str(s.path)] = {"planned": planned, "failed": failed}
    return out


def check_complete(inputs: Sequence[LatentStore], require_complete: bool) -> dict[str, dict[str, int]]:
    """:func:`unfinished` of the inputs; with ``require_complete``, an unfinished input is refused."""
    left = unfinished(inputs)
    if left and require_complete:
        path, n = next(iter(left.items()))
        raise LincaeError(
            f"{path} has {n['planned']} planned and {n['failed']} failed tracks "
            "(require_complete); finish its encode first, or drop --require-complete"
        )
    return left


def check_output(
    out: str | os.PathLike | RemotePath, inputs: Sequence[LatentStore], overwrite: bool
) -> Location:
    """Refuse an output that exists (unless ``overwrite``) or that is one of the inputs."""
    out = as_location(out)
    for s in inputs:
        if resolved(out) == resolved(s.path):
            raise LincaeError(f"{out} is also an input; write the result to another path")
    return check_free(out, overwrite)
