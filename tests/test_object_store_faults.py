"""Network faults between lincae and object storage (issue 23, item 5): the fault proxy
(tests/_faultproxy.py) on 127.0.0.1 between the installed ``lincae`` console script and the S3
server (tests/_s3.py) drops, resets, stalls and cuts requests during ops and encodes.

* Transient faults, a few of every kind spread over the run and aimed at the data requests (latent
  chunks, audio objects; a cut GET ends mid-body, a cut PUT mid-headers, after the server did the
  write): retried with backoff, exit 0, and the output is byte-identical to a clean run.
* Persistent faults (every request fails from some point on, the endpoint goes away, or the
  library's objects become unreachable): exit 1 with one line on stderr naming the URL and what to
  do; nothing taken for finished that was not written (an op's output is not a store, an encode's
  done tracks hold their latents, no input is blamed for the network); and the same command run
  again on a working network finishes the job, equal to a clean run.

Faults are decided per request from the request itself (:class:`RequestFaults`: method and path),
so that they land on the requests meant whatever the number of metadata requests before them.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import shutil
import subprocess
import sys
import threading
from collections import Counter
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any
from urllib.parse import unquote, urlsplit

import _faultproxy
import numpy as np
import pytest
from _audio import write_library
from _faultproxy import FaultProxy

from lincae_core.errors import StoreFormatError
from lincae_core.store import LatentStore
from lincae_core.store.layout import STATUS_DONE, STATUS_FAILED, STATUS_PLANNED
from lincae_core.store.synthetic import synthetic_store

if TYPE_CHECKING:
    from _s3 import S3Server

# the s3_server and s3_env fixtures (see tests/_s3.py on why not imported by name)
pytest_plugins = ["_s3"]

s3fs = pytest.importorskip("s3fs")

LINCAE = shutil.which("lincae") or f"{sys.executable} -m lincae_cli"

# Transient faults: a stalled request outlives the read timeout (2 s), so it costs one timeout.
TRANSIENT_OPTIONS = {"config_kwargs": {"read_timeout": 2, "connect_timeout": 2}}
STALL_S = 3.0
# Persistent faults: lincae's retries (standard mode, max_attempts 8) cut to one retry, so that a
# request that can never succeed fails in about a second; the option dict merges over lincae's.
PERSISTENT_OPTIONS = {
    "config_kwargs": {
        "retries": {"max_attempts": 1, "mode": "standard"},
        "read_timeout": 2,
        "connect_timeout": 1,
    }
}
# What the one line of a storage failure says (lincae_core.location.storage_errors)
STORAGE_LINE = re.compile(r"cannot reach the object store|could not \w+")

ENCODE_ARGS = ("--chunk-frames", "4", "--batch-size", "4")  # several objects a track
OP_TRACKS = [(f"t{i}", 40 + 37 * i) for i in range(8)]  # 22 chunks of 64 frames


# -- a proxy that decides from the request ----------------------------------------------------------

_deciding = threading.local()  # the request line a proxy thread is deciding on


@pytest.fixture(autouse=True)
def proxy_sees_requests(monkeypatch: pytest.MonkeyPatch) -> None:
    """Let :class:`RequestFaults` see each request before the plan decides on it (the per-request
    proxy reads a request with ``_faultproxy._read_request``, then consults the plan)."""
    real = _faultproxy._read_request

    def read_request(r: Any, client: Any) -> Any:
        req = real(r, client)
        _deciding.start = req.start
        return req

    monkeypatch.setattr(_faultproxy, "_read_request", read_request)


def _method_path(start: str) -> tuple[str, str]:
    method, target = start.split()[:2]
    return method, unquote(urlsplit(target).path)


Rule = Callable[[str, str], str]  # (method, path) -> fault kind


class RequestFaults(FaultProxy):
    """A per-request :class:`FaultProxy` whose plan is ``rule(method, path) -> kind``.

    A ``"cut"`` here depends on the request: a GET's response is cut in the middle of its body, any
    other response in the middle of its status line and headers (the server did the request; the
    client never hears of it). ``hits`` lists every fault as ``(kind, method, path)``, with kind
    ``"cut-body"`` or ``"cut-head"`` for cuts. It sees each request through the
    ``proxy_sees_requests`` fixture and cuts with the proxy module's own HTTP reader.
    """

    def __init__(self, upstream_port: int, rule: Rule, **kwargs: Any) -> None:
        self.rule = rule
        self.hits: list[tuple[str, str, str]] = []
        super().__init__(upstream_port, self._plan, per="request", **kwargs)

    def _plan(self, n: int) -> str:
        start = getattr(_deciding, "start", None)
        if start is None:
            raise RuntimeError("RequestFaults needs the proxy_sees_requests fixture")
        return self.rule(*_method_path(start))

    def _fault(self, kind: str, client: Any, req: Any, upstream: list[Any]) -> None:
        method, path = _method_path(req.start)
        if kind != "cut":
            with self._lock:
                self.hits.append((kind, method, path))
            super()._fault(kind, client, req, upstream)
            return
        with self._lock:
            self.requests += 1
        up = self._connect(upstream)
        up.sendall(req.encode())
        resp, _ = _faultproxy._read_response(_faultproxy._Reader(up), method)
        head = _faultproxy._Message(resp.start, resp.headers).encode()
        body = resp.body
        if method == "GET" and body:
            cut, sent = "cut-body", head + body[: len(body) // 2]
        else:
            cut, sent = "cut-head", head[: len(head) // 2]
        with self._lock:
            self.hits.append((cut, method, path))
        client.sendall(sent)


def is_data(method: str, path: str) -> bool:
    """A latent chunk or an audio object read or written."""
    return method in ("GET", "PUT") and ("/latents/c" in path or path.endswith(".wav"))


class Transient:
    """Fault every :attr:`EVERY`-th request of each class (data reads, data writes, other
    requests) with the next kind of that class in :attr:`KINDS`, as many faults as kinds listed (12
    in all, one stall: a stall costs a read timeout). A retry may be faulted again, but seldom:
    every request gets through well within lincae's default retries."""

    KINDS = {
        "read": ("cut", "drop", "reset", "cut"),
        "write": ("drop", "cut", "stall", "reset", "cut"),
        "other": ("reset", "drop", "cut"),
    }
    EVERY = {"read": 3, "write": 3, "other": 25}

    def __init__(self) -> None:
        self.seen = Counter[str]()
        self.faulted = Counter[str]()

    def __call__(self, method: str, path: str) -> str:
        cls = ("read" if method == "GET" else "write") if is_data(method, path) else "other"
        self.seen[cls] += 1
        kinds = self.KINDS[cls]
        if self.seen[cls] % self.EVERY[cls] or self.faulted[cls] >= len(kinds):
            return "pass"
        self.faulted[cls] += 1
        return kinds[self.faulted[cls] - 1]


