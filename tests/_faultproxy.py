"""A small threaded TCP proxy on 127.0.0.1 that injects network faults between a client and an
HTTP server (the tests' moto S3 server, :mod:`_s3`), to check how clients behave when the network
misbehaves.

``FaultProxy(upstream_port, plan)`` listens on a free port (``.port``, ``.endpoint``) and applies
one of these kinds to each *unit* of traffic:

* ``"pass"``: forward both ways, untouched.
* ``"drop"``: read the request, then close the client's socket without answering (the client sees
  the connection closed before any response: a clean FIN).
* ``"reset"``: read the request, then abort the client's socket (an RST: "connection reset").
* ``"stall"``: read the request and hold the connection open without answering for ``stall_s``
  seconds, then close it.
* ``"cut"``: forward the request, forward only the first ``cut_bytes`` bytes of the response
  (status line and headers included), then close both sockets. A response shorter than
  ``cut_bytes`` arrives whole; the connection is closed after it all the same.

The unit is chosen by ``per``:

* ``per="connection"`` (the default): the plan is consulted once per accepted TCP connection, and a
  passed connection is a plain byte pump. HTTP clients keep connections alive and send many
  requests over one, so a fault only hits the first request of a new connection; a client that
  reuses a passed connection never sees a fault again.
* ``per="request"``: the proxy parses HTTP/1.1 (``Content-Length`` and chunked bodies, HEAD and
  1xx/204/304 responses without bodies) and consults the plan for every request, also on a
  kept-alive connection. A faulted request closes its connection (the client is waiting on it);
  passed requests are forwarded over one upstream connection per client connection, reopened
  when the upstream closes it: the client's connection stays alive even behind a server that
  closes every connection (moto's werkzeug server answers every request ``Connection: close``, so
  behind it ``per="connection"`` in effect faults requests, and only this mode lets a client reuse
  a connection as it would with a real object store). A request
  sent with ``Expect: 100-continue`` is answered ``100 Continue`` by the proxy itself and
  forwarded without that header (in both modes, for the request a fault is decided on).

``plan`` is a kind for every unit (``"stall"``), a sequence (unit ``n`` gets ``plan[n]``, units past
its end pass), or a callable ``plan(n) -> kind``; units are numbered from 0 in arrival order.

Bounded in time and count: at most ``max_faults`` units are faulted in all (every later unit
passes), every socket operation has a timeout (``io_timeout``; an idle kept-alive connection is
closed after ``idle_s``), stalls end after ``stall_s``, and :meth:`FaultProxy.close` (also at the
end of a ``with`` block) stops the accept loop, closes every socket and joins every thread within
about a second. Counts: ``.connections`` (accepted), ``.requests`` (requests parsed: every request
with ``per="request"``, only the faulted ones with ``per="connection"``), ``.faults`` (a
:class:`collections.Counter` by kind, passes not counted) and ``.log`` (``(unit, kind)`` in
order of decision).
"""

from __future__ import annotations

import contextlib
import select
import socket
import struct
import threading
import time
from collections import Counter
from collections.abc import Callable, Sequence

KINDS = ("pass", "drop", "reset", "stall", "cut")

Plan = str | Sequence[str] | Callable[[int], str]

_MAX_HEAD = 64 * 1024  # a request or response head larger than this is an error
_CHUNK = 64 * 1024


class _Closed(Exception):
    """The peer closed the connection (or the proxy is closing)."""


class _Reader:
    """Buffered reads from a socket (whose own timeout bounds every ``recv``)."""

    def __init__(self, sock: socket.socket) -> None:
        self.sock = sock
        self.buf = b""

    def _fill(self) -> None:
        data = self.sock.recv(_CHUNK)
        if not data:
            raise _Closed
        self.buf += data

    def until(self, sep: bytes, limit: int = _MAX_HEAD) -> bytes:
        while (i := self.buf.find(sep)) < 0:
            if len(self.buf) > limit:
                raise ValueError(f"no {sep!r} in the first {limit} bytes")
            self._fill()
        out, self.buf = self.buf[: i + len(sep)], self.buf[i + len(sep) :]
        return out

    def exact(self, n: int) -> bytes:
        while len(self.buf) < n:
            self._fill()
        out, self.buf = self.buf[:n], self.buf[n:]
        return out

    def to_eof(self) -> bytes:
        with contextlib.suppress(_Closed):
            while True:
                self._fill()
        out, self.buf = self.buf, b""
        return out


class _Message:
    """One HTTP/1.1 message: start line, headers (names lower-cased) and raw body bytes."""

    def __init__(self, start: str, headers: list[tuple[str, str]], body: bytes = b"") -> None:
        self.start = start
        self.headers = headers
        self.body = body

    def header(self, name: str) -> str | None:
        return next((v for k, v in self.headers if k == name), None)

    def wants_close(self) -> bool:
        return (self.header("connection") or "").lower() == "close"

    def encode(self) -> bytes:
        lines = [self.start, *(f"{k}: {v}" for k, v in self.headers)]
        return ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1") + self.body


