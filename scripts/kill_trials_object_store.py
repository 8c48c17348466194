"""kill -9 during an encode into a bucket, then the same command again: is the store bit-identical
to an uninterrupted encode? (issue 23 item 2)

Starts moto's S3 server on 127.0.0.1 (``tests/_s3.py``), writes a small deterministic library
(12 WAVs of 2-4 s at 16 kHz, one stereo) into a temporary folder and uploads it to the bucket
under ``lib/``, runs one uninterrupted reference encode ``lincae encode LIB s3://BUCKET/ref.zarr``
(the installed console script) and measures its wall time T. Then each trial K starts
``lincae encode SRC s3://BUCKET/tK.zarr``, sends it SIGKILL at an instant drawn uniformly in
[0.3 s, T] (seeded), records what the kill left in the bucket, runs the same command again to
completion (it must exit 0), and compares the result with the reference bit for bit:

* the track keys, the table columns (offset, frames, samples, source_rate, channels, status) and
  every track's latents (``LatentStore.read_track``, compared as bytes);
* every object of the store: the same keys, the same bytes, except the root ``zarr.json`` whose
  attributes are compared without what names one run (``store_id``, ``created``, lineage times,
  the library argument and the inputs' fingerprint ``inputs_sha256``, which hashes mtimes for a
  folder and ETags for a bucket; for the same reason the chunks of the per-track fingerprints
  ``tracks/input_fingerprint`` are compared by size only).

SRC is the local folder for even trials and ``s3://BUCKET/lib/`` for odd ones. The encodes run
with ``OMP_NUM_THREADS=1`` and their own ``TMPDIR`` (the staging folders a killed plan leaves
behind are counted, ``stale_tmp``). Prints one row a trial and ``kill trials: k/N bit-identical``;
exits 1 when a trial differs or a re-run fails.

Usage::

    python scripts/kill_trials_object_store.py                  # 10 trials, seed 0
    python scripts/kill_trials_object_store.py --trials 20 --seed 3 --json kill.json
"""

from __future__ import annotations

import argparse
import json
import os
import random
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import soundfile as sf

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO / "tests"))
import _s3  # noqa: E402  (tests/_s3.py: the moto server helper)

WINDOWS = ("run", "store", "upload")
COLUMNS = ("offset", "frames", "samples", "source_rate", "channels", "status")
MIN_KILL_S = 0.3
RATE = 16000
N_FILES = 12
RUN_TIMEOUT_S = 300.0


# ------------------------------------------------------------------------------------ inputs
def make_library(root: Path, n: int = N_FILES) -> Path:
    """``n`` WAVs (16-bit PCM, 16 kHz) of 2-4 s under two folders, the sixth stereo; the same
    bytes every time."""
    rng = np.random.default_rng(20231)
    for i in range(n):
        frames = int(RATE * (2.0 + 2.0 * i / max(1, n - 1)))
        t = np.arange(frames) / RATE
        x = 0.3 * np.sin(2 * np.pi * 110.0 * (i + 2) * t) + 0.02 * rng.standard_normal(frames)
        if i == 5:
            x = np.stack([x, 0.5 * x + 0.01 * rng.standard_normal(frames)], axis=1)
        path = root / ("a" if i % 2 else "b") / f"track{i:02d}.wav"
        path.parent.mkdir(parents=True, exist_ok=True)
        sf.write(path, x.astype(np.float32), RATE, subtype="PCM_16")
    return root


def upload_library(server: Any, bucket: str, lib: Path, prefix: str = "lib/") -> str:
    """Put every file under ``lib`` at ``s3://bucket/prefix...``; return that URL."""
    client = server.client()
    for p in sorted(lib.rglob("*")):
        if p.is_file():
            client.put_object(Bucket=bucket, Key=prefix + p.relative_to(lib).as_posix(), Body=p.read_bytes())
    return f"s3://{bucket}/{prefix}"