class DeadAfter:
    """Pass until ``after`` requests matching ``trigger`` were seen, then fail every request with
    ``kind`` for good; ``on_dead`` is called once then (from another thread: the proxy's plan runs
    under its lock)."""

    def __init__(
        self,
        trigger: Callable[[str, str], bool],
        after: int,
        kind: str = "reset",
        on_dead: Callable[[], None] | None = None,
    ) -> None:
        self.trigger, self.after, self.kind, self.on_dead = trigger, after, kind, on_dead
        self.count = 0
        self.dead = False

    def __call__(self, method: str, path: str) -> str:
        if not self.dead and self.trigger(method, path):
            self.count += 1
            if self.count >= self.after:
                self.dead = True
                if self.on_dead is not None:
                    threading.Thread(target=self.on_dead, daemon=True).start()
        return self.kind if self.dead else "pass"


class LibraryOutage:
    """Every request on an object under ``/{bucket}/{prefix}/`` fails (reset) once ``start`` says
    so, and from then on; every other request passes (the store stays reachable)."""

    def __init__(self, bucket: str, prefix: str, start: Callable[[str, str], bool]) -> None:
        self.under, self.start = f"/{bucket}/{prefix}/", start
        self.out = False

    def __call__(self, method: str, path: str) -> str:
        self.out = self.out or self.start(method, path)
        return "reset" if self.out and path.startswith(self.under) else "pass"


# -- helpers -------------------------------------------------------------------------------------


def lincae(*args: str, env: dict[str, str]) -> subprocess.CompletedProcess:
    """Run the installed console script (its exit status is for the caller to check)."""
    return subprocess.run([*LINCAE.split(), *args], env=env, capture_output=True, text=True, timeout=300)


def run_env(server: S3Server, endpoint: str | None = None, options: dict | None = None) -> dict[str, str]:
    env = {**os.environ, **server.env(endpoint)}
    env.pop("LINCAE_STORAGE_OPTIONS", None)
    if options is not None:
        env["LINCAE_STORAGE_OPTIONS"] = json.dumps(options)
    return env


