"""Where a store, an audio file or an output lives: a local path or a URL (``s3://``, ``gs://``,
``az://``, ``memory://``, any fsspec protocol), behind the one subset of :class:`pathlib.Path`
that lincae uses.

:func:`as_location` is the one entry: a local path (or a ``file://`` URL) becomes a
:class:`pathlib.Path`, anything else with a ``scheme://`` a :class:`RemotePath`. A RemotePath has
no ``__fspath__``: handing one to ``open()`` or ``os`` is a ``TypeError``, not a local folder
named ``s3:`` (what lincae did before it knew URLs).

The layer is fsspec (``s3fs`` for ``s3://``; docs/store-format.md, "Object storage", says why it
was chosen over obstore). Endpoint and credentials come from the standard AWS variables
(``AWS_ENDPOINT_URL``, ``AWS_ACCESS_KEY_ID``, ``AWS_SECRET_ACCESS_KEY``, ``AWS_REGION``), the
rest from ``LINCAE_STORAGE_OPTIONS`` (a JSON object of fsspec storage options, which the CLI's
``--storage-options`` sets, so that worker processes inherit it). Every failure of the object
store is turned into one line naming the URL and what to do (:func:`storage_errors`).
"""

from __future__ import annotations

import contextlib
import json
import os
import posixpath
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from lincae_core.errors import LincaeError

__all__ = [
    "STORAGE_OPTIONS_ENV",
    "Location",
    "RemotePath",
    "StorageError",
    "absolute",
    "as_location",
    "filesystem",
    "is_remote",
    "is_url",
    "resolved",
    "storage_errors",
    "storage_options",
]

STORAGE_OPTIONS_ENV = "LINCAE_STORAGE_OPTIONS"
_SCHEME = re.compile(r"^([a-zA-Z][a-zA-Z0-9+.-]*)://")
# Retries of transient faults (connection reset, timeouts, 5xx, throttling) with exponential
# backoff: botocore's "standard" mode, 8 attempts (about 20 s of backoff at most).
# max_concurrency 1: a whole-object read is one GET (s3fs would first HEAD every object to size a
# concurrent download, doubling the requests of chunk reads; chunks are a few MiB).
_S3_DEFAULTS: dict[str, Any] = {
    "config_kwargs": {"retries": {"max_attempts": 8, "mode": "standard"}},
    "max_concurrency": 1,
}


class StorageError(LincaeError, OSError):
    """Object storage refused or failed a request (missing bucket or key, credentials, network)."""


def is_url(text: object) -> bool:
    """True for ``scheme://...`` strings (``file://`` included)."""
    return isinstance(text, str) and _SCHEME.match(text) is not None


def storage_options(protocol: str) -> dict[str, Any]:
    """The fsspec storage options of ``protocol``: lincae's defaults (retries for ``s3``), then
    ``LINCAE_STORAGE_OPTIONS`` (a JSON object) over them.

    Raises:
        LincaeError: ``LINCAE_STORAGE_OPTIONS`` is not a JSON object.
    """
    opts: dict[str, Any] = json.loads(json.dumps(_S3_DEFAULTS)) if protocol in ("s3", "s3a") else {}
    raw = os.environ.get(STORAGE_OPTIONS_ENV, "").strip()
    if raw:
        try:
            extra = json.loads(raw)
        except ValueError as exc:
            raise LincaeError(
                f"--storage-options / {STORAGE_OPTIONS_ENV}: expected a JSON object, got {raw[:60]!r} ({exc})"
            ) from None
        if not isinstance(extra, dict):
            raise LincaeError(
                f"--storage-options / {STORAGE_OPTIONS_ENV}: expected a JSON object, got {raw[:60]!r}"
            )
        for k, v in extra.items():
            if isinstance(v, dict) and isinstance(opts.get(k), dict):
                opts[k] = {**opts[k], **v}
            else:
                opts[k] = v
    return opts


def filesystem(protocol: str) -> Any:
    """The fsspec file system of ``protocol`` with :func:`storage_options` (cached by fsspec)."""
    try:
        import fsspec
    except ImportError:  # pragma: no cover - fsspec comes with dask and zarr's extras
        raise LincaeError("URLs need fsspec: pip install 'lincae[s3]'") from None
    try:
        return fsspec.filesystem(protocol, **storage_options(protocol))
    except ImportError as exc:
        raise LincaeError(
            f"{protocol}:// URLs need a package that is not installed ({exc}); for s3:// run "
            "pip install 'lincae[s3]'"
        ) from None
    except ValueError as exc:
        raise LincaeError(f"{protocol}:// is not a storage protocol lincae can use ({exc})") from None