def encode_env(server: Any, tmpdir: Path) -> dict[str, str]:
    """The encodes' environment: this one without AWS settings, pointed at ``server``, one
    OpenMP thread, temporary files under ``tmpdir``."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("AWS_")}
    env.update(server.env())
    env.update(
        AWS_CONFIG_FILE=os.devnull,
        AWS_SHARED_CREDENTIALS_FILE=os.devnull,
        OMP_NUM_THREADS="1",
        MKL_NUM_THREADS="1",
        TMPDIR=str(tmpdir),
        PYTHONUNBUFFERED="1",
    )
    return env


def apply_env(server: Any) -> None:
    """Point this process's S3 clients (s3fs, for ``LatentStore.open``) at ``server``."""
    for var in (*_s3.UNSET_VARS, *[k for k in os.environ if k.startswith("AWS_")]):
        os.environ.pop(var, None)
    os.environ.update(server.env())
    os.environ["AWS_CONFIG_FILE"] = os.environ["AWS_SHARED_CREDENTIALS_FILE"] = os.devnull
    _s3.clear_s3fs_cache()


def lincae_command() -> list[str]:
    exe = shutil.which("lincae")
    return [exe] if exe else [sys.executable, "-m", "lincae_cli"]


def encode_command(src: str, out: str, chunk_frames: int | None = None) -> list[str]:
    extra = [] if chunk_frames is None else ["--chunk-frames", str(chunk_frames)]
    return [*lincae_command(), "encode", src, out, *extra]


# --------------------------------------------------------------------------- store inspection
def list_objects(server: Any, bucket: str, prefix: str) -> dict[str, str]:
    """Relative key -> ETag of every object under ``prefix`` (a ``name.zarr/`` prefix)."""
    client, out, token = server.client(), {}, None
    while True:
        kw = {"Bucket": bucket, "Prefix": prefix, **({"ContinuationToken": token} if token else {})}
        page = client.list_objects_v2(**kw)
        for obj in page.get("Contents", []):
            out[obj["Key"][len(prefix) :]] = obj["ETag"]
        if not page.get("IsTruncated"):
            return out
        token = page["NextContinuationToken"]


def get_object(server: Any, bucket: str, key: str) -> bytes:
    return server.client().get_object(Bucket=bucket, Key=key)["Body"].read()


def store_state(server: Any, bucket: str, name: str) -> str:
    """What is at ``s3://bucket/name`` (a store's prefix) now, in words."""
    from lincae_core.store import LatentStore

    objects = list_objects(server, bucket, name + "/")
    if not objects:
        return "no store"
    if "zarr.json" not in objects:
        return f"plan uploading ({len(objects)} objects, no root)"
    fmt = json.loads(get_object(server, bucket, f"{name}/zarr.json")).get("attributes", {}).get("format")
    if fmt != "lincae-latents":
        return f"root format {fmt!r} ({len(objects)} objects)"
    status = LatentStore.open(f"s3://{bucket}/{name}").table()["status"]
    done, n = int((status == 1).sum()), int(status.size)
    return f"complete {done}/{n}" if done == n else f"planned, {done}/{n} done"


_RUN_KEYS = ("store_id", "created")
_FINGERPRINT_CHUNKS = "tracks/input_fingerprint/c"


def _masked_root(data: bytes) -> dict[str, Any]:
    """A root zarr.json without what names one run (ids, times, the library argument, the
    inputs' fingerprint)."""
    doc = json.loads(data)
    attrs = doc.get("attributes", {})
    for k in _RUN_KEYS:
        attrs.pop(k, None)
    if isinstance(attrs.get("encoding"), dict):
        attrs["encoding"].pop("inputs_sha256", None)
    for entry in attrs.get("lineage") or []:
        entry.pop("time", None)
        args = entry.get("args") or {}
        args.pop("library", None)
        if isinstance(args.get("encoding"), dict):
            args["encoding"].pop("inputs_sha256", None)
    return doc