def shown(proc: subprocess.CompletedProcess) -> str:
    """A command's exit status, stdout and stderr without the traceback bodies (their last lines,
    the exceptions, are kept)."""
    lines = proc.stderr.splitlines()
    kept = [x for x in lines if x and not x[0].isspace() and not x.startswith("Traceback (most")]
    more = f"\n({len(kept) - 40} lines more)" if len(kept) > 40 else ""
    text = "\n".join(kept[:40])
    return f"exit {proc.returncode}\nstdout: {proc.stdout}\nstderr ({len(lines)} lines):\n{text}{more}"


def bucket_digest(prefix: str) -> dict[str, str]:
    """SHA-256 of every object of a bucket store but its root (ids, lineage and times differ)."""
    fs = s3fs.S3FileSystem()
    fs.invalidate_cache()
    return {
        k[len(prefix) :]: hashlib.sha256(fs.cat_file(k)).hexdigest()
        for k in sorted(fs.find(prefix))
        if k != f"{prefix}/zarr.json"
    }


def same_column(a: np.ndarray, b: np.ndarray) -> bool:
    if a.dtype.kind == "f" and b.dtype.kind == "f":
        return a.dtype == b.dtype and np.array_equal(a, b, equal_nan=True)
    return a.dtype == b.dtype and np.array_equal(a, b)


def assert_same_store(got: str | Path, want: str | Path) -> None:
    """The same table and byte-identical latents (track by track and the whole array)."""
    g, w = LatentStore.open(got), LatentStore.open(want)
    tg, tw = g.table(), w.table()
    assert set(tg) == set(tw), (got, sorted(tg), sorted(tw))
    for col in tw:
        assert same_column(tg[col], tw[col]), (got, col, tg[col], tw[col])
    assert g.latents.dtype == w.latents.dtype
    assert g.total_frames == w.total_frames
    assert g.latents.read(0, g.total_frames).tobytes() == w.latents.read(0, w.total_frames).tobytes()
    for k in tw["key"].tolist():
        assert g.read_track(k).tobytes() == w.read_track(k).tobytes(), (got, k)
    assert g.ledger() == w.ledger() == []


def error_line(proc: subprocess.CompletedProcess, *urls: str) -> str:
    """The ``Error:`` line of a failed command: it names one of ``urls`` and says what to do."""
    errors = [line for line in proc.stderr.splitlines() if line.startswith("Error: ")]
    assert len(errors) == 1, shown(proc)
    line = errors[0]
    assert any(u in line for u in urls), (urls, line)
    assert STORAGE_LINE.search(line), f"not a storage failure: {line}"
    assert "again" in line, f"does not say what to do: {line}"
    return line


def assert_one_line(proc: subprocess.CompletedProcess) -> None:
    """With -q, stderr holds the error and nothing else: no traceback, no asyncio noise."""
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1, f"{len(lines)} lines on stderr, not one:\n" + "\n".join(lines[:40])
    assert lines[0].startswith("Error: ")


