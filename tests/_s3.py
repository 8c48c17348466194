"""A real S3 API server on 127.0.0.1 for tests: moto's server mode in a subprocess.

Use the fixtures from any test module by naming this module as a plugin (helpers in tests/ are
imported by module name, as ``_latent_stores`` and ``_browser`` are; pytest puts tests/ on
``sys.path``)::

    pytest_plugins = ["_s3"]  # the s3_server and s3_env fixtures


    def test_roundtrip(s3_env):  # s3_env is a fresh, empty bucket's name
        url = f"s3://{s3_env}/a.zarr"

``from _s3 import s3_env, s3_server  # noqa: F401`` works too, but ruff then reports F811 at every
test that takes them as arguments (the noqa on the import does not cover those). For annotations,
import :class:`S3Server` under ``if TYPE_CHECKING:``: importing this module before pytest
registers it as a plugin leaves its asserts un-rewritten (a PytestAssertRewriteWarning).

* ``s3_server`` (session): the running server, an :class:`S3Server` (``.endpoint``, ``.port``,
  :meth:`~S3Server.make_bucket`, :meth:`~S3Server.env`, :meth:`~S3Server.request_counts`,
  :meth:`~S3Server.reset_counts`, :meth:`~S3Server.requests`, :meth:`~S3Server.client`).
* ``s3_env`` (function): sets the standard AWS variables (``AWS_ENDPOINT_URL`` and test
  credentials) in ``os.environ``, removes those that could point a client elsewhere
  (``AWS_PROFILE``, ``AWS_ENDPOINT_URL_S3``, ...), creates a fresh bucket, resets the request
  counts, and yields the bucket's name. ``AWS_CONFIG_FILE`` and ``AWS_SHARED_CREDENTIALS_FILE``
  point at ``os.devnull`` (no ~/.aws settings). s3fs's instance cache is cleared before and after
  (s3fs caches filesystems by their arguments, not by the environment).

moto's server is werkzeug's development server: it answers every request ``Connection: close``, so
clients never reuse a connection with it (``_faultproxy.FaultProxy(per="request")`` keeps the
client's side alive). It enforces ``If-None-Match: *`` on PUT (412 PreconditionFailed).

Without moto (``pip install -e .[s3,test]``) the fixtures skip, except where ``CI`` is set in the
environment: CI installs moto, so there they fail.

Request counts come from the server's access log (werkzeug's, on its stderr, which goes to a
file): lines such as ``127.0.0.1 - - [07/Dec/2026 20:07:15] "GET /bucket/key HTTP/1.1" 200 -``. A
line is written before the response is sent, so a count read after a call returns includes it.
"""

from __future__ import annotations

import importlib.util
import os
import re
import socket
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import parse_qsl, unquote, urlsplit

import pytest

START_TIMEOUT_S = 20.0
REGION = "us-east-1"
CREDENTIALS = {"AWS_ACCESS_KEY_ID": "testing", "AWS_SECRET_ACCESS_KEY": "testing"}

# Variables that could send a client to another endpoint or other credentials than the test ones;
# s3_env removes them (a subprocess given env() should start from a copy without them too).
UNSET_VARS = (
    "AWS_PROFILE",
    "AWS_DEFAULT_PROFILE",
    "AWS_SESSION_TOKEN",
    "AWS_SECURITY_TOKEN",
    "AWS_ENDPOINT_URL_S3",
    "AWS_ROLE_ARN",
    "AWS_WEB_IDENTITY_TOKEN_FILE",
    "AWS_CONTAINER_CREDENTIALS_RELATIVE_URI",
    "AWS_CONTAINER_CREDENTIALS_FULL_URI",
)

