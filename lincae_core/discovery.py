"""Find the audio files of a library and give each a stable, unique key.

A *source* is one input of an encode: a file path and its key, the path relative to the
library root without its extension, with POSIX separators (``drums/kick.wav`` -> ``drums/kick``).
Discovery is deterministic (sources are sorted by relative path), case-insensitive on
extensions, skips hidden files and directories, follows directory symlinks without looping, and
also returns *directories* named like audio files (``d.wav/``), so that the encode can record
them in the failure ledger instead of silently ignoring them.

Key collisions (``a.wav`` and ``a.flac`` both want key ``a``) are resolved in sorted order: the
first source keeps the plain key, each later one keeps its extension (``a.wav``), and if that is
taken too a ``~N`` suffix is added.
"""

from __future__ import annotations

import dataclasses
import fnmatch
import hashlib
import logging
import os
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path, PurePosixPath

from lincae_core.errors import ConfigError
from lincae_core.location import Location, RemotePath, as_location, is_url, storage_errors

__all__ = [
    "AUDIO_EXTENSIONS",
    "KEY_FIELDS",
    "UNREADABLE_AUDIO_EXTENSIONS",
    "Source",
    "discover",
    "is_audio_name",
    "list_entries",
    "parse_extensions",
    "read_file_list",
    "source_stamp",
    "sources_fingerprint",
    "track_fingerprints",
    "unreadable_reason",
]

log = logging.getLogger(__name__)

# Extensions of the containers libsndfile (hence soundfile) reads; RAW and MAT are left out
# because their files are rarely audio.
AUDIO_EXTENSIONS: tuple[str, ...] = (
    "aif",
    "aifc",
    "aiff",
    "au",
    "avr",
    "bwf",
    "caf",
    "flac",
    "htk",
    "ircam",
    "mp3",
    "mpc",
    "nist",
    "oga",
    "ogg",
    "opus",
    "paf",
    "rf64",
    "sd2",
    "sds",
    "sf",
    "snd",
    "sph",
    "svx",
    "voc",
    "w64",
    "wav",
    "wave",
    "wve",
    "xi",
)


@dataclass(frozen=True)
class Source:
    """One input of an encode: where it is, and the key its track gets in the store."""

    path: Location
    key: str
    rel: str  # path relative to the library root (POSIX), or the whole path if outside it
    outside: bool = False  # a listed file outside the library root (recorded as a failure)
    stamp: str | None = None  # size and version of an object, from the bucket listing

    def to_dict(self) -> dict[str, str]:
        """Return a JSON-ready dict."""
        return {"path": str(self.path), "key": self.key, "rel": self.rel}


# Audio containers libsndfile does not read (AAC and ALAC in MP4, WMA, APE, ...): a library walk
# with the default extensions keeps them as inputs, so that planning records each as a failure
# saying how to convert it (counted, warned and in the ledger) instead of skipping it unseen.
UNREADABLE_AUDIO_EXTENSIONS: tuple[str, ...] = (
    "3gp", "aac", "ac3", "alac", "amr", "ape", "dff", "dsf", "dts", "m4a", "m4b", "mka", "mp2",
    "mp4", "ra", "tta", "webm", "wma", "wv",
)  # fmt: skip
_DEFAULT = set(AUDIO_EXTENSIONS)


def unreadable_reason(name: str) -> str | None:
    """Why a file with an extension of :data:`UNREADABLE_AUDIO_EXTENSIONS` cannot be encoded (and
    how to convert it); None for other names."""
    suffix = PurePosixPath(name).suffix[1:].lower()
    if suffix not in UNREADABLE_AUDIO_EXTENSIONS:
        return None
    return (
        f".{suffix} is an audio format libsndfile does not read: convert it, e.g. "
        f"ffmpeg -i in.{suffix} out.flac, then encode again"
    )


