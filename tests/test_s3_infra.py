"""The S3 test infrastructure against real components: moto's server (tests/_s3.py), s3fs and zarr
over it, and the fault proxy (tests/_faultproxy.py) between them.

What s3fs (2026.9, aiobotocore 3.10, botocore 1.43, aiohttp 3.14) survives with its default
retries, measured on one ``cat_file`` (a single GET) of a 200 kB object through the proxy, with
``n`` consecutive faults of one kind and then passes (moto closes every connection after its
response, so per connection and per request come to the same here):

* ``drop`` (closed before any response) and ``cut`` in the status line or headers: retried both
  by botocore and by s3fs; 26 in a row still end in the right bytes (after ~20 s of backoff).
* ``reset`` (RST): retried by botocore, which then raises ``EndpointConnectionError``, which s3fs
  does not retry: 9 in a row are survived, 10 are not.
* ``cut`` in the body (aiohttp's ``ClientPayloadError``): botocore does not retry a body read, s3fs
  does: 5 in a row are survived, 6 are not.
* ``stall``: a read timeout (``ReadTimeoutError``), retried by both, so a stalled server costs about
  ``s3fs retries (5) x botocore attempts x read_timeout`` plus backoffs; bounded only by them.

The tests below assert what holds for every kind with margin (a few faults, then passes: the
right bytes) and that a stalled server fails a read in bounded time when the timeouts are set.
"""

from __future__ import annotations

import http.client
import io
import os
import socket
import time
from typing import TYPE_CHECKING

import numpy as np
import pytest
from _faultproxy import FaultProxy

if TYPE_CHECKING:
    from _s3 import S3Server

# the s3_server and s3_env fixtures (imported here, not by name: that would trip ruff's F811 at every
# test taking them, and importing _s3 before pytest registers it would skip its assert rewriting)
pytest_plugins = ["_s3"]

s3fs = pytest.importorskip("s3fs")

DATA = bytes(range(256)) * 400  # 100 kB


def _fs(**kwargs: object):
    return s3fs.S3FileSystem(skip_instance_cache=True, **kwargs)


# -- the fixtures -------------------------------------------------------------------------------


def test_s3_env_sets_the_standard_variables(s3_server: S3Server, s3_env: str) -> None:
    assert os.environ["AWS_ENDPOINT_URL"] == s3_server.endpoint == f"http://127.0.0.1:{s3_server.port}"
    assert os.environ["AWS_ACCESS_KEY_ID"] == os.environ["AWS_SECRET_ACCESS_KEY"] == "testing"
    assert os.environ["AWS_REGION"] == os.environ["AWS_DEFAULT_REGION"] == "us-east-1"
    assert "AWS_PROFILE" not in os.environ
    assert s3_server.request_counts() == dict.fromkeys(
        ("GET", "PUT", "HEAD", "DELETE", "LIST", "POST", "OTHER"), 0
    )
    assert s3_env in {b["Name"] for b in s3_server.client().list_buckets()["Buckets"]}
    assert s3_server.request_counts()["OTHER"] == 1  # ListBuckets
    proxied = s3_server.env("http://127.0.0.1:1")
    assert proxied["AWS_ENDPOINT_URL"] == "http://127.0.0.1:1"


def test_make_bucket_names_are_fresh(s3_server: S3Server) -> None:
    a, b = s3_server.make_bucket(), s3_server.make_bucket()
    assert a != b
    assert s3_server.make_bucket("lincae-named-bucket") == "lincae-named-bucket"


def test_s3fs_uses_only_the_environment_and_requests_are_counted(s3_server: S3Server, s3_env: str) -> None:
    fs = s3fs.S3FileSystem()  # no endpoint, no credentials: AWS_ENDPOINT_URL and co. only
    fs.pipe_file(f"{s3_env}/dir/obj", DATA)
    assert s3_server.request_counts()["PUT"] == 1
    s3_server.reset_counts()
    assert fs.cat_file(f"{s3_env}/dir/obj") == DATA
    assert s3_server.request_counts()["GET"] == 1
    s3_server.reset_counts()
    assert fs.ls(f"{s3_env}/dir", detail=False, refresh=True) == [f"{s3_env}/dir/obj"]
    counts = s3_server.request_counts()
    assert counts["LIST"] >= 1
    assert counts["GET"] == counts["PUT"] == 0
    # the object is on the server, not in a local cache
    assert s3_server.client().get_object(Bucket=s3_env, Key="dir/obj")["Body"].read() == DATA


def test_request_kinds(s3_server: S3Server, s3_env: str) -> None:
    c = s3_server.client()
    c.put_object(Bucket=s3_env, Key="k", Body=b"x")
    c.head_object(Bucket=s3_env, Key="k")
    c.get_object(Bucket=s3_env, Key="k")
    c.list_objects_v2(Bucket=s3_env, Prefix="k")
    c.list_objects(Bucket=s3_env)
    c.get_bucket_location(Bucket=s3_env)
    c.delete_object(Bucket=s3_env, Key="k")
    c.delete_objects(Bucket=s3_env, Delete={"Objects": [{"Key": "k"}]})
    kinds = [r.kind for r in s3_server.requests()]
    assert kinds == ["PUT", "HEAD", "GET", "LIST", "LIST", "OTHER", "DELETE", "POST"]
    assert s3_server.request_counts() == {
        "GET": 1,
        "PUT": 1,
        "HEAD": 1,
        "DELETE": 1,
        "LIST": 2,
        "POST": 1,
        "OTHER": 1,
    }
    s3_server.reset_counts()
    assert s3_server.requests() == []