def _read_head(r: _Reader) -> _Message:
    raw = r.until(b"\r\n\r\n").decode("latin-1")
    start, *lines = raw[:-4].split("\r\n")
    headers = []
    for line in lines:
        name, _, value = line.partition(":")
        headers.append((name.strip().lower(), value.strip()))
    return _Message(start, headers)


def _read_body(r: _Reader, msg: _Message, *, response: bool) -> bool:
    """Read ``msg``'s body into ``msg.body`` (raw, as sent); True if it ran to the end of the stream."""
    if (msg.header("transfer-encoding") or "").lower().endswith("chunked"):
        parts = []
        while True:
            line = r.until(b"\r\n")
            parts.append(line)
            size = int(line.split(b";")[0].strip(), 16)
            if size == 0:
                while (trailer := r.until(b"\r\n")) != b"\r\n":
                    parts.append(trailer)
                parts.append(b"\r\n")
                break
            parts.append(r.exact(size + 2))
        msg.body = b"".join(parts)
        return False
    if (length := msg.header("content-length")) is not None:
        msg.body = r.exact(int(length))
        return False
    if response:
        msg.body = r.to_eof()
        return True
    return False


def _read_request(r: _Reader, client: socket.socket) -> _Message:
    """Read one request; answer ``Expect: 100-continue`` here and drop that header."""
    req = _read_head(r)
    if (req.header("expect") or "").lower() == "100-continue":
        client.sendall(b"HTTP/1.1 100 Continue\r\n\r\n")
        req.headers = [(k, v) for k, v in req.headers if k != "expect"]
    _read_body(r, req, response=False)
    return req


def _read_response(r: _Reader, method: str) -> tuple[_Message, bool]:
    """Read one final response (interim 1xx responses are skipped); True if it ran to EOF."""
    while True:
        resp = _read_head(r)
        status = int(resp.start.split()[1])
        if status >= 200 or status == 101:
            break
    if method == "HEAD" or status in (204, 304) or status < 200:
        return resp, False
    return resp, _read_body(r, resp, response=True)