def compare_stores(server: Any, bucket: str, ref: str, other: str) -> list[str]:
    """How store ``other`` differs from ``ref`` (names of prefixes in ``bucket``): [] when
    bit-identical (see the module doc for what is compared)."""
    from lincae_core.store import LatentStore

    diffs: list[str] = []
    a, b = LatentStore.open(f"s3://{bucket}/{ref}"), LatentStore.open(f"s3://{bucket}/{other}")
    ta, tb = a.table(), b.table()
    keys_a, keys_b = ta["key"].tolist(), tb["key"].tolist()
    if keys_a != keys_b:
        diffs.append(f"keys: {sorted(set(keys_a) ^ set(keys_b)) or 'same set, other order'}")
        return diffs
    for col in COLUMNS:
        if ta[col].dtype != tb[col].dtype or not np.array_equal(ta[col], tb[col]):
            rows = np.flatnonzero(ta[col] != tb[col]) if ta[col].shape == tb[col].shape else []
            diffs.append(
                f"column {col}: "
                + ", ".join(f"{keys_a[i]}: {ta[col][i]} != {tb[col][i]}" for i in rows[:4])
                + (f" (dtype {ta[col].dtype} vs {tb[col].dtype})" if ta[col].dtype != tb[col].dtype else "")
            )
    for key in keys_a:
        za, zb = a.read_track(key), b.read_track(key)
        if za.dtype != zb.dtype or za.shape != zb.shape or za.tobytes() != zb.tobytes():
            where = ""
            if za.shape == zb.shape:
                bad = np.flatnonzero(
                    np.any(za.reshape(za.shape[0], -1) != zb.reshape(zb.shape[0], -1), axis=1)
                )
                where = f", frames {bad[:8].tolist()}{'...' if bad.size > 8 else ''} of {za.shape[0]}"
            diffs.append(f"latents of {key}: {za.shape}/{za.dtype} vs {zb.shape}/{zb.dtype}{where}")
    oa, ob = list_objects(server, bucket, ref + "/"), list_objects(server, bucket, other + "/")
    if set(oa) != set(ob):
        only_a, only_b = sorted(set(oa) - set(ob)), sorted(set(ob) - set(oa))
        diffs.append(f"objects only in {ref}: {only_a}, only in {other}: {only_b}")
    for rel in sorted(set(oa) & set(ob)):
        da, db = get_object(server, bucket, f"{ref}/{rel}"), get_object(server, bucket, f"{other}/{rel}")
        if rel == "zarr.json":
            if _masked_root(da) != _masked_root(db):
                diffs.append("root zarr.json attributes (ids, times and library masked)")
        elif rel.startswith(_FINGERPRINT_CHUNKS) and len(da) == len(db):
            continue  # the inputs' per-track fingerprints: mtimes for a folder, ETags for a bucket
        elif da != db:
            diffs.append(f"object {rel}: {len(da)} vs {len(db)} bytes, different content")
    return diffs


# ------------------------------------------------------------------------------------ trials
@dataclass
class Trial:
    trial: int
    source: str  # "local" or "s3"
    kill_at_s: float  # after the start of the command
    kill_after_first_object_s: float | None = None  # the drawn delay (window "upload")
    killed: bool = False  # False: the first run had exited before the kill instant
    first_rc: int | None = None
    state: str = ""
    stale_tmp: int = 0  # staging folders the killed process left in its TMPDIR
    rerun_rc: int | None = None
    rerun_s: float = 0.0
    rerun_log: str = ""  # the re-run's last stderr lines
    diffs: list[str] = field(default_factory=list)

    @property
    def identical(self) -> bool:
        return self.rerun_rc == 0 and not self.diffs


@dataclass
class Report:
    seed: int
    window: str  # "run", "store" or "upload" (see run_trials)
    reference_s: float
    reference_state: str
    reference_first_object_s: float | None  # when the reference's first object appeared
    reference_root_s: float | None  # when its root zarr.json appeared (the plan committed)
    trials: list[Trial]

    @property
    def n_identical(self) -> int:
        return sum(t.identical for t in self.trials)


def run_to_end(cmd: list[str], env: dict[str, str]) -> tuple[int, float, str]:
    """Run ``cmd`` to completion: exit status, wall seconds, stderr."""
    t0 = time.monotonic()
    proc = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=RUN_TIMEOUT_S)
    return proc.returncode, time.monotonic() - t0, proc.stderr