# Query parameters of ListObjects(V2) / ListObjectVersions on a bucket; a GET on a bucket with
# any other parameter (?location, ?versioning, ?acl, ...) is counted as OTHER.
_LIST_PARAMS = {
    "list-type",
    "prefix",
    "delimiter",
    "encoding-type",
    "max-keys",
    "marker",
    "continuation-token",
    "start-after",
    "fetch-owner",
    "versions",
    "key-marker",
    "version-id-marker",
}
_LOG_LINE = re.compile(r'"(?P<method>[A-Z]+) (?P<target>\S+) HTTP/[\d.]+" (?P<status>\d{3})')
COUNT_KINDS = ("GET", "PUT", "HEAD", "DELETE", "LIST", "POST", "OTHER")


def _require_moto() -> None:
    """Skip (fail where ``CI`` is set) unless moto's server mode and boto3 can be imported."""
    missing = [m for m in ("moto", "boto3", "flask", "flask_cors") if importlib.util.find_spec(m) is None]
    if not missing:
        return
    msg = (
        f"the S3 tests need moto's server mode and boto3 ({', '.join(missing)} not installed): "
        "pip install -e .[s3,test]"
    )
    if os.environ.get("CI"):
        pytest.fail(f"{msg} (CI is set, so this fails instead of skipping)", pytrace=False)
    pytest.skip(msg)


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@dataclass(frozen=True)
class Request:
    """One request from the server's access log."""

    method: str
    path: str  # unquoted, without the query
    query: dict[str, str]
    status: int

    @property
    def bucket(self) -> str:
        return self.path.lstrip("/").split("/", 1)[0]

    @property
    def key(self) -> str:
        parts = self.path.lstrip("/").split("/", 1)
        return parts[1] if len(parts) > 1 else ""

    @property
    def kind(self) -> str:
        """GET, PUT, HEAD, DELETE (one object), LIST, POST (multipart uploads, batch deletes:
        ``POST /bucket?delete``) or OTHER (ListBuckets, bucket sub-resources such as ?location)."""
        if self.method == "GET":
            if not self.bucket:
                return "OTHER"  # ListBuckets
            if "list-type" in self.query or (not self.key and set(self.query) <= _LIST_PARAMS):
                return "LIST"
            return "GET" if self.key else "OTHER"
        return self.method if self.method in COUNT_KINDS else "OTHER"


class S3Server:
    """A moto server subprocess (see the module doc); made by the ``s3_server`` fixture."""

    def __init__(self, process: subprocess.Popen[bytes], port: int, log_path: Path) -> None:
        self.process = process
        self.port = port
        self.endpoint = f"http://127.0.0.1:{port}"
        self.log_path = log_path
        self._offset = 0
        self._client: Any = None

    def env(self, endpoint: str | None = None) -> dict[str, str]:
        """The AWS variables that point a client at this server (or at ``endpoint``, such as a
        fault proxy in front of it), with the test credentials and region."""
        return {
            "AWS_ENDPOINT_URL": endpoint or self.endpoint,
            **CREDENTIALS,
            "AWS_REGION": REGION,
            "AWS_DEFAULT_REGION": REGION,
            "AWS_EC2_METADATA_DISABLED": "true",  # never probe the instance metadata service
        }

    def client(self, endpoint: str | None = None) -> Any:
        """A boto3 S3 client for this server (or ``endpoint``), with explicit arguments."""
        import boto3

        if endpoint is None and self._client is not None:
            return self._client
        c = boto3.session.Session().client(
            "s3",
            endpoint_url=endpoint or self.endpoint,
            aws_access_key_id=CREDENTIALS["AWS_ACCESS_KEY_ID"],
            aws_secret_access_key=CREDENTIALS["AWS_SECRET_ACCESS_KEY"],
            region_name=REGION,
        )
        if endpoint is None:
            self._client = c
        return c

    def make_bucket(self, name: str | None = None) -> str:
        """Create a bucket (a fresh, uniquely named one by default) and return its name."""
        name = name or f"lincae-test-{uuid.uuid4().hex[:16]}"
        self.client().create_bucket(Bucket=name)
        return name

    def _read_new(self, advance: bool) -> list[str]:
        with open(self.log_path, "rb") as f:
            f.seek(self._offset)
            data = f.read()
        end = data.rfind(b"\n") + 1  # complete lines only
        if advance:
            self._offset += end
        return data[:end].decode("utf-8", "replace").splitlines()

    def requests(self) -> list[Request]:
        """The requests the server has logged since the last :meth:`reset_counts`, in order."""
        out = []
        for line in self._read_new(advance=False):
            if m := _LOG_LINE.search(line):
                target = urlsplit(m["target"])
                query = dict(parse_qsl(target.query, keep_blank_values=True))
                out.append(Request(m["method"], unquote(target.path), query, int(m["status"])))
        return out

    def request_counts(self) -> dict[str, int]:
        """Requests since the last :meth:`reset_counts` by :attr:`Request.kind`: every key of
        ``COUNT_KINDS`` is present. Failed requests (4xx, 5xx) are counted too."""
        counts = dict.fromkeys(COUNT_KINDS, 0)
        for r in self.requests():
            counts[r.kind] += 1
        return counts

    def reset_counts(self) -> None:
        """Start counting from now."""
        self._read_new(advance=True)

    def log_text(self) -> str:
        return self.log_path.read_text("utf-8", "replace")

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(5)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(5)


