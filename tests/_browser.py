"""Open a page in Debian's headless Chromium and report what a person would see: whether every audio
player and image loaded, what the console said, and a screenshot.

A small Chrome DevTools Protocol client over ``websocket-client`` (no browser download: the test
uses the ``chromium`` package that ``.ci/run`` installs). Bounded in time: every wait has a
deadline and the browser is killed at the end.
"""

from __future__ import annotations

import base64
import json
import shutil
import subprocess
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import websocket

CHROMIUM = next((p for p in map(shutil.which, ("chromium", "chromium-browser", "google-chrome")) if p), None)

# Runs in the page once it has loaded: waits (bounded) until every <audio> has its metadata or an
# error and every <img> is complete, then returns what loaded.
_CHECK = """
new Promise((resolve) => {
  const t0 = Date.now();
  const poll = () => {
    const audio = [...document.querySelectorAll('audio')];
    const imgs = [...document.querySelectorAll('img')];
    const pending = audio.filter(a => a.readyState < 1 && !a.error).length
                  + imgs.filter(i => !i.complete).length;
    if (pending === 0 || Date.now() - t0 > 15000) {
      resolve(JSON.stringify({
        audio: audio.map(a => ({src: a.getAttribute('src'), ready: a.readyState,
                                error: a.error ? a.error.code : null, duration: a.duration})),
        images: imgs.map(i => ({src: i.getAttribute('src'), width: i.naturalWidth})),
        title: document.title, pending: pending}));
    } else { setTimeout(poll, 100); }
  };
  poll();
})
"""


@dataclass
class PageReport:
    """What the browser saw."""

    audio: list[dict[str, Any]]
    images: list[dict[str, Any]]
    title: str
    pending: int
    console: list[str] = field(default_factory=list)  # errors and warnings, as "level: text"
    failed_requests: list[str] = field(default_factory=list)


class _Cdp:
    def __init__(self, url: str) -> None:
        self.ws = websocket.create_connection(url, timeout=30)
        self.next_id = 0
        self.events: list[dict[str, Any]] = []

    def call(self, method: str, session: str | None = None, **params: Any) -> dict[str, Any]:
        self.next_id += 1
        msg: dict[str, Any] = {"id": self.next_id, "method": method, "params": params}
        if session:
            msg["sessionId"] = session
        self.ws.send(json.dumps(msg))
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            reply = json.loads(self.ws.recv())
            if reply.get("id") == self.next_id:
                if "error" in reply:
                    raise RuntimeError(f"{method}: {reply['error']}")
                return reply.get("result", {})
            self.events.append(reply)
        raise TimeoutError(method)

    def wait_event(self, name: str, timeout: float = 30) -> dict[str, Any]:
        deadline = time.monotonic() + timeout
        for e in self.events:
            if e.get("method") == name:
                return e
        while time.monotonic() < deadline:
            e = json.loads(self.ws.recv())
            self.events.append(e)
            if e.get("method") == name:
                return e
        raise TimeoutError(name)


def open_page(page: Path, screenshot: Path | None = None, width: int = 1280, height: int = 900) -> PageReport:
    """Load ``page`` (a file) in headless Chromium; return what loaded and save a screenshot."""
    if CHROMIUM is None:
        raise FileNotFoundError("chromium not installed (apt-get install chromium)")
    profile = tempfile.mkdtemp(prefix="lincae-chromium-")
    proc = subprocess.Popen(
        [
            CHROMIUM,
            "--headless=new",
            "--no-sandbox",
            "--disable-gpu",
            "--no-first-run",
            "--disable-extensions",
            "--autoplay-policy=no-user-gesture-required",
            "--allow-file-access-from-files",
            "--remote-debugging-port=0",
            f"--user-data-dir={profile}",
            f"--window-size={width},{height}",
            "about:blank",
        ],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        url = None
        deadline = time.monotonic() + 60
        assert proc.stderr is not None
        while time.monotonic() < deadline and url is None:
            line = proc.stderr.readline()
            if not line and proc.poll() is not None:
                raise RuntimeError(f"chromium exited with {proc.returncode}")
            if "DevTools listening on " in line:
                url = line.split("DevTools listening on ", 1)[1].strip()
        if url is None:
            raise TimeoutError("chromium did not start")
        cdp = _Cdp(url)
        target = cdp.call("Target.createTarget", url="about:blank")["targetId"]
        session = cdp.call("Target.attachToTarget", targetId=target, flatten=True)["sessionId"]
        for domain in ("Page", "Runtime", "Log", "Network"):
            cdp.call(f"{domain}.enable", session)
        cdp.call("Page.navigate", session, url=page.resolve().as_uri())
        cdp.wait_event("Page.loadEventFired", timeout=60)
        result = cdp.call(
            "Runtime.evaluate", session, expression=_CHECK, awaitPromise=True, returnByValue=True
        )
        data = json.loads(result["result"]["value"])
        report = PageReport(**data)
        urls = {
            e["params"]["requestId"]: e["params"]["request"]["url"]
            for e in cdp.events
            if e.get("method") == "Network.requestWillBeSent"
        }
        for e in cdp.events:
            method, params = e.get("method"), e.get("params", {})
            if method == "Runtime.consoleAPICalled" and params.get("type") in ("error", "warning", "assert"):
                text = " ".join(str(a.get("value", a.get("description", ""))) for a in params.get("args", []))
                report.console.append(f"{params['type']}: {text}")
            elif method == "Runtime.exceptionThrown":
                report.console.append(f"exception: {params['exceptionDetails'].get('text')}")
            elif method == "Log.entryAdded" and params["entry"]["level"] in ("error", "warning"):
                report.console.append(f"{params['entry']['level']}: {params['entry']['text']}")
            elif method == "Network.loadingFailed" and not (
                params.get("canceled")
                or (params.get("type") == "Media" and "ABORTED" in params.get("errorText", ""))
            ):  # a media element cancels its download once it has the metadata: not a failure
                url = urls.get(params.get("requestId"), "?")
                report.failed_requests.append(f"{url}: {params.get('errorText')}")
        if screenshot is not None:
            shot = cdp.call("Page.captureScreenshot", session, format="png", captureBeyondViewport=True)
            screenshot.write_bytes(base64.b64decode(shot["data"]))
        cdp.ws.close()
        return report
    finally:
        proc.kill()
        proc.wait(timeout=30)
        shutil.rmtree(profile, ignore_errors=True)
