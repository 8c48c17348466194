"""Released models by name: downloaded, converted, verified and cached (design.md section 5c).

``-c NAME`` takes the paper's three releases (``lin-cae``, ``lin-cae-2``, ``m2l``: the files
``linear_cae.Autoencoder.from_pretrained`` fetches, ``{hash}_weights/autoencoder_inference_model_last.pth``
and its three ``*_kwargs_last.yaml``) or ``hf:REPO[@REVISION]/PATH`` for any release in that layout
(PATH: a ``{hash}_weights`` folder or its ``autoencoder_inference_model_{type}.pth``) or a
Music2Latent ``.pt`` file (``paper`` preset). The files come through ``huggingface_hub`` into its
own cache (``HF_HOME``/``HF_HUB_CACHE``, ``HF_HUB_OFFLINE`` and ``HF_ENDPOINT`` honoured, read when
called), the revision is resolved to a commit, and the strict importer
(:func:`lincae_core.release.import_weights`) converts them.

lincae's own cache (``$LINCAE_CACHE``, else ``$XDG_CACHE_HOME/lincae``, else ``~/.cache/lincae``)::

    checkpoints/<key>/  a converted checkpoint; key: sha256 over the source files' sha256
    names/<id>.json     a name resolved: repository, revision, commit, files and their sha256,
                        checkpoint key (id: sha256 of the canonical hf:REPO@REVISION/WEIGHTS)

A name resolved once is read from ``names/`` alone: no request, no hashing, no huggingface_hub
import, offline or not. ``refresh=True`` asks the hub again (a moved branch).
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import re
import socket
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from lincae_core._version import __version__
from lincae_core.config import get_preset
from lincae_core.errors import CheckpointError
from lincae_core.publish import building_dir, write_text_atomic
from lincae_core.release import import_weights, release_config

__all__ = [
    "RELEASES",
    "RELEASE_REPO",
    "ModelSource",
    "cache_root",
    "cached_checkpoint",
    "hub_cache_root",
    "hub_snapshot",
    "is_model_name",
    "parse_model_name",
    "resolve_checkpoint",
    "resolve_if_released",
]

log = logging.getLogger(__name__)

RELEASE_REPO = "BernardoTorres/linear_consistency_autoencoders"
# name -> (folder hash, scale_factor of the linear-cae API latent): linear_cae/inference.py
RELEASES: dict[str, tuple[str, float]] = {
    "lin-cae": ("0a3afbec", 33.0),
    "lin-cae-2": ("2f4c6d21", 40.0),
    "m2l": ("1511f18a", 15.0),
}
_WEIGHTS = re.compile(r"autoencoder_inference_model_(\w+)\.pth")
_COMMIT = re.compile(r"[0-9a-f]{40}")
_SHA256 = re.compile(r"[0-9a-f]{64}")
_PROXIES = ("HTTPS_PROXY", "https_proxy", "HTTP_PROXY", "http_proxy", "ALL_PROXY", "all_proxy")


@dataclass(frozen=True)
class ModelSource:
    """Where the files of a named model live on the hub."""

    name: str
    repo: str
    revision: str
    weights: str
    configs: tuple[str, ...] = ()  # frontend, generator, diffusion YAML; none for a Music2Latent .pt
    scale_factor: float | None = None

    @property
    def files(self) -> tuple[str, ...]:
        """Every file of the release, weights first."""
        return (self.weights, *self.configs)

    @property
    def canonical(self) -> str:
        """``hf:REPO@REVISION/WEIGHTS``: one spelling whatever the name given."""
        return f"hf:{self.repo}@{self.revision}/{self.weights}"

    @property
    def fetch_command(self) -> str:
        """The ``hf download`` line that puts these files in a hub cache."""
        return f"hf download {self.repo} {' '.join(self.files)} --revision {self.revision}"


def _release_folder(name: str, repo: str, revision: str, folder: str, kind: str = "last") -> ModelSource:
    prefix = f"{folder.strip('/')}/" if folder.strip("/") else ""
    configs = tuple(f"{prefix}{part}_kwargs_{kind}.yaml" for part in ("frontend", "generator", "diffusion"))
    known = {h: sf for h, sf in RELEASES.values()}
    scale = known.get(folder.strip("/").split("/")[-1].removesuffix("_weights"))
    weights = f"{prefix}autoencoder_inference_model_{kind}.pth"
    return ModelSource(name, repo, revision, weights, configs, scale)


def parse_model_name(spec: str) -> ModelSource | None:
    """The hub files of a model name, or None when ``spec`` is not one (a path, ``default``).

    Raises:
        CheckpointError: ``spec`` starts with ``hf:`` but is not ``hf:OWNER/REPO[@REVISION]/PATH``.
    """
    if spec in RELEASES:
        return _release_folder(spec, RELEASE_REPO, "main", f"{RELEASES[spec][0]}_weights")
    if not spec.startswith("hf:"):
        return None
    parts = spec[3:].split("/", 2)
    if len(parts) < 3 or not all(parts):
        raise CheckpointError(f"Expected hf:OWNER/REPO[@REVISION]/PATH. Got {spec!r} instead.")
    owner, repo_rev, path = parts
    repo, _, revision = repo_rev.partition("@")
    repo_id, revision, path = f"{owner}/{repo}", revision or "main", path.rstrip("/")
    if path.endswith(".pt"):
        return ModelSource(spec, repo_id, revision, path)
    if path.endswith(".pth"):
        m = _WEIGHTS.fullmatch(path.rsplit("/", 1)[-1])
        if m is None:
            raise CheckpointError(
                f"{spec}: expected a release's autoencoder_inference_model_<type>.pth, its folder, "
                "or a Music2Latent .pt file."
            )
        return _release_folder(spec, repo_id, revision, path.rsplit("/", 1)[0] if "/" in path else "", m[1])
    return _release_folder(spec, repo_id, revision, path)


def is_model_name(spec: str) -> bool:
    """Whether ``spec`` names a released model (``lin-cae``, ``lin-cae-2``, ``m2l``, ``hf:...``)."""
    return spec in RELEASES or spec.startswith("hf:")


def _env_path(*candidates: str | None) -> Path:
    value = next(c for c in candidates if c)
    return Path(os.path.expandvars(os.path.expanduser(value)))


def cache_root() -> Path:
    """lincae's cache: ``$LINCAE_CACHE``, else ``$XDG_CACHE_HOME/lincae``, else ``~/.cache/lincae``."""
    xdg = os.environ.get("XDG_CACHE_HOME")
    return _env_path(os.environ.get("LINCAE_CACHE"), xdg and f"{xdg}/lincae", "~/.cache/lincae")