def run_watched(
    cmd: list[str], env: dict[str, str], server: Any, bucket: str, name: str
) -> tuple[int, float, str, float | None, float | None]:
    """Run ``cmd`` to completion, listing ``name/`` every 50 ms: exit status, wall seconds,
    stderr, and when (seconds after the start) its first object and its root zarr.json appeared."""
    first = root = None
    with tempfile.TemporaryFile("w+") as err:
        t0 = time.monotonic()
        proc = subprocess.Popen(cmd, env=env, stdout=subprocess.DEVNULL, stderr=err, text=True)
        while True:
            done = proc.poll() is not None
            if root is None:
                now = time.monotonic() - t0
                objects = list_objects(server, bucket, name + "/")
                if objects and first is None:
                    first = now
                if "zarr.json" in objects:
                    root = now
            if done:
                break
            if time.monotonic() - t0 > RUN_TIMEOUT_S:
                proc.kill()
            time.sleep(0.05)
        elapsed = time.monotonic() - t0
        err.seek(0)
        return proc.returncode, elapsed, err.read(), first, root


def run_killed(
    cmd: list[str], env: dict[str, str], kill_at_s: float, watch: tuple[Any, str, str] | None = None
) -> tuple[bool, int, float]:
    """Start ``cmd``, SIGKILL it ``kill_at_s`` after the start (unless it exited before); with
    ``watch`` (server, bucket, name), ``kill_at_s`` after the first object under ``name/``
    appeared (listed every 10 ms). Return (killed, exit status, seconds from the start to the
    kill or the exit)."""
    t0 = time.monotonic()
    proc = subprocess.Popen(cmd, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    start = t0
    if watch is not None:
        while proc.poll() is None and not list_objects(watch[0], watch[1], watch[2] + "/"):
            time.sleep(0.01)
        start = time.monotonic()
    try:
        proc.wait(timeout=max(0.0, kill_at_s - (time.monotonic() - start)))
        return False, proc.returncode, time.monotonic() - t0
    except subprocess.TimeoutExpired:
        os.kill(proc.pid, signal.SIGKILL)
        at = time.monotonic() - t0
        return True, proc.wait(), at


def _secs(t: float | None) -> str:
    return "-" if t is None else f"{t:.2f} s"


def _tail(text: str, n: int = 6) -> str:
    return "\n".join(text.strip().splitlines()[-n:])


def run_trials(
    server: Any,
    bucket: str,
    work: Path,
    trials: int = 10,
    seed: int = 0,
    log: Callable[[str], None] = print,
    chunk_frames: int | None = None,
    window: str = "run",
) -> Report:
    """The whole experiment in ``bucket`` (S3 clients of this process must already point at
    ``server``: :func:`apply_env`), with the library and temporary files under ``work``.

    ``window``: kill instants uniform in [0.3 s, T] (``"run"``), or in [t1 - 0.2 s, T]
    (``"store"``) where t1 is when the reference's first object appeared (the start-up, model
    load and local planning before it are skipped), or (``"upload"``) a delay uniform in
    [0, t2 - t1 + 50 ms] after the trial's own first object appeared (t2: when the reference's
    root appeared), to land in the upload of the plan."""
    lib = make_library(work / "library")
    s3_lib = upload_library(server, bucket, lib)
    tmp = work / "tmp"
    tmp.mkdir(parents=True, exist_ok=True)
    env = encode_env(server, tmp)
    ref_cmd = encode_command(str(lib), f"s3://{bucket}/ref.zarr", chunk_frames)
    rc, ref_s, err, first, root = run_watched(ref_cmd, env, server, bucket, "ref.zarr")
    if rc != 0:
        raise RuntimeError(f"the reference encode failed ({rc}):\n{_tail(err, 20)}")
    ref_state = store_state(server, bucket, "ref.zarr")
    log(f"reference: {ref_s:.2f} s, first object at {_secs(first)}, root at {_secs(root)}, {ref_state}")
    log(f"  ({_tail(err, 1)})")
    if window not in WINDOWS:
        raise ValueError(f"window: expected one of {WINDOWS}, got {window!r}")
    lo, hi = MIN_KILL_S, max(MIN_KILL_S, ref_s)
    if window == "store" and first is not None:
        lo = max(MIN_KILL_S, first - 0.2)
    elif window == "upload":  # delays after this run's first object appears
        lo, hi = 0.0, 0.05 + (root - first if first is not None and root is not None else 0.2)
    rng = random.Random(seed)
    out: list[Trial] = []
    for k in range(trials):
        source = "local" if k % 2 == 0 else "s3"
        src = str(lib) if source == "local" else s3_lib
        name = f"t{k}.zarr"
        cmd = encode_command(src, f"s3://{bucket}/{name}", chunk_frames)
        t = Trial(k, source, round(rng.uniform(lo, max(lo, hi)), 3))
        before = set(tmp.iterdir())
        watch = (server, bucket, name) if window == "upload" else None
        t.killed, t.first_rc, at = run_killed(cmd, env, t.kill_at_s, watch)
        if watch is not None:
            t.kill_after_first_object_s, t.kill_at_s = t.kill_at_s, round(at, 3)
        t.state = store_state(server, bucket, name) if t.killed else f"finished (exit {t.first_rc})"
        stale = set(tmp.iterdir()) - before
        t.stale_tmp = len(stale)
        for p in stale:
            shutil.rmtree(p, ignore_errors=True) if p.is_dir() else p.unlink(missing_ok=True)
        t.rerun_rc, t.rerun_s, err = run_to_end(cmd, env)
        t.rerun_log = _tail(err)
        if t.rerun_rc == 0:
            t.diffs = compare_stores(server, bucket, "ref.zarr", name)
        log(format_row(t))
        out.append(t)
    return Report(seed, window, ref_s, ref_state, first, root, out)


# ----------------------------------------------------------------------------------- output
HEADER = f"{'trial':>5}  {'source':<6}  {'kill at':>7}  {'state the kill left':<36}  {'re-run':>12}  result"


def format_row(t: Trial) -> str:
    rerun = f"{t.rerun_s:5.2f} s rc {t.rerun_rc}"
    result = "bit-identical" if t.identical else ("RE-RUN FAILED" if t.rerun_rc else "DIFFERS")
    state = t.state + (f" +{t.stale_tmp} stale tmp" if t.stale_tmp else "")
    return f"{t.trial:>5}  {t.source:<6}  {t.kill_at_s:6.2f}s  {state:<36}  {rerun:>12}  {result}"


def format_report(r: Report) -> str:
    lines = [
        f"reference encode: {r.reference_s:.2f} s ({r.reference_state}; first object at "
        f"{_secs(r.reference_first_object_s)}, root at {_secs(r.reference_root_s)}); seed {r.seed}, "
        f"kill window {r.window}",
        HEADER,
    ]
    lines += [format_row(t) for t in r.trials]
    for t in r.trials:
        if not t.identical:
            lines.append(f"trial {t.trial}: " + "; ".join(t.diffs or ["re-run failed"]))
            if t.rerun_log:
                lines.append("  re-run stderr: " + t.rerun_log.replace("\n", "\n    "))
    lines.append(f"kill trials: {r.n_identical}/{len(r.trials)} bit-identical")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--trials", type=int, default=10)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--json", type=Path, help="write the results here")
    ap.add_argument(
        "--chunk-frames",
        type=int,
        help="pass --chunk-frames to every encode (e.g. 8: a track spans several latents objects "
        "and is marked done alone, so kills also land between tracks)",
    )
    ap.add_argument(
        "--window",
        choices=WINDOWS,
        default="run",
        help="kill instants uniform in [0.3 s, T] (run), or from 0.2 s before the reference's first "
        "object appeared (store: skips the start-up, where a kill leaves nothing), or a short delay "
        "after the trial's own first object appeared (upload: lands in the upload of the plan)",
    )
    args = ap.parse_args(argv)
    with tempfile.TemporaryDirectory(prefix="lincae-kill-") as tmp:
        work = Path(tmp)
        server = _s3._start(work / "moto.log")
        try:
            apply_env(server)
            bucket = server.make_bucket("lincae-kill-trials")
            report = run_trials(
                server,
                bucket,
                work,
                args.trials,
                args.seed,
                lambda s: print(s, flush=True),
                args.chunk_frames,
                args.window,
            )
        finally:
            server.stop()
    print()
    print(format_report(report))
    if args.json:
        doc = {
            **{k: v for k, v in asdict(report).items() if k != "trials"},
            "trials": [{**asdict(t), "identical": t.identical} for t in report.trials],
            "n_identical": report.n_identical,
        }
        args.json.write_text(json.dumps(doc, indent=2) + "\n")
    return 0 if report.n_identical == len(report.trials) else 1


if __name__ == "__main__":
    sys.exit(main())