def parse_extensions(spec: str | Iterable[str] | None) -> tuple[str, ...]:
    """Normalise an extension list (``"wav,FLAC"`` or ``[".wav", "flac"]``) to lower case, no dots.

    Raises:
        ValueError: The list is empty.
    """
    if spec is None:
        return AUDIO_EXTENSIONS
    items = spec.split(",") if isinstance(spec, str) else list(spec)
    exts = tuple(sorted({e.strip().lstrip(".").lower() for e in items if e.strip().lstrip(".")}))
    if not exts:
        raise ValueError(f"Expected at least one extension. Got {spec!r} instead.")
    return exts


def is_audio_name(name: str, exts: Sequence[str] = AUDIO_EXTENSIONS) -> bool:
    """Whether a file name has one of the audio extensions ``exts`` (case-insensitive)."""
    suffix = PurePosixPath(name).suffix
    return bool(suffix) and suffix[1:].lower() in exts


def _walk(root: Path, exts: Sequence[str]) -> list[Path]:
    """Every non-hidden file (and directory named like audio) under ``root``, symlink-loop safe."""
    found: list[Path] = []
    seen: set[tuple[int, int]] = set()
    stack = [root]
    while stack:
        d = stack.pop()
        try:
            st = d.stat()
        except OSError as exc:
            log.warning("skipping %s: %s", d, exc)
            continue
        if (st.st_dev, st.st_ino) in seen:  # a symlink back up the tree, or a second link
            continue
        seen.add((st.st_dev, st.st_ino))
        try:
            entries = sorted(os.scandir(d), key=lambda e: e.name)
        except OSError as exc:
            log.warning("skipping %s: %s", d, exc)
            continue
        for e in entries:
            if e.name.startswith("."):
                continue
            path = Path(e.path)
            is_dir = e.is_dir()  # follows symlinks; broken links are not dirs
            if is_dir:
                stack.append(path)
            if is_audio_name(e.name, exts) or (set(exts) == _DEFAULT and unreadable_reason(e.name)):
                found.append(path)  # files, broken links and dirs named like audio
    return found


def list_entries(lines: Iterable[str]) -> list[tuple[int, str]]:
    """The entries of a list file, numbered by line (1-based): the one rule of every list a
    command reads (``encode --files-from``, ``--keys-from`` of ``select``, ``export`` and
    ``concat``): a leading byte-order mark and line ends are stripped, blank lines and ``#``
    comment lines (``#`` the first non-blank character) are skipped, and an entry is taken
    literally (inner and edge spaces kept).
    """
    out = []
    for n, line in enumerate(lines, 1):
        p = line.rstrip("\r\n")
        if n == 1:
            p = p.removeprefix("\ufeff")  # a byte-order mark (a list saved by a spreadsheet or Notepad)
        if p.strip() and not p.lstrip().startswith("#"):
            out.append((n, p))
    return out


def read_file_list(lines: Iterable[str]) -> list[str]:
    """The entries of a list file (``--files-from``, ``--keys-from``): :func:`list_entries`."""
    return [entry for _, entry in list_entries(lines)]


def _relative(path: Path, root: Path) -> tuple[str, bool]:
    """Return (relative POSIX path, outside) of ``path`` under ``root`` (lexically)."""
    try:
        return path.relative_to(root).as_posix(), False
    except ValueError:
        return path.as_posix(), True


def _assign_keys(rels: Sequence[str]) -> list[str]:
    """Keys for sorted relative paths: stem path, else full path, else ``~N`` suffixes."""
    used: set[str] = set()
    keys = []
    for rel in rels:
        p = PurePosixPath(rel.lstrip("/"))
        candidates = [p.with_suffix("").as_posix() if p.suffix else p.as_posix(), p.as_posix()]
        key = next((c for c in candidates if c not in used), None)
        n = 2
        while key is None:
            key = f"{candidates[1]}~{n}" if f"{candidates[1]}~{n}" not in used else None
            n += 1
        used.add(key)
        keys.append(key)
    return keys