def hub_cache_root() -> Path:
    """huggingface_hub's cache as it resolves it (``HF_HUB_CACHE``, ``HF_HOME``, XDG, home)."""
    env = os.environ
    home = env.get("HF_HOME") or f"{env.get('XDG_CACHE_HOME') or '~/.cache'}/huggingface"
    return _env_path(env.get("HF_HUB_CACHE"), env.get("HUGGINGFACE_HUB_CACHE"), f"{home}/hub")


def _offline() -> bool:
    flags = (os.environ.get("HF_HUB_OFFLINE"), os.environ.get("TRANSFORMERS_OFFLINE"))
    return any((v or "").upper() in ("1", "ON", "YES", "TRUE") for v in flags)


def _endpoint() -> str:
    return (os.environ.get("HF_ENDPOINT") or "https://huggingface.co").rstrip("/")


def _reachable(endpoint: str) -> bool:
    """Whether a TCP connection to the hub opens (behind a proxy: assumed; the hub client uses it).

    Without a network huggingface_hub retries for about 25 s before it falls back to its cache;
    one connection attempt tells the same at once, and opens no HTTP request.
    """
    if any(os.environ.get(k) for k in _PROXIES):
        return True
    url = urlsplit(endpoint)
    try:
        port = url.port or (443 if url.scheme == "https" else 80)
        socket.create_connection((url.hostname or "", port), timeout=5).close()
    except (OSError, ValueError):
        return False
    return True


