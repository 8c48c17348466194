"""A Hugging Face Hub stand-in on 127.0.0.1 for the tests (never the real hub), and releases
written in the published Lin-CAE layout by the reference package's own classes.

The server answers what ``huggingface_hub.hf_hub_download`` asks (``HF_ENDPOINT`` pointed at it):
``HEAD``/``GET {endpoint}/{repo}/resolve/{revision}/{path}`` with ``X-Repo-Commit``, an LFS-style
``ETag`` (the file's sha256) and ``Content-Length``, ``404`` + ``X-Error-Code`` for what it does
not hold, and ``GET /api/models/{repo}/revision/{revision}``. Every request is counted.
"""

from __future__ import annotations

import hashlib
import http.server
import inspect
import json
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import torch
import yaml

from lincae_core.config import ModelConfig
from lincae_core.release import reference_kwargs

RELEASE_REPO = "BernardoTorres/linear_consistency_autoencoders"
COMMIT = "0123456789abcdef0123456789abcdef01234567"
FILES = ("autoencoder_inference_model", "frontend_kwargs", "generator_kwargs", "diffusion_kwargs")


def sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def reference_release(cfg: ModelConfig, seed: int = 3) -> tuple[Any, dict[str, dict[str, Any]]]:
    """A reference ``linear_cae`` autoencoder of ``cfg`` with perturbed weights, and its kwargs.

    The generator kwargs carry every reference ``UNet`` argument that YAML can hold (as a training
    run dumps them); the diffusion kwargs every ``Diffusion`` argument.
    """
    from conftest import randomize
    from linear_cae.components.diffusion import Diffusion
    from linear_cae.components.generator import UNet
    from linear_cae.inference import Autoencoder

    frontend, generator = reference_kwargs(cfg)
    for name, p in inspect.signature(UNet.__init__).parameters.items():
        if name not in ("self", "activation_bottleneck", "bottleneck_layers") and name not in generator:
            generator[name] = p.default
    diffusion = {
        name: p.default
        for name, p in inspect.signature(Diffusion.__init__).parameters.items()
        if name != "self"
    }
    diffusion.update(sigma_min=cfg.sigma_min, sigma_max=cfg.sigma_max, sigma_data=cfg.sigma_data, rho=cfg.rho)
    torch.manual_seed(seed)
    ae = Autoencoder(frontend, generator, diffusion, scale_factor=1.0)
    randomize(ae.generator, 0.02, seed)
    return ae.eval(), {"frontend": frontend, "generator": generator, "diffusion": diffusion}


def write_release(root: Path, model_hash: str, ae: Any, kwargs: dict[str, dict[str, Any]]) -> list[str]:
    """Write ``{model_hash}_weights/`` as published (weights + three YAML files); return the paths."""
    folder = root / f"{model_hash}_weights"
    folder.mkdir(parents=True, exist_ok=True)
    torch.save(ae.state_dict(), folder / "autoencoder_inference_model_last.pth")
    for part in ("frontend", "generator", "diffusion"):
        (folder / f"{part}_kwargs_last.yaml").write_text(yaml.safe_dump(kwargs[part]))
    return [f"{model_hash}_weights/{name}_last.{'pth' if i == 0 else 'yaml'}" for i, name in enumerate(FILES)]


def populate_hub_cache(
    hub_cache: Path, repo: str, served: Path, files: list[str], commit: str = COMMIT
) -> None:
    """Lay ``files`` of ``served`` out in the hub's cache layout (blobs, snapshots, refs/main)."""
    repo_dir = hub_cache / f"models--{repo.replace('/', '--')}"
    (repo_dir / "refs").mkdir(parents=True, exist_ok=True)
    (repo_dir / "refs" / "main").write_text(commit)
    for name in files:
        data = (served / name).read_bytes()
        blob = repo_dir / "blobs" / hashlib.sha256(data).hexdigest()
        blob.parent.mkdir(parents=True, exist_ok=True)
        blob.write_bytes(data)
        link = repo_dir / "snapshots" / commit / name
        link.parent.mkdir(parents=True, exist_ok=True)
        link.symlink_to(Path("../" * (len(name.split("/")) + 1)) / "blobs" / blob.name)


class FakeHub:
    """Serve the files under ``root`` as the hub repository ``repo`` at ``commit`` (and ``main``)."""

    def __init__(self, root: Path, repo: str = RELEASE_REPO, commit: str = COMMIT) -> None:
        self.root, self.repo, self.commit = root, repo, commit
        self.requests: list[tuple[str, str]] = []
        self._server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), self._handler())
        self.endpoint = f"http://127.0.0.1:{self._server.server_address[1]}"

    def _handler(self) -> type[http.server.BaseHTTPRequestHandler]:
        hub = self

        class Handler(http.server.BaseHTTPRequestHandler):
            def log_message(self, *args: Any) -> None:
                pass

            def do_HEAD(self) -> None:
                self._answer(body=False)

            def do_GET(self) -> None:
                self._answer(body=True)

            def _send(self, code: int, headers: dict[str, str], data: bytes, body: bool) -> None:
                self.send_response(code)
                for k, v in {**headers, "Content-Length": str(len(data))}.items():
                    self.send_header(k, v)
                self.end_headers()
                if body:
                    self.wfile.write(data)

            def _answer(self, body: bool) -> None:
                hub.requests.append((self.command, self.path))
                api = f"/api/models/{hub.repo}/revision/"
                if self.path.startswith(api):
                    info = {"id": hub.repo, "sha": hub.commit}
                    self._send(200, {"Content-Type": "application/json"}, json.dumps(info).encode(), body)
                    return
                prefix = f"/{hub.repo}/resolve/"
                if not self.path.startswith(prefix):
                    self._send(404, {"X-Error-Code": "RepoNotFound"}, b"not found", body)
                    return
                revision, _, name = self.path[len(prefix) :].partition("/")
                if revision not in ("main", hub.commit):
                    self._send(404, {"X-Error-Code": "RevisionNotFound"}, b"no revision", body)
                    return
                path = hub.root / name
                if not path.is_file():
                    headers = {"X-Error-Code": "EntryNotFound", "X-Repo-Commit": hub.commit}
                    self._send(404, headers, b"no entry", body)
                    return
                data = path.read_bytes()
                headers = {
                    "X-Repo-Commit": hub.commit,
                    "ETag": f'"{hashlib.sha256(data).hexdigest()}"',
                    "Content-Type": "application/octet-stream",
                }
                self._send(200, headers, data, body)

        return Handler

    @contextmanager
    def serving(self) -> Iterator[FakeHub]:
        """Run the server in a thread for the duration of the block."""
        thread = threading.Thread(target=self._server.serve_forever, daemon=True)
        thread.start()
        try:
            yield self
        finally:
            self._server.shutdown()
            self._server.server_close()
            thread.join()