def test_moto_honours_conditional_put(s3_server: S3Server, s3_env: str) -> None:
    """``If-None-Match: *`` (create only if absent) is enforced: 412 when the key exists."""
    c = s3_server.client()
    c.put_object(Bucket=s3_env, Key="once", Body=b"1", IfNoneMatch="*")
    with pytest.raises(c.exceptions.ClientError, match="PreconditionFailed"):
        c.put_object(Bucket=s3_env, Key="once", Body=b"2", IfNoneMatch="*")
    assert c.get_object(Bucket=s3_env, Key="once")["Body"].read() == b"1"
    assert [r.status for r in s3_server.requests() if r.kind == "PUT"] == [200, 412]


def test_zarr_over_s3(s3_env: str) -> None:
    zarr = pytest.importorskip("zarr")
    g = zarr.open_group(f"s3://{s3_env}/x.zarr", mode="w")
    a = g.create_array("lat", shape=(10, 4), chunks=(4, 4), dtype="float32")
    a[:] = np.arange(40, dtype="float32").reshape(10, 4)
    g.attrs["note"] = "hello"
    back = zarr.open_group(f"s3://{s3_env}/x.zarr", mode="r")
    np.testing.assert_array_equal(back["lat"][:], np.arange(40, dtype="float32").reshape(10, 4))
    assert back.attrs["note"] == "hello"


def test_missing_moto_skips_or_fails_in_ci(monkeypatch: pytest.MonkeyPatch) -> None:
    import importlib.util

    from _s3 import _require_moto

    real = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec", lambda m, *a: None if m == "moto" else real(m, *a))
    monkeypatch.delenv("CI", raising=False)
    with pytest.raises(pytest.skip.Exception, match=r"pip install -e \.\[s3,test\]"):
        _require_moto()
    monkeypatch.setenv("CI", "true")
    with pytest.raises(pytest.fail.Exception, match="CI is set"):
        _require_moto()


# -- s3fs through the fault proxy ----------------------------------------------------------------


@pytest.mark.parametrize(
    ("kind", "cut_bytes"),
    [("drop", 64), ("reset", 64), ("cut", 64), ("cut", 1000), ("stall", 64)],
    ids=["drop", "reset", "cut-in-headers", "cut-in-body", "stall"],
)
@pytest.mark.parametrize("per", ["connection", "request"])
def test_s3fs_read_survives_a_few_faults(
    s3_server: S3Server, s3_env: str, kind: str, cut_bytes: int, per: str
) -> None:
    s3_server.client().put_object(Bucket=s3_env, Key="obj", Body=DATA)
    faults = 1 if kind == "stall" else 3
    with FaultProxy(s3_server.port, [kind] * faults, per=per, cut_bytes=cut_bytes, stall_s=3) as proxy:
        fs = _fs(endpoint_url=proxy.endpoint, config_kwargs={"read_timeout": 1})
        t0 = time.monotonic()
        assert fs.cat(f"{s3_env}/obj") == DATA
        assert time.monotonic() - t0 < 10  # bounded (a loaded machine adds seconds, not minutes)
        assert proxy.faults == {kind: faults}
        assert proxy.connections >= faults + 1


def test_s3fs_write_and_read_through_a_passing_request_proxy(s3_server: S3Server, s3_env: str) -> None:
    """The per-request mode parses every request and response (PUT bodies, HEAD, listings)."""
    with FaultProxy(s3_server.port, "pass", per="request") as proxy:
        fs = _fs(endpoint_url=proxy.endpoint)
        fs.pipe_file(f"{s3_env}/a/b", DATA)
        assert fs.info(f"{s3_env}/a/b")["size"] == len(DATA)
        assert fs.ls(f"{s3_env}/a", detail=False) == [f"{s3_env}/a/b"]
        assert fs.cat_file(f"{s3_env}/a/b") == DATA
        fs.rm_file(f"{s3_env}/a/b")
        assert proxy.requests >= 5
        assert proxy.connections < proxy.requests  # kept alive
        assert not proxy.faults


def test_boto3_expect_100_continue_through_the_request_proxy(s3_server: S3Server, s3_env: str) -> None:
    """botocore sends file bodies with ``Expect: 100-continue``; the proxy answers it itself."""
    with FaultProxy(s3_server.port, "pass", per="request") as proxy:
        c = s3_server.client(proxy.endpoint)
        c.put_object(Bucket=s3_env, Key="f", Body=io.BytesIO(DATA))
        assert c.get_object(Bucket=s3_env, Key="f")["Body"].read() == DATA
        assert proxy.requests == 2