@contextlib.contextmanager
def storage_errors(url: object, doing: str = "access") -> Iterator[None]:
    """Turn any failure of the storage layer inside the block into one :class:`StorageError` line
    naming ``url`` and what to do (lincae's own errors pass through; so does everything for a
    local path, whose OSErrors already name it)."""
    if not is_remote(url):
        yield
        return
    try:
        yield
    except LincaeError:
        raise
    except FileNotFoundError as exc:
        if "bucket" in str(exc).lower():
            raise StorageError(
                f"{url}: the bucket does not exist (create it, or check the URL and AWS_ENDPOINT_URL)"
            ) from exc
        raise StorageError(f"{url} does not exist (check the URL)") from exc
    except PermissionError as exc:
        raise StorageError(
            f"{url}: access denied ({_first_line(exc)}); check AWS_ACCESS_KEY_ID, "
            "AWS_SECRET_ACCESS_KEY and the bucket's policy"
        ) from exc
    except Exception as exc:
        raise StorageError(_explain(url, doing, exc)) from exc


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip().splitlines()
    return text[0][:200] if text else type(exc).__name__


def _explain(url: object, doing: str, exc: BaseException) -> str:
    name, text = type(exc).__name__, _first_line(exc)
    low = f"{name} {text}".lower()
    endpoint = os.environ.get("AWS_ENDPOINT_URL", "")
    if any(s in low for s in ("connect", "endpoint", "name or service", "timeout", "timed out")):
        where = f" at {endpoint}" if endpoint else ""
        return (
            f"{url}: cannot reach the object store{where} to {doing} ({name}: {text}); check "
            "AWS_ENDPOINT_URL and the network, then run the command again"
        )
    if any(s in low for s in ("signature", "accessdenied", "invalidaccesskeyid", "credentials", "forbidden")):
        return (
            f"{url}: the object store refused the credentials ({text}); check AWS_ACCESS_KEY_ID "
            "and AWS_SECRET_ACCESS_KEY"
        )
    return f"{url}: could not {doing} ({name}: {text}); run the command again"


