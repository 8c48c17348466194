"""How outputs appear in object storage, where there is no rename and no lock (docs/store-format.md,
"Object storage"): the counterpart of :mod:`lincae_core.publish` for URLs.

- A store's root ``zarr.json`` is its commit marker. Until it holds ``format: lincae-latents``
  no lincae command takes the prefix for a store (``lincae-latents-incomplete`` says a command is
  writing it, or was killed while writing it; a re-run of that command replaces it).
- Small outputs (an encode's planned store) are built in a local temporary folder and uploaded
  with the root ``zarr.json`` last, by a conditional PUT (``If-None-Match: *``) unless replacing:
  of several shard processes planning at once exactly one commits, and the others open its store
  (everything else they uploaded is byte-identical: a plan is a function of its inputs).
- Large outputs (op results) are written in place (``direct``): the caller creates its store with
  ``commit=False`` and commits it last.
- A file (a decoded track, an export shard) is written locally and uploaded in one request.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import shutil
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

from lincae_core.errors import LincaeError, OutputExistsError
from lincae_core.location import RemotePath, storage_errors

__all__ = ["building_remote", "remote_state", "upload_skeleton", "upload_tree", "uploading"]

log = logging.getLogger(__name__)
_STORE_FORMAT, _INCOMPLETE = "lincae-latents", "lincae-latents-incomplete"  # store.layout's names


def remote_state(out: RemotePath) -> str:
    """What is at ``out``: ``"absent"`` (nothing), ``"complete"`` (a committed lincae store, or
    an object), ``"incomplete"`` (a store whose writer has not committed it) or ``"other"``
    (objects under the prefix but no lincae root)."""
    root = out / "zarr.json"
    with storage_errors(out, "check"):
        if root.is_file():
            try:
                fmt = json.loads(root.read_bytes()).get("attributes", {}).get("format")
            except (ValueError, AttributeError):
                return "other"
            return {"lincae-latents": "complete", _INCOMPLETE: "incomplete"}.get(str(fmt), "other")
        if out.is_file():
            return "complete"
        return "other" if out.exists() else "absent"


def upload_tree(local: Path, out: RemotePath, skip: tuple[str, ...] = ()) -> int:
    """Upload every file under ``local`` to the same relative keys under ``out`` (concurrent
    PUTs), except the relative paths in ``skip``; return the number of files uploaded."""
    files = sorted(p for p in local.rglob("*") if p.is_file() and p.relative_to(local).as_posix() not in skip)
    if files:
        with storage_errors(out, "upload"):
            out.fs.put([str(p) for p in files], [(out / p.relative_to(local).as_posix()).path for p in files])
    return len(files)


def upload_skeleton(local: Path, out: RemotePath) -> None:
    """Upload a store built locally (an op output's metadata, table and sources: not its
    latents) to ``out``: its root first, which must say the store is incomplete, then every other
    object in one concurrent batch."""
    root = json.loads((local / "zarr.json").read_bytes())
    if root.get("attributes", {}).get("format") != _INCOMPLETE:
        raise LincaeError(f"{out}: a skeleton must be uploaded uncommitted (a bug in lincae)")
    (out / "zarr.json").write_bytes((local / "zarr.json").read_bytes())
    upload_tree(local, out, skip=("zarr.json",))


@contextlib.contextmanager
def building_remote(out: RemotePath, *, replace: bool, exist_ok: bool, direct: bool) -> Iterator:
    """:func:`lincae_core.publish.building_dir` at a URL (see the module docstring)."""
    from lincae_core.publish import Building

    if direct:
        state = remote_state(out)
        if state == "complete" and not replace:
            raise OutputExistsError(out)
        if state == "other" and not replace:
            raise LincaeError(
                f"{out} holds objects that are not a lincae store; choose another output or remove them"
            )
        if state != "absent":
            log.info("removing %s (%s)", out, "--overwrite" if state == "complete" else f"{state} output")
            out.remove_tree()
        b = Building(out, out, direct=True)
        try:
            yield b
        except BaseException:
            with contextlib.suppress(Exception):  # best effort: a re-run cleans what is left
                out.remove_tree()
            raise
        b.published = True  # the caller's commit PUT is the last write (tests check it was made)
        return
    _sweep_stale_staging()
    staging = Path(tempfile.mkdtemp(prefix=f"lincae-stage-{_host()}-{os.getpid()}-"))
    tmp = staging / out.name
    b = Building(tmp, out)
    try:
        yield b
        b.published = _publish_staged(tmp, out, replace)
        if not b.published and not exist_ok:
            raise LincaeError(f"{out} appeared while it was being written; nothing replaced")
    finally:
        shutil.rmtree(staging, ignore_errors=True)


def _sweep_stale_staging() -> None:
    """Remove the staging folders of dead processes of this host (killed while planning)."""
    import re

    from lincae_core.publish import _alive

    pattern = re.compile(rf"lincae-stage-{re.escape(_host())}-(\d+)-.*")
    for p in Path(tempfile.gettempdir()).glob(f"lincae-stage-{_host()}-*"):
        m = pattern.fullmatch(p.name)
        if m and not _alive(int(m.group(1))):
            shutil.rmtree(p, ignore_errors=True)


def _host() -> str:
    from lincae_core.publish import _host as host

    return host()


def _publish_staged(tmp: Path, out: RemotePath, replace: bool) -> bool:
    state = remote_state(out)
    if state == "complete" and not replace:
        return False
    if state == "incomplete" or (replace and state != "absent"):
        out.remove_tree()
    root, marker = tmp / "zarr.json", "tracks/key/zarr.json"
    if (tmp / marker).is_file():  # first: whatever a kill leaves, a re-run sees a plan in progress
        (out / marker).write_bytes((tmp / marker).read_bytes())
    upload_tree(tmp, out, skip=("zarr.json", marker))
    if not root.is_file():
        return True
    if replace:
        (out / "zarr.json").write_bytes(root.read_bytes())
        return True
    return (out / "zarr.json").create_bytes(root.read_bytes())


def wait_committed(out: RemotePath, timeout_s: float = 60.0) -> bool:
    """Wait until ``out`` is a committed store (another process is publishing it); False on
    timeout."""
    end = time.monotonic() + timeout_s
    while time.monotonic() < end:
        if remote_state(out) == "complete":
            return True
        time.sleep(0.5)
    return False


@contextlib.contextmanager
def uploading(out: RemotePath, suffix: str = "") -> Iterator[Path]:
    """Yield a local temporary file to write; upload it onto ``out`` on success (one request:
    a PUT, or a multipart upload that appears whole when completed); remove it either way."""
    fd, name = tempfile.mkstemp(prefix="lincae-upload-", suffix=suffix)
    os.close(fd)
    tmp = Path(name)
    try:
        yield tmp
        with storage_errors(out, "upload"):
            out.fs.put_file(str(tmp), out.path)
    finally:
        tmp.unlink(missing_ok=True)