class FaultProxy:
    """A fault-injecting TCP proxy in front of ``upstream_host:upstream_port`` (see the module doc)."""

    def __init__(
        self,
        upstream_port: int,
        plan: Plan = "pass",
        *,
        upstream_host: str = "127.0.0.1",
        per: str = "connection",
        stall_s: float = 2.0,
        cut_bytes: int = 64,
        max_faults: int = 20,
        io_timeout: float = 5.0,
        idle_s: float = 30.0,
    ) -> None:
        if per not in ("connection", "request"):
            raise ValueError(f"per must be 'connection' or 'request', not {per!r}")
        if isinstance(plan, str):
            self._check(plan)
        elif not callable(plan):
            plan = list(plan)
            for kind in plan:
                self._check(kind)
        self.upstream = (upstream_host, upstream_port)
        self.plan = plan
        self.per = per
        self.stall_s = stall_s
        self.cut_bytes = cut_bytes
        self.max_faults = max_faults
        self.io_timeout = io_timeout
        self.idle_s = idle_s

        self.connections = 0
        self.requests = 0
        self.faults: Counter[str] = Counter()
        self.log: list[tuple[int, str]] = []

        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._units = 0
        self._sockets: set[socket.socket] = set()
        self._threads: list[threading.Thread] = []
        self._listener = socket.create_server(("127.0.0.1", 0))
        self._listener.settimeout(0.1)
        self.port: int = self._listener.getsockname()[1]
        self.endpoint = f"http://127.0.0.1:{self.port}"
        self._spawn(self._accept_loop)

    # -- plan -------------------------------------------------------------------------------

    @staticmethod
    def _check(kind: str) -> str:
        if kind not in KINDS:
            raise ValueError(f"unknown fault kind {kind!r} (one of {', '.join(KINDS)})")
        return kind

    def _decide(self) -> str:
        """The kind for the next unit (a connection or a request), counted and logged."""
        with self._lock:
            n = self._units
            self._units += 1
            if isinstance(self.plan, str):
                kind = self.plan
            elif callable(self.plan):
                kind = self._check(self.plan(n))
            else:
                kind = self.plan[n] if n < len(self.plan) else "pass"
            if kind != "pass":
                if sum(self.faults.values()) >= self.max_faults:
                    kind = "pass"
                else:
                    self.faults[kind] += 1
            self.log.append((n, kind))
            return kind

    @property
    def total_faults(self) -> int:
        with self._lock:
            return sum(self.faults.values())

    # -- lifecycle --------------------------------------------------------------------------

    def _spawn(self, target: Callable[..., None], *args: object) -> None:
        t = threading.Thread(target=target, args=args, daemon=True, name=f"faultproxy-{self.port}")
        with self._lock:
            self._threads = [x for x in self._threads if x.is_alive()]
            self._threads.append(t)
        t.start()

    def _track(self, sock: socket.socket) -> socket.socket:
        sock.settimeout(self.io_timeout)
        with self._lock:
            if self._stop.is_set():
                sock.close()
                raise _Closed
            self._sockets.add(sock)
        return sock

    def _release(self, sock: socket.socket | None, *, reset: bool = False) -> None:
        if sock is None:
            return
        with self._lock:
            self._sockets.discard(sock)
        with contextlib.suppress(OSError):
            if reset:  # SO_LINGER with a zero timeout: close() sends an RST
                sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
            else:
                sock.shutdown(socket.SHUT_RDWR)
        sock.close()

    def close(self) -> None:
        """Stop accepting, close every socket and join every thread (within about a second)."""
        self._stop.set()
        with contextlib.suppress(OSError):
            self._listener.close()
        with self._lock:
            sockets, self._sockets = list(self._sockets), set()
            threads = list(self._threads)
        for sock in sockets:
            with contextlib.suppress(OSError):
                sock.shutdown(socket.SHUT_RDWR)
            with contextlib.suppress(OSError):
                sock.close()
        deadline = time.monotonic() + 1.0
        for t in threads:
            if t is not threading.current_thread():
                t.join(max(0.0, deadline - time.monotonic()))

    def alive_threads(self) -> int:
        with self._lock:
            return sum(t.is_alive() for t in self._threads)

    def __enter__(self) -> FaultProxy:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # -- traffic ----------------------------------------------------------------------------

    def _accept_loop(self) -> None:
        while not self._stop.is_set():
            try:
                client, _ = self._listener.accept()
            except TimeoutError:
                continue
            except OSError:
                return
            with self._lock:
                self.connections += 1
            handler = self._per_request if self.per == "request" else self._per_connection
            self._spawn(self._guard, handler, client)

    def _guard(
        self, handler: Callable[[socket.socket, list[socket.socket]], None], client: socket.socket
    ) -> None:
        upstream: list[socket.socket] = []
        try:
            handler(self._track(client), upstream)
        except (_Closed, OSError, ValueError):
            pass
        finally:
            for sock in upstream:
                self._release(sock)
            self._release(client)

    def _connect(self, upstream: list[socket.socket]) -> socket.socket:
        sock = socket.create_connection(self.upstream, timeout=self.io_timeout)
        upstream.append(self._track(sock))
        return sock

    def _wait_readable(self, sock: socket.socket, limit: float) -> bool:
        """Wait (interruptibly by close) until ``sock`` is readable; False after ``limit`` seconds."""
        deadline = time.monotonic() + limit
        while not self._stop.is_set() and time.monotonic() < deadline:
            ready, _, _ = select.select([sock], [], [], 0.1)
            if ready:
                return True
        return False

    def _fault(self, kind: str, client: socket.socket, req: _Message, upstream: list[socket.socket]) -> None:
        """Apply a fault to ``req`` (already read); the caller closes the connection after it."""
        with self._lock:
            self.requests += 1
        if kind == "reset":
            self._release(client, reset=True)
        elif kind == "stall":
            self._stop.wait(self.stall_s)
        elif kind == "cut":
            up = self._connect(upstream)
            up.sendall(req.encode())
            r = _Reader(up)
            sent = 0
            with contextlib.suppress(_Closed):
                while sent < self.cut_bytes:
                    if not r.buf:
                        r._fill()
                    piece = r.buf[: self.cut_bytes - sent]
                    r.buf = r.buf[len(piece) :]
                    client.sendall(piece)
                    sent += len(piece)
        # "drop": nothing to do; the connection is closed by _guard

    def _per_connection(self, client: socket.socket, upstream: list[socket.socket]) -> None:
        kind = self._decide()
        if kind != "pass":
            if not self._wait_readable(client, self.io_timeout):
                return
            self._fault(kind, client, _read_request(_Reader(client), client), upstream)
            return
        up = self._connect(upstream)
        peer = {client: up, up: client}
        while not self._stop.is_set():
            ready, _, _ = select.select(list(peer), [], [], 0.1)
            if not ready:
                continue
            for sock in ready:
                data = sock.recv(_CHUNK)
                if not data:
                    return
                peer[sock].sendall(data)

    def _per_request(self, client: socket.socket, upstream: list[socket.socket]) -> None:
        r = _Reader(client)
        up: socket.socket | None = None
        ur: _Reader | None = None
        while not self._stop.is_set():
            if not r.buf and not self._wait_readable(client, self.idle_s):
                return
            req = _read_request(r, client)
            kind = self._decide()
            if kind != "pass":
                self._fault(kind, client, req, upstream)
                return
            with self._lock:
                self.requests += 1
            if up is None or ur is None:
                up = self._connect(upstream)
                ur = _Reader(up)
            up.sendall(req.encode())
            resp, to_eof = _read_response(ur, req.start.split()[0])
            upstream_closes = to_eof or resp.wants_close()
            if upstream_closes and not to_eof and not req.wants_close():
                # keep the client's connection alive; open a new upstream one for the next request
                resp.headers = [(k, v) for k, v in resp.headers if k != "connection"]
            client.sendall(resp.encode())
            if upstream_closes:
                upstream.remove(up)
                self._release(up)
                up = ur = None
            if to_eof or req.wants_close():
                return