def discover(
    root: str | os.PathLike[str],
    extensions: Sequence[str] | None = None,
    files: Sequence[str] | None = None,
    *,
    match: str | None = None,
    key: str | None = None,
) -> list[Source]:
    """List a library's audio sources in deterministic order, with unique keys.

    ``match`` (a glob on the path relative to the root, e.g. ``*/vocals.wav``) keeps only the
    matching inputs; ``key`` (a template, :data:`KEY_FIELDS`) names their tracks, e.g.
    ``{parent}`` for the MUSDB layout (``song1/vocals.wav`` -> ``song1``), so that stem stores
    pair by song. Two inputs given one key are refused.

    Args:
        root: Library root: keys are paths relative to it. A single file is a one-track library.
        extensions: Lower-case extensions without dots (default :data:`AUDIO_EXTENSIONS`).
            Only applied when walking; listed ``files`` are taken as given.
        files: Explicit paths (``--files-from``) instead of a walk; relative ones are taken
            relative to ``root`` (as rsync does). Duplicates are dropped.

    Returns:
        Sources sorted by relative path. Missing listed files are kept: the encode records them
        in the failure ledger.

    Raises:
        FileNotFoundError: ``root`` does not exist (and no file list is given).
    """
    sources = _discover(root, extensions, files)
    if match is not None:
        sources = [s for s in sources if fnmatch.fnmatchcase(s.rel, match)]
    return sources if key is None else _template_keys(sources, key)


KEY_FIELDS = {
    "rel": "the path relative to the root without its extension (the default key)",
    "parent": "the folder holding the file, relative to the root ('.' at the root)",
    "name": "the file name without its extension",
    "ext": "the extension, without its dot",
}


def _template_keys(sources: list[Source], template: str) -> list[Source]:
    """``sources`` with the keys the ``--key`` template gives; refuses a template that gives two
    inputs one key, or names an unknown field."""
    out: list[Source] = []
    seen: dict[str, str] = {}
    for s in sources:
        p = PurePosixPath(s.rel)
        fields = {"rel": p.with_suffix("").as_posix(), "parent": p.parent.as_posix(), "name": p.stem,
                  "ext": p.suffix[1:]}  # fmt: skip
        try:
            k = template.format(**fields)
        except (KeyError, IndexError, ValueError) as exc:
            raise ConfigError(
                f"--key {template!r}: expected fields among {{{'}, {'.join(KEY_FIELDS)}}}; got {exc}"
            ) from None
        if not k:
            raise ConfigError(f"--key {template!r} gives {s.rel!r} an empty key")
        if k in seen:
            raise ConfigError(
                f"--key {template!r} gives the key {k!r} to both {seen[k]!r} and {s.rel!r}: keep one of "
                "them with --match (e.g. --match '*/vocals.wav'), or use another template"
            )
        seen[k] = s.rel
        out.append(dataclasses.replace(s, key=k))
    return out


def _discover(
    root: str | os.PathLike[str], extensions: Sequence[str] | None, files: Sequence[str] | None
) -> list[Source]:
    exts = parse_extensions(extensions)
    base = as_location(root)
    if isinstance(base, RemotePath):
        return _discover_remote(base, exts, files)
    if files is None:
        if base.is_file():
            return [Source(base, _assign_keys([base.name])[0], base.name)]
        if not base.is_dir():
            raise FileNotFoundError(f"Expected a library directory or audio file. Got {str(base)!r}.")
        paths = _walk(base, exts)
    else:
        paths = [Path(f) if os.path.isabs(f) else base / f for f in files]
    unique = {os.path.normpath(p): Path(os.path.normpath(p)) for p in paths}
    norm_root = Path(os.path.normpath(base))
    rows = sorted((*_relative(p, norm_root), p) for p in unique.values())
    keys = _assign_keys([r for r, _, _ in rows])
    return [Source(p, k, r, out) for (r, out, p), k in zip(rows, keys, strict=True)]