def hub_snapshot(src: ModelSource) -> tuple[str | None, dict[str, Path]]:
    """The commit the hub cache holds for ``src.revision`` and which of its files it holds."""
    repo_dir = hub_cache_root() / f"models--{src.repo.replace('/', '--')}"
    commit: str | None = src.revision if _COMMIT.fullmatch(src.revision) else None
    ref = repo_dir / "refs" / src.revision
    if commit is None and ref.is_file():
        commit = ref.read_text().strip()
    if commit is None:
        return None, {}
    snap = repo_dir / "snapshots" / commit
    return commit, {f: snap / f for f in src.files if (snap / f).is_file()}


def _missing(src: ModelSource, why: str) -> str:
    _, held = hub_snapshot(src)
    missing = [f for f in src.files if f not in held]
    cache, folder = hub_cache_root(), f"models--{src.repo.replace('/', '--')}"
    return (
        f"{src.name}: not available ({why}): {', '.join(missing)} missing from the hub cache {cache}. "
        f"On a machine with internet run `{src.fetch_command}` (huggingface_hub < 1.0: "
        f"`huggingface-cli download`, same arguments), then copy its "
        f"~/.cache/huggingface/hub/{folder} to {cache}/{folder} here (or point HF_HOME at a copy)."
    )


def _commit_of(path: Path, filename: str, revision: str) -> str:
    """The commit of a file in the hub cache: ``.../snapshots/<commit>/<filename>``."""
    commit = path.parents[len(filename.split("/")) - 1].name
    return commit if _COMMIT.fullmatch(commit) else revision


@contextmanager
def _quiet_http_log() -> Iterator[None]:
    """The hub client's INFO line per HTTP request at WARNING while lincae fetches (not with -v)."""
    loggers = [logging.getLogger(name) for name in ("httpx", "httpx2")]
    levels = [lg.level for lg in loggers]
    for lg in loggers:
        if lg.getEffectiveLevel() > logging.DEBUG:
            lg.setLevel(logging.WARNING)
    try:
        yield
    finally:
        for lg, level in zip(loggers, levels, strict=True):
            lg.setLevel(level)


def _download(src: ModelSource) -> tuple[dict[str, Path], str]:
    """Fetch (or find in the hub cache) every file of ``src``, all at one commit."""
    try:
        from huggingface_hub import hf_hub_download
        from huggingface_hub.errors import HfHubHTTPError, LocalEntryNotFoundError
    except ImportError:
        raise CheckpointError(
            f"{src.name}: not in lincae's cache {cache_root()}; fetching it needs huggingface_hub: "
            "pip install 'lincae[hub]'."
        ) from None
    endpoint = _endpoint()
    offline = _offline()
    reachable = offline or _reachable(endpoint)
    why = "HF_HUB_OFFLINE is set" if offline else f"{endpoint} cannot be reached"
    if not reachable:
        log.info("%s cannot be reached: looking in the hub cache only.", endpoint)
    log.info(
        "%s: %s@%s (%d files) into %s", src.name, src.repo, src.revision, len(src.files), hub_cache_root()
    )
    common: dict[str, Any] = dict(
        repo_id=src.repo,
        cache_dir=str(hub_cache_root()),
        endpoint=endpoint,
        local_files_only=offline or not reachable,
        library_name="lincae",
        library_version=__version__,
    )
    try:
        with _quiet_http_log():
            first = Path(hf_hub_download(filename=src.weights, revision=src.revision, **common))
            commit = _commit_of(first, src.weights, src.revision)
            paths = {src.weights: first}
            for name in src.configs:  # at the weights' commit, even if the branch moves meanwhile
                paths[name] = Path(hf_hub_download(filename=name, revision=commit, **common))
    except LocalEntryNotFoundError:
        raise CheckpointError(_missing(src, why)) from None
    except HfHubHTTPError as exc:
        first_line = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise CheckpointError(f"{src.name}: the hub refused {src.repo}@{src.revision}: {first_line}") from exc
    return paths, commit


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            digest.update(block)
    sha = digest.hexdigest()
    blob = Path(os.path.realpath(path)).name  # an LFS file's blob is named by its sha256
    if _SHA256.fullmatch(blob) and blob != sha:
        raise CheckpointError(f"{path}: the hub cache's file has sha256 {sha[:12]}..., not {blob[:12]}...")
    return sha