def _start(log_path: Path) -> S3Server:
    """Start moto's server on a free port and wait (at most START_TIMEOUT_S) until it answers."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("AWS_")}
    env["PYTHONUNBUFFERED"] = "1"
    for _attempt in range(3):  # the free port may be taken before moto binds it
        port = _free_port()
        with open(log_path, "wb") as log:
            process = subprocess.Popen(
                [sys.executable, "-m", "moto.server", "-H", "127.0.0.1", "-p", str(port)],
                stdout=log,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
                env=env,
            )
        server = S3Server(process, port, log_path)
        deadline = time.monotonic() + START_TIMEOUT_S
        while time.monotonic() < deadline and process.poll() is None:
            try:
                with urllib.request.urlopen(server.endpoint + "/", timeout=1):
                    pass
            except urllib.error.HTTPError:
                pass  # it answered HTTP
            except OSError:
                time.sleep(0.1)
                continue
            server.reset_counts()
            return server
        server.stop()
        text = server.log_text()
        if "in use" not in text:
            break
    raise RuntimeError(
        f"moto's S3 server did not answer on 127.0.0.1:{port} within {START_TIMEOUT_S:.0f} s "
        f"(exit status {process.poll()}); its output:\n{text[-4000:]}"
    )


@pytest.fixture(scope="session")
def s3_server() -> Iterator[S3Server]:
    """moto's S3 server on 127.0.0.1, started once per test session (see the module doc)."""
    _require_moto()
    with tempfile.TemporaryDirectory(prefix="lincae-moto-") as tmp:
        try:
            server = _start(Path(tmp) / "moto.log")
        except RuntimeError as exc:
            pytest.fail(str(exc), pytrace=False)
        try:
            yield server
        finally:
            server.stop()


def clear_s3fs_cache() -> None:
    """Forget s3fs's cached filesystems (they keep the endpoint and credentials they were made with)."""
    if importlib.util.find_spec("s3fs") is not None:
        import s3fs

        s3fs.S3FileSystem.clear_instance_cache()


@pytest.fixture
def s3_env(s3_server: S3Server, monkeypatch: pytest.MonkeyPatch) -> Iterator[str]:
    """The AWS variables set for ``s3_server`` and a fresh bucket; yields the bucket's name."""
    for var in UNSET_VARS:
        monkeypatch.delenv(var, raising=False)
    for var, value in s3_server.env().items():
        monkeypatch.setenv(var, value)
    # no ~/.aws/config or credentials file can add settings (an endpoint, a profile's keys)
    monkeypatch.setenv("AWS_CONFIG_FILE", os.devnull)
    monkeypatch.setenv("AWS_SHARED_CREDENTIALS_FILE", os.devnull)
    clear_s3fs_cache()
    bucket = s3_server.make_bucket()
    s3_server.reset_counts()
    try:
        yield bucket
    finally:
        clear_s3fs_cache()