def test_a_stalled_server_fails_a_read_in_bounded_time(s3_server: S3Server, s3_env: str) -> None:
    s3_server.client().put_object(Bucket=s3_env, Key="obj", Body=b"x")
    with FaultProxy(s3_server.port, "stall", stall_s=30, max_faults=100) as proxy:
        # botocore's "max_attempts" counts retries (2 would make 3 attempts, ~5 s with the backoff);
        # "total_max_attempts" counts the first attempt too
        fs = _fs(
            endpoint_url=proxy.endpoint,
            config_kwargs={"connect_timeout": 1, "read_timeout": 1, "retries": {"total_max_attempts": 2}},
        )
        fs.retries = 1  # s3fs's own retries of timeouts (a class attribute, 5) multiply botocore's
        t0 = time.monotonic()
        with pytest.raises(OSError, match="timeout|timed out|Timeout"):
            fs.cat_file(f"{s3_env}/obj")
        elapsed = time.monotonic() - t0
        assert 1.5 < elapsed < 10  # 2 attempts of 1 s each: bounded, whatever the machine's load
        assert proxy.faults["stall"] == 2
        t0 = time.monotonic()
    assert time.monotonic() - t0 < 1.5  # closing ends the stalls


# -- the proxy's own bounds -----------------------------------------------------------------------

_PING = b"GET / HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n"


def _exchange(port: int, request: bytes = _PING) -> bytes:
    with socket.create_connection(("127.0.0.1", port), timeout=3) as s:
        s.sendall(request)
        out = b""
        try:
            while chunk := s.recv(65536):
                out += chunk
        except ConnectionResetError:
            pass
        return out


def test_max_faults_then_every_connection_passes(s3_server: S3Server) -> None:
    with FaultProxy(s3_server.port, "drop", max_faults=2) as proxy:
        answers = [_exchange(proxy.port) for _ in range(4)]
        assert answers[:2] == [b"", b""]
        assert all(a.startswith(b"HTTP/1.1 200") for a in answers[2:])
        assert proxy.connections == 4
        assert proxy.faults == {"drop": 2}
        assert proxy.log == [(0, "drop"), (1, "drop"), (2, "pass"), (3, "pass")]


def test_plans_as_list_and_callable(s3_server: S3Server) -> None:
    with FaultProxy(s3_server.port, ["pass", "cut"], cut_bytes=12) as proxy:
        assert _exchange(proxy.port).startswith(b"HTTP/1.1 200")
        assert _exchange(proxy.port) == b"HTTP/1.1 200"
        assert _exchange(proxy.port).startswith(b"HTTP/1.1 200")
    with FaultProxy(s3_server.port, lambda n: "drop" if n % 2 else "pass") as proxy:
        assert [bool(_exchange(proxy.port)) for _ in range(4)] == [True, False, True, False]
        assert proxy.faults == {"drop": 2}
    with pytest.raises(ValueError, match="unknown fault kind"):
        FaultProxy(s3_server.port, ["pass", "explode"])


def test_per_request_faults_hit_a_kept_alive_connection(s3_server: S3Server) -> None:
    with FaultProxy(s3_server.port, ["pass", "pass", "drop"], per="request") as proxy:
        conn = http.client.HTTPConnection("127.0.0.1", proxy.port, timeout=3)
        for _ in range(2):
            conn.request("GET", "/")
            resp = conn.getresponse()
            assert resp.status == 200
            resp.read()
        conn.request("GET", "/")
        with pytest.raises((http.client.RemoteDisconnected, ConnectionError)):
            conn.getresponse()
        conn.close()
        assert proxy.connections == 1
        assert proxy.requests == 3
        assert proxy.faults == {"drop": 1}


def test_close_ends_stalls_and_threads_within_a_second(s3_server: S3Server) -> None:
    proxy = FaultProxy(s3_server.port, "stall", stall_s=60)
    clients = [socket.create_connection(("127.0.0.1", proxy.port), timeout=3) for _ in range(3)]
    for c in clients:
        c.sendall(_PING)
    deadline = time.monotonic() + 2
    while proxy.faults["stall"] < 3 and time.monotonic() < deadline:
        time.sleep(0.01)
    assert proxy.faults["stall"] == 3
    t0 = time.monotonic()
    proxy.close()
    assert time.monotonic() - t0 < 1.2
    assert proxy.alive_threads() == 0
    for c in clients:
        assert c.recv(100) == b""  # closed, never answered
        c.close()
    with pytest.raises(ConnectionRefusedError):
        socket.create_connection(("127.0.0.1", proxy.port), timeout=1).close()


def test_a_silent_client_times_out(s3_server: S3Server) -> None:
    with FaultProxy(s3_server.port, "drop", io_timeout=0.3) as proxy:
        silent = socket.create_connection(("127.0.0.1", proxy.port), timeout=3)
        t0 = time.monotonic()
        assert silent.recv(100) == b""
        assert time.monotonic() - t0 < 1
        silent.close()
        deadline = time.monotonic() + 1
        while proxy.alive_threads() > 1 and time.monotonic() < deadline:  # the accept loop stays
            time.sleep(0.01)
        assert proxy.alive_threads() == 1