def _read_yaml(path: Path) -> dict[str, Any]:
    try:
        import yaml
    except ImportError:
        raise CheckpointError(
            "Reading a release's YAML files needs PyYAML: pip install 'lincae[hub]'."
        ) from None
    try:
        data = yaml.safe_load(path.read_text())
    except (OSError, yaml.YAMLError) as exc:
        raise CheckpointError(f"Cannot read {path}: {exc}") from exc
    if not isinstance(data, dict):
        raise CheckpointError(f"Expected a mapping in {path}. Got {type(data).__name__} instead.")
    return data


def _entry_path(src: ModelSource) -> Path:
    return cache_root() / "names" / f"{hashlib.sha256(src.canonical.encode()).hexdigest()[:16]}.json"


def _checkpoint_dir(key: str) -> Path:
    return cache_root() / "checkpoints" / key


def cached_checkpoint(spec: str) -> Path | None:
    """The converted checkpoint of a name resolved before, or None (no request, no hashing)."""
    src = parse_model_name(spec)
    if src is None:
        return None
    try:
        entry = json.loads(_entry_path(src).read_text())
        path = _checkpoint_dir(str(entry["checkpoint"]))
    except (OSError, ValueError, KeyError, TypeError):
        return None
    return path if (path / "model.safetensors").is_file() else None


def resolve_checkpoint(spec: str, refresh: bool = False) -> Path:
    """The checkpoint directory of a model name: from lincae's cache, else fetched and converted.

    Args:
        spec: ``lin-cae``, ``lin-cae-2``, ``m2l`` or ``hf:REPO[@REVISION]/PATH``.
        refresh: ask the hub for the revision's commit again instead of reading lincae's cache.

    Returns:
        The cached checkpoint (``model_card.json`` ``source``: name, repository, revision,
        commit, scale factor and the sha256 of every file it was made from).

    Raises:
        CheckpointError: Not a name; not in any cache and the hub cannot be reached or is offline
            (one line: what is missing and the ``hf download`` line that fetches it elsewhere);
            files that do not convert strictly.
    """
    src = parse_model_name(spec)
    if src is None:
        raise CheckpointError(
            f"Expected a model name ({', '.join(RELEASES)} or hf:REPO[@REVISION]/PATH). Got {spec!r} instead."
        )
    hit = None if refresh else cached_checkpoint(spec)
    if hit is not None:
        return hit
    paths, commit = _download(src)
    files = {name: _sha256(p) for name, p in paths.items()}
    key = hashlib.sha256(json.dumps(sorted(files.items())).encode()).hexdigest()[:16]
    out = _checkpoint_dir(key)
    if not (out / "model.safetensors").is_file():
        cfg = release_config(*(_read_yaml(paths[n]) for n in src.configs)) if src.configs else None
        source = {
            "name": src.name,
            "repo": src.repo,
            "revision": src.revision,
            "commit": commit,
            "files": files,
            **({} if src.scale_factor is None else {"scale_factor": src.scale_factor}),
        }
        out.parent.mkdir(parents=True, exist_ok=True)
        with building_dir(out, exist_ok=True) as b:
            import_weights(paths[src.weights], Path(str(b.tmp)), cfg or get_preset("paper"), source=source)
        log.info("%s: converted %s@%s into %s", src.name, src.repo, commit[:12], out)
    entry = {
        "name": src.name,
        "spec": src.canonical,
        "repo": src.repo,
        "revision": src.revision,
        "commit": commit,
        "files": files,
        "checkpoint": key,
        "resolved": datetime.now(UTC).isoformat(timespec="seconds"),
    }
    _entry_path(src).parent.mkdir(parents=True, exist_ok=True)
    write_text_atomic(_entry_path(src), json.dumps(entry, indent=2) + "\n")
    return out


def resolve_if_released(spec: str | Path) -> Path:
    """``spec`` as a path; when no such path exists and it names a released model, that model's
    checkpoint in lincae's cache (fetched and converted on first use: :func:`resolve_checkpoint`)."""
    p = Path(spec)
    return resolve_checkpoint(str(spec)) if not p.exists() and is_model_name(str(spec)) else p