@pytest.fixture(scope="module")
def library(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return write_library(tmp_path_factory.mktemp("faults") / "library")


@pytest.fixture(scope="module")
def reference(library: Path, micro_ckpt: str, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The library encoded on a local disk, no network: what every faulted encode must equal."""
    out = tmp_path_factory.mktemp("faults-ref") / "ref.zarr"
    proc = lincae("encode", str(library), str(out), "-c", micro_ckpt, *ENCODE_ARGS, env=dict(os.environ))
    assert proc.returncode == 0, shown(proc)
    return out


def upload_library(library: Path, bucket: str) -> str:
    s3fs.S3FileSystem().put(str(library) + "/", f"{bucket}/lib/", recursive=True)
    return f"s3://{bucket}/lib"


# -- transient faults ----------------------------------------------------------------------------


@pytest.mark.slow
@pytest.mark.parametrize("op", ["gain", "mix"])
def test_an_op_survives_transient_faults(s3_server: S3Server, s3_env: str, op: str) -> None:
    """Drops, resets, a stall and cuts (mid-body on chunk reads, mid-headers on chunk writes) all
    through the op: exit 0 and the output's objects are byte-identical to a clean run's."""
    from lincae_core.ops import gain_store, mix_stores

    a, b = f"s3://{s3_env}/a.zarr", f"s3://{s3_env}/b.zarr"
    synthetic_store(a, OP_TRACKS, chunk_frames=64)
    if op == "gain":
        args = ["gain", a, "--gain", "0.5"]
        gain_store(a, f"s3://{s3_env}/clean.zarr", 0.5)
    else:
        synthetic_store(b, OP_TRACKS, seed=1, chunk_frames=64)
        args = ["mix", a, b, "--gain", "0.5", "--gain", "2.0"]
        mix_stores([a, b], f"s3://{s3_env}/clean.zarr", [0.5, 2.0])
    out = f"s3://{s3_env}/out.zarr"
    rule = Transient()
    with RequestFaults(s3_server.port, rule, stall_s=STALL_S, max_faults=20) as proxy:
        proc = lincae(*args, "-o", out, env=run_env(s3_server, proxy.endpoint, TRANSIENT_OPTIONS))
        hits = list(proxy.hits)
    assert proc.returncode == 0, shown(proc)
    assert proc.stdout.strip() == out
    kinds = Counter(k for k, _, _ in hits)
    assert {"drop", "reset", "stall", "cut-body", "cut-head"} <= set(kinds), hits
    data = [(k, m, p) for k, m, p in hits if is_data(m, p)]
    assert any(k == "cut-body" and m == "GET" for k, m, _ in data), hits  # a chunk read cut mid-body
    assert any(m == "PUT" for _, m, _ in data), hits  # a chunk write faulted
    # every object but the root (store id, lineage) byte for byte: latents, table, sources
    assert bucket_digest(f"{s3_env}/out.zarr") == bucket_digest(f"{s3_env}/clean.zarr")
    assert LatentStore.open(out).is_complete()  # committed


@pytest.mark.slow
@pytest.mark.parametrize("where", ["local-library", "bucket-library"])
def test_an_encode_survives_transient_faults(
    s3_server: S3Server, s3_env: str, library: Path, reference: Path, micro_ckpt: str, where: str
) -> None:
    """Faults on the chunk writes (and, for a library in the bucket, on the audio reads: planning
    probes and encoding streams): exit 0 and the store equals an encode on a local disk."""
    src = str(library) if where == "local-library" else upload_library(library, s3_env)
    out = f"s3://{s3_env}/x.zarr"
    rule = Transient()
    with RequestFaults(s3_server.port, rule, stall_s=STALL_S, max_faults=20) as proxy:
        env = run_env(s3_server, proxy.endpoint, TRANSIENT_OPTIONS)
        proc = lincae("encode", src, out, "-c", micro_ckpt, *ENCODE_ARGS, env=env)
        hits = list(proxy.hits)
    assert proc.returncode == 0, shown(proc)
    assert proc.stdout.strip() == out
    kinds = Counter(k for k, _, _ in hits)
    assert {"drop", "reset", "stall"} <= set(kinds), hits
    assert any(m == "PUT" and "/latents/c" in p for _, m, p in hits), hits
    if where == "bucket-library":
        assert any(k == "cut-body" and p.endswith(".wav") for k, _, p in hits), hits
    assert_same_store(out, reference)


# -- persistent faults ---------------------------------------------------------------------------


@pytest.mark.slow
def test_an_op_cut_off_for_good_fails_in_one_line_and_leaves_no_store(
    s3_server: S3Server, s3_env: str
) -> None:
    """Every request fails from the 5th chunk write of the output on: exit 1, one line naming the
    URL; the output is not taken for a store; the same command run again writes it whole."""
    from lincae_core.ops import gain_store

    a, out = f"s3://{s3_env}/a.zarr", f"s3://{s3_env}/g.zarr"
    synthetic_store(a, OP_TRACKS, chunk_frames=64)
    gain_store(a, f"s3://{s3_env}/clean.zarr", 0.5)
    rule = DeadAfter(lambda m, p: m == "PUT" and p.startswith(f"/{s3_env}/g.zarr/latents/c"), after=5)
    args = ("gain", a, "--gain", "0.5", "-o", out)
    with RequestFaults(s3_server.port, rule, max_faults=10_000) as proxy:
        proc = lincae(*args, "-q", env=run_env(s3_server, proxy.endpoint, PERSISTENT_OPTIONS))
        assert rule.dead
        assert proxy.faults["reset"] > 0
    assert proc.returncode == 1, shown(proc)
    assert proc.stdout == ""
    assert not is_store(out), "what the failed op left is taken for a store"  # 'incomplete' or nothing
    again = lincae(*args, env=run_env(s3_server))
    assert again.returncode == 0, shown(again)
    assert bucket_digest(f"{s3_env}/g.zarr") == bucket_digest(f"{s3_env}/clean.zarr")
    assert_same_store(out, f"s3://{s3_env}/clean.zarr")
    error_line(proc, out, a)
    assert_one_line(proc)


def is_store(url: str) -> bool:
    """True when ``url`` opens as a lincae store (a committed one)."""
    try:
        LatentStore.open(url)
    except StoreFormatError:
        return False
    return True


def left_behind(out: str) -> str:
    """What a failed encode left at ``out``, for assertion messages."""
    try:
        s = LatentStore.open(out)
    except StoreFormatError as exc:
        return f"\n{out}: {exc}"
    names = {STATUS_PLANNED: "planned", STATUS_DONE: "done", STATUS_FAILED: "failed"}
    rows = [f"{k}: {names[int(st)]}" for k, st in zip(s.keys(), s.table()["status"], strict=True)]
    ledger = [f"{r.get('key')}: {r.get('reason', r)}" for r in s.ledger()]
    return f"\n{out} holds:\n" + "\n".join(rows) + "\nledger:\n" + "\n".join(ledger)


def check_encode_left(out: str, reference: Path) -> LatentStore:
    """What a failed encode left: no track failed or in the ledger, and every done track holds
    exactly the latents of the clean encode (nothing marked done that was not written)."""
    s, ref = LatentStore.open(out), LatentStore.open(reference)
    status = s.table()["status"]
    assert s.keys() == ref.keys()
    assert not (status == STATUS_FAILED).any(), (status, s.ledger())
    assert s.ledger() == []
    for k, st in zip(s.keys(), status.tolist(), strict=True):
        if st == STATUS_DONE:
            assert s.read_track(k).tobytes() == ref.read_track(k).tobytes(), f"{k} is done but not written"
    return s


@pytest.mark.slow
def test_an_encode_whose_store_goes_away_fails_in_one_line_and_resumes(
    s3_server: S3Server, s3_env: str, library: Path, reference: Path, micro_ckpt: str
) -> None:
    """The endpoint goes away (the proxy closes) after the 6th chunk write: exit 1 with one line
    naming the store; its done tracks hold their latents; the same command resumes it to the clean
    result."""
    out = f"s3://{s3_env}/x.zarr"
    args = ("encode", str(library), out, "-c", micro_ckpt, *ENCODE_ARGS)
    rule = DeadAfter(lambda m, p: m == "PUT" and p.startswith(f"/{s3_env}/x.zarr/latents/c"), after=6)
    with RequestFaults(s3_server.port, rule, max_faults=10_000) as proxy:
        rule.on_dead = proxy.close  # the endpoint refuses connections from then on
        proc = lincae(*args, "-q", env=run_env(s3_server, proxy.endpoint, PERSISTENT_OPTIONS))
        assert rule.dead
    assert proc.returncode == 1, shown(proc)
    assert proc.stdout == ""
    left = check_encode_left(out, reference)
    status = left.table()["status"]
    assert (status == STATUS_PLANNED).any(), "the fault came after the last track"
    assert (status == STATUS_DONE).any(), "no track was done before the fault: nothing checked"
    again = lincae(*args, env=run_env(s3_server))
    assert again.returncode == 0, shown(again)
    assert_same_store(out, reference)
    error_line(proc, out)
    assert_one_line(proc)


@pytest.mark.slow
@pytest.mark.parametrize("when", ["planning", "encoding"])
def test_an_encode_whose_library_is_unreachable_blames_the_network_not_the_files(
    s3_server: S3Server, s3_env: str, library: Path, reference: Path, micro_ckpt: str, when: str
) -> None:
    """The audio objects in the bucket become unreachable for good (the store stays reachable),
    while the headers are probed or once the store is planned: exit 1 with one line naming the
    library URL; no file recorded as failed or unreadable (it is the network); the same command
    run again with the network back encodes every file, equal to the clean encode."""
    src = upload_library(library, s3_env)
    out = f"s3://{s3_env}/x.zarr"
    args = ("encode", src, out, "-c", micro_ckpt, *ENCODE_ARGS)
    audio_reads = [0]

    def start(method: str, path: str) -> bool:
        if when == "planning":  # from the 3rd audio read on (planning reads every header first)
            audio_reads[0] += method == "GET" and path.endswith(".wav")
            return audio_reads[0] >= 3
        return method == "PUT" and path == f"/{s3_env}/x.zarr/zarr.json"  # the plan's commit

    rule = LibraryOutage(s3_env, "lib", start)
    with RequestFaults(s3_server.port, rule, max_faults=10_000) as proxy:
        proc = lincae(*args, "-q", env=run_env(s3_server, proxy.endpoint, PERSISTENT_OPTIONS))
        assert rule.out
        assert proxy.faults["reset"] > 0
    assert proc.returncode == 1, shown(proc) + left_behind(out)
    assert proc.stdout == ""
    if is_store(out):  # planned before the outage (else nothing was committed)
        check_encode_left(out, reference)
    again = lincae(*args, env=run_env(s3_server))
    assert again.returncode == 0, shown(again)
    assert_same_store(out, reference)
    error_line(proc, src)
    assert_one_line(proc)