def _discover_remote(base: RemotePath, exts: Sequence[str], files: Sequence[str] | None) -> list[Source]:
    """:func:`discover` for a library in object storage: one listing of the prefix (no request
    per file), or the listed URLs (relative ones under ``base``)."""
    stamps: dict[str, str] = {}
    paths: list[Location]
    with storage_errors(base, "list the library"):
        if files is None:
            if base.is_file():
                info = base.fs.info(base.path)
                stamps[base.path] = _object_stamp(info)
                return [Source(base, _assign_keys([base.name])[0], base.name, stamp=stamps[base.path])]
            found = base.fs.find(base.path, detail=True)
            if not found:
                raise FileNotFoundError(f"Expected a library prefix or audio object. Got {str(base)!r}.")
            stamps = {
                k: _object_stamp(v)
                for k, v in found.items()
                if is_audio_name(k, exts) or (set(exts) == _DEFAULT and unreadable_reason(k))
            }
            paths = [RemotePath(f"{base.protocol}://{k}") for k in stamps]
        else:
            paths = [as_location(f) if is_url(f) else base / f for f in files]
    rows: list[tuple[str, bool, Location]] = []
    for p in {str(p): p for p in paths}.values():
        if isinstance(p, RemotePath) and p.path.startswith(base.path + "/"):
            rows.append((p.path[len(base.path) + 1 :], False, p))
        else:
            rows.append((str(p), True, p))
    rows.sort(key=lambda r: r[0])
    keys = _assign_keys([r for r, _, _ in rows])
    return [
        Source(p, k, r, out, stamps.get(p.path) if isinstance(p, RemotePath) else None)
        for (r, out, p), k in zip(rows, keys, strict=True)
    ]


def _object_stamp(info: dict) -> str:
    """Size and version of an object from its listing entry (ETag, else last-modified)."""
    version = info.get("ETag") or info.get("LastModified") or info.get("mtime") or ""
    return f"{info.get('size')}\0{version}"


def source_stamp(s: Source) -> str:
    """Size and modification time of one input (size and version of an object; ``missing``)."""
    try:
        if s.stamp is not None:
            return s.stamp
        if isinstance(s.path, RemotePath):
            with storage_errors(s.path, "check"):
                return _object_stamp(s.path.fs.info(s.path.path))
        st = os.stat(s.path)
        return f"{st.st_size}\0{st.st_mtime_ns}"
    except OSError:
        return "missing"


def sources_fingerprint(sources: Sequence[Source], stamps: Sequence[str] | None = None) -> str:
    """SHA-256 of every input's key, relative path, size and modification time.

    Identifies what an encode reads: a folder with the same file names but other audio, or a file
    changed since the store was planned, gives another fingerprint, so changed audio is never
    taken for finished work. Size and mtime, not a content hash: one ``stat`` per file was measured
    over 3000x cheaper than hashing the audio (scripts/bench_fingerprint.py; docs/encoding.md),
    and any rewrite of a file changes its mtime. Shards on several nodes must see the same files
    (a shared file system). ``stamps``: the inputs' :func:`source_stamp` when already taken.
    """
    h = hashlib.sha256()
    for s, stamp in zip(sources, stamps or [source_stamp(s) for s in sources], strict=True):
        h.update(f"{s.key}\0{s.rel}\0{stamp}\n".encode())
    return h.hexdigest()


def track_fingerprints(sources: Sequence[Source], stamps: Sequence[str] | None = None) -> list[int]:
    """One int64 an input: the first 8 bytes of the SHA-256 of its key, relative path, size and
    modification time (what :func:`sources_fingerprint` hashes for the whole set). A store keeps
    them per track (``tracks/input_fingerprint``), so that a re-run of ``encode`` on a grown or
    edited library re-encodes only the inputs that are new or changed."""
    return [
        int.from_bytes(
            hashlib.sha256(f"{s.key}\0{s.rel}\0{stamp}".encode()).digest()[:8], "little", signed=True
        )
        for s, stamp in zip(sources, stamps or [source_stamp(s) for s in sources], strict=True)
    ]