class RemotePath:
    """A file or folder at a URL: the subset of :class:`pathlib.Path` lincae uses, over fsspec.

    Immutable and picklable (the file system is looked up again after unpickling, from this
    process's environment, so Dask workers open the URL themselves).
    """

    __slots__ = ("_path", "protocol")

    def __init__(self, url: str) -> None:
        """Parse ``scheme://path``; trailing slashes are dropped."""
        m = _SCHEME.match(url)
        if m is None:
            raise ValueError(f"not a URL: {url!r}")
        self.protocol = m.group(1).lower()
        rest = url[m.end() :].rstrip("/")
        self._path = posixpath.normpath(rest) if rest else ""
        if self._path == ".":
            self._path = ""

    # ------------------------------------------------------------------------ naming
    def __str__(self) -> str:
        return f"{self.protocol}://{self._path}"

    def __repr__(self) -> str:
        return f"RemotePath({str(self)!r})"

    def __eq__(self, other: object) -> bool:
        return isinstance(other, RemotePath) and str(self) == str(other)

    def __hash__(self) -> int:
        return hash(str(self))

    def __reduce__(self) -> tuple[Any, ...]:
        return (RemotePath, (str(self),))

    def __truediv__(self, part: str | os.PathLike) -> RemotePath:
        return RemotePath(f"{self}/{os.fspath(part).lstrip('/')}")

    @property
    def path(self) -> str:
        """The path inside the file system (``bucket/prefix/key`` for ``s3``)."""
        return self._path

    @property
    def name(self) -> str:
        """The last part of the path."""
        return posixpath.basename(self._path)

    @property
    def suffix(self) -> str:
        """The file extension of :attr:`name` (``".flac"``), as :attr:`pathlib.Path.suffix`."""
        return Path(self.name).suffix if self.name else ""

    @property
    def stem(self) -> str:
        """:attr:`name` without its suffix."""
        return Path(self.name).stem if self.name else ""

    @property
    def parent(self) -> RemotePath:
        """The folder (prefix) holding this path."""
        return RemotePath(f"{self.protocol}://{posixpath.dirname(self._path)}")

    def with_name(self, name: str) -> RemotePath:
        """This path with another last part."""
        return self.parent / name

    def with_suffix(self, suffix: str) -> RemotePath:
        """This path with another extension."""
        return self.parent / (self.stem + suffix)

    def resolve(self) -> RemotePath:
        """Itself (a URL is absolute)."""
        return self

    absolute = resolve

    def is_absolute(self) -> bool:
        """Always true."""
        return True

    # --------------------------------------------------------------------- file system
    @property
    def fs(self) -> Any:
        """The fsspec file system of this URL's protocol."""
        return filesystem(self.protocol)

    def info(self) -> dict[str, Any] | None:
        """The object's or prefix's listing entry (one HEAD, or a one-key LIST for a prefix);
        None when nothing is there. Other failures (network, credentials) are a
        :class:`StorageError` (fsspec's ``exists`` would answer False to them)."""
        with storage_errors(self, "check"):
            try:
                return dict(self.fs.info(self._path))
            except FileNotFoundError:
                return None

    def exists(self) -> bool:
        """True for an object or a non-empty prefix."""
        return self.info() is not None

    def is_file(self) -> bool:
        """True for an object."""
        got = self.info()
        return got is not None and got.get("type") == "file"

    def is_dir(self) -> bool:
        """True for a non-empty prefix (object stores have no empty folders)."""
        got = self.info()
        return got is not None and got.get("type") == "directory"

    def missing(self, what: str) -> str:
        """The message for nothing at this URL: names a missing bucket as such."""
        bucket = self._path.split("/", 1)[0]
        in_bucket = self.protocol in ("s3", "s3a", "gs", "gcs") and bucket and bucket != self._path
        if in_bucket and RemotePath(f"{self.protocol}://{bucket}").info() is None:
            return (
                f"{self}: the bucket {bucket} does not exist "
                "(create it, or check the URL and AWS_ENDPOINT_URL)"
            )
        return f"{self} does not exist ({what})"

    def is_symlink(self) -> bool:
        """Always false."""
        return False

    def iterdir(self) -> Iterator[RemotePath]:
        """The objects and prefixes directly under this prefix."""
        with storage_errors(self, "list"):
            names = self.fs.ls(self._path, detail=False, refresh=True)
        for n in sorted(names):
            if n.rstrip("/") != self._path:
                yield RemotePath(f"{self.protocol}://{n}")

    def glob(self, pattern: str) -> Iterator[RemotePath]:
        """Objects matching ``pattern`` under this prefix."""
        with storage_errors(self, "list"):
            names = self.fs.glob(f"{self._path}/{pattern}")
        for n in sorted(names):
            yield RemotePath(f"{self.protocol}://{n}")

    def mkdir(self, parents: bool = False, exist_ok: bool = False) -> None:
        """Nothing to do: object stores create prefixes with their first object."""

    def read_bytes(self) -> bytes:
        """The whole object (one GET)."""
        with storage_errors(self, "read"):
            return bytes(self.fs.cat_file(self._path))

    def read_text(self, encoding: str = "utf-8", errors: str = "strict") -> str:
        """The whole object decoded."""
        return self.read_bytes().decode(encoding, errors)

    def write_bytes(self, data: bytes) -> int:
        """Replace the object with ``data`` (one PUT: readers see the old or the new, whole)."""
        with storage_errors(self, "write"):
            self.fs.pipe_file(self._path, bytes(data))
        return len(data)

    def write_text(self, text: str, encoding: str = "utf-8") -> int:
        """Replace the object with ``text`` encoded."""
        return self.write_bytes(text.encode(encoding))

    def create_bytes(self, data: bytes) -> bool:
        """Write ``data`` only if no object is there yet (a conditional PUT, ``If-None-Match: *``
        on S3); False if one was (another writer came first)."""
        with storage_errors(self, "write"):
            try:
                self.fs.pipe_file(self._path, bytes(data), mode="create")
            except FileExistsError:
                return False
            except (TypeError, NotImplementedError):  # a file system without conditional writes
                if self.fs.exists(self._path):
                    return False
                self.fs.pipe_file(self._path, bytes(data))
        return True

    def unlink(self, missing_ok: bool = False) -> None:
        """Delete the object."""
        with storage_errors(self, "delete"):
            try:
                self.fs.rm_file(self._path)
            except FileNotFoundError:
                if not missing_ok:
                    raise

    def remove_tree(self) -> None:
        """Delete every object under this prefix (and the object itself, if any)."""
        with storage_errors(self, "delete"):
            if self.fs.exists(self._path):
                self.fs.rm(self._path, recursive=True)
            self.fs.invalidate_cache(self._path)

    def open(self, mode: str = "rb", **kwargs: Any) -> Any:
        """A file object (buffered reads with range requests; a write is one upload on close)."""
        with storage_errors(self, "open"):
            return self.fs.open(self._path, mode, **kwargs)

    def size(self) -> int:
        """The object's size in bytes."""
        with storage_errors(self, "check"):
            return int(self.fs.size(self._path))


Location = Path | RemotePath
"""A local path or a URL (what :func:`as_location` returns)."""


def as_location(where: str | os.PathLike | RemotePath) -> Location:
    """A :class:`RemotePath` for ``scheme://`` URLs other than ``file://``, else a Path."""
    if isinstance(where, (Path, RemotePath)):
        return where
    text = os.fspath(where)
    if is_url(text):
        if text.lower().startswith("file://"):
            return Path(text[len("file://") :])
        return RemotePath(text)
    return Path(text)


def is_remote(where: object) -> bool:
    """True for a :class:`RemotePath` or a non-``file://`` URL string."""
    if isinstance(where, RemotePath):
        return True
    return is_url(where) and not str(where).lower().startswith("file://")


def absolute(where: str | os.PathLike | RemotePath) -> str:
    """``where`` as a string that means the same in any process and directory: the URL itself,
    or the absolute local path (what work units sent to Dask workers carry)."""
    loc = as_location(where)
    return str(loc) if isinstance(loc, RemotePath) else os.path.abspath(loc)


def resolved(where: str | os.PathLike | RemotePath) -> Location:
    """``where`` made absolute with symlinks resolved (a URL stays as it is)."""
    loc = as_location(where)
    return loc if isinstance(loc, RemotePath) else loc.resolve()
