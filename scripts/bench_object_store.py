"""Latent stores in object storage (S3) against local disk: seconds, requests and bytes of each
operation, against the fewest requests the layout allows; and zarr's two object-storage layers.

Starts moto's S3 server on 127.0.0.1 (``tests/_s3.py``), builds stores of ``--tracks`` tracks of
20-300 latent frames (64-dim mono float16, seeded random latents) in each layout, once in a local
folder and once in the bucket, and runs through the library API:

* ``encode`` of ``--encode-files`` synthetic audio files with the embedded default model (its
  requests per buffer flush: how many flushes an object gets depends on the encoder's speed),
  ``gain`` (whole store), keyed ``mix`` of two stores, ``export`` (2-s windows, maxcount 1000) and
  ``decode`` of ``--decode-keys`` tracks (into a local folder, or into a bucket prefix);
* for each: wall seconds on the bucket and on local disk, the GET / PUT / HEAD / LIST requests
  from the server's access log, the payload bytes moved (ranges and object sizes, from the
  client's calls), and the minimum the layout allows: one GET per input object the operation
  needs, one PUT per output object, the store metadata it must read (root and array
  ``zarr.json``, the track table's column chunks) and write (every metadata object of the output
  once, its root twice: written incomplete, then committed), and one LIST to check the output is
  free. Every request beyond that minimum is attributed to the lincae function that made it (the
  innermost ``lincae_core`` frame) and to the zarr / s3fs calls under it, and printed.
* the read layer: the latents of whole objects and of many short tracks read through zarr with
  ``FsspecStore`` (s3fs, what lincae uses) and with ``ObjectStore`` (obstore);
* on paper (``--paper-tracks``, ``--paper-minutes``): the objects, requests and request cost
  (S3 Standard prices) of encode, gain and export of a larger store, at the minimum and as
  measured here (each term of the requests scaled: objects, table chunks, work units, flushes).

``--storage-options JSON`` sets ``LINCAE_STORAGE_OPTIONS`` (e.g. ``'{"max_concurrency": 1}'``,
which stops s3fs's HEAD before every whole-object GET) to measure a configuration change;
``--log-dir`` writes every request of every op (key, range, call site, why it is extra).

Layouts (``--layouts``): ``object16k`` (16384-frame objects, one chunk each: lincae's default),
``shard16k`` (16384-frame objects of 16 chunks of 1024 frames, Zarr v3 sharding) and ``object1k``
(1024-frame objects, one chunk each: the read granularity of ``shard16k`` without sharding).

moto is a Python server on the same 2 cores as the client, so seconds show the cost of requests
here and how they scale, not what S3 would take; the request counts are exact. Needs the test
extras (``pip install -e .[s3,test]``: moto's server, boto3, s3fs, obstore).

    python scripts/bench_object_store.py                  # 10^4 tracks
    python scripts/bench_object_store.py --quick          # 10^3 tracks
    python scripts/bench_object_store.py --json /tmp/bench_object_store.json
"""

from __future__ import annotations

import argparse
import contextlib
import contextvars
import json
import logging
import math
import os
import re
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
import traceback
from collections import Counter, defaultdict
from collections.abc import Callable, Iterator
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

REPO = Path(__file__).resolve().parents[1]
BUCKET = "lincae-bench"
GEOMETRY = {"sample_rate": 16000, "samples_per_frame": 2048, "latent_dim": 64}
# name -> (frames a stored object, chunks in an object)
LAYOUTS = {"object16k": (16384, 1), "shard16k": (16384, 16), "object1k": (1024, 1)}
OPS = ("encode", "gain", "mix", "export", "decode")
# S3 Standard request prices (us-east-1), dollars per 1000 requests
PRICE = {"PUT": 0.005, "POST": 0.005, "LIST": 0.005, "GET": 0.0004, "HEAD": 0.0004, "DELETE": 0.0}
KINDS = ("GET", "PUT", "HEAD", "LIST", "POST", "DELETE", "OTHER")
_S3_OPS = {
    "GetObject": "GET",
    "HeadObject": "HEAD",
    "PutObject": "PUT",
    "UploadPart": "PUT",
    "CopyObject": "PUT",
    "ListObjectsV2": "LIST",
    "ListObjects": "LIST",
    "DeleteObjects": "POST",
    "CreateMultipartUpload": "POST",
    "CompleteMultipartUpload": "POST",
    "DeleteObject": "DELETE",
}


# --------------------------------------------------------------------------------- the tracer
# Which lincae function made each request: zarr's and fsspec's blocking calls hand a coroutine to
# an event loop thread; the caller's stack is taken where the coroutine is made (in the calling
# thread) and carried into the loop in a context variable, where aiobotocore's _make_api_call
# reads it for every request (paginated LISTs included).
_SITE: contextvars.ContextVar[tuple[str, str] | None] = contextvars.ContextVar("lincae_site", default=None)


@dataclass
class Call:
    """One request as the client made it."""

    kind: str
    op: str
    key: str
    range: str | None
    ok: bool
    nbytes: int  # payload: PUT bodies; GET: the range, or -1 (the object's size, filled in later)
    site: str  # innermost lincae_core frame -> the call it made
    lib: str  # zarr / s3fs / fsspec functions between that call and the request
    chain: str  # the lincae_core functions above the site, innermost first
    reason: str = ""  # why it is beyond the minimum ("" if it is not)


def _short(filename: str) -> str:
    for root in ("/lincae_core/", "/site-packages/", "/dist-packages/"):
        if root in filename:
            return (root.strip("/") + "/" if root == "/lincae_core/" else "") + filename.split(root, 1)[1]
    return os.path.basename(filename)


def _caller() -> tuple[str, str]:
    """``(site, chain)``: the innermost lincae_core frame of this thread's stack and the function
    it called, and the lincae functions above it."""
    frames = traceback.extract_stack()[:-2]
    ours = [i for i, f in enumerate(frames) if "/lincae_core/" in f.filename]
    if not ours:
        return "(no lincae frame: the benchmark itself)", ""
    i = ours[-1]
    f = frames[i]
    site = f"{_short(f.filename)}:{f.name}:{f.lineno}"
    if i + 1 < len(frames):
        nxt = frames[i + 1]
        site += f" -> {_short(nxt.filename).removesuffix('.py')}:{nxt.name}"
    chain = " < ".join(f"{frames[j].name}" for j in reversed(ours[:-1]))
    return site, chain


_NOISE = {"_runner", "tagged", "_error_wrapper", "_call_s3", "_call_and_read", "wrapper", "_make_api_call"}


def _lib_chain() -> str:
    names = []
    for f in traceback.extract_stack()[:-2]:
        pkg = _short(f.filename).split("/", 1)[0]
        if pkg in ("zarr", "s3fs", "fsspec") and f.name not in _NOISE:
            names.append(f"{pkg}:{f.name}")
    out: list[str] = []  # the last few, without consecutive repeats
    for n in names:
        if not out or out[-1] != n:
            out.append(n)
    return " > ".join(out[-3:])


def _body_len(body: Any) -> int:
    if body is None:
        return 0
    if isinstance(body, (bytes, bytearray)):
        return len(body)
    if isinstance(body, memoryview):
        return body.nbytes
    with contextlib.suppress(Exception):
        pos = body.tell()
        body.seek(0, os.SEEK_END)
        end = body.tell()
        body.seek(pos)
        return end - pos
    return 0


def _range_len(rng: str) -> int:
    a, _, b = rng.removeprefix("bytes=").partition("-")
    if not a:
        return int(b)
    return int(b) - int(a) + 1 if b else -1


class Tracer:
    """Records every aiobotocore request with the lincae function that made it (see above)."""

    def __init__(self) -> None:
        self.calls: list[Call] = []
        self.enabled = True

    def install(self) -> None:
        import aiobotocore.client
        import fsspec.asyn
        import zarr.core.sync

        zarr_runner = zarr.core.sync._runner

        def zrunner(coro: Any) -> Any:
            site = _caller()

            async def tagged() -> Any:
                _SITE.set(site)
                return await zarr_runner(coro)

            return tagged()

        zarr.core.sync._runner = zrunner
        fs_runner = fsspec.asyn._runner

        def frunner(event: Any, coro: Any, result: Any, timeout: Any = None) -> Any:
            site = _caller()

            async def tagged() -> Any:
                _SITE.set(site)
                return await fs_runner(event, coro, result, timeout)

            return tagged()

        fsspec.asyn._runner = frunner
        make_call = aiobotocore.client.AioBaseClient._make_api_call
        tracer = self

        async def traced(client: Any, operation_name: str, api_params: dict[str, Any]) -> Any:
            if not tracer.enabled:
                return await make_call(client, operation_name, api_params)
            site = _SITE.get() or ("(unknown)", "")
            kind = _S3_OPS.get(operation_name, "OTHER")
            key = api_params.get("Key") or (api_params.get("Prefix", "") + "*")
            rng = api_params.get("Range")
            nbytes = _body_len(api_params.get("Body")) if kind == "PUT" else 0
            if kind == "GET":
                nbytes = _range_len(rng) if rng else -1
            call = Call(kind, operation_name, key, rng, True, nbytes, site[0], _lib_chain(), site[1])
            tracer.calls.append(call)
            try:
                return await make_call(client, operation_name, api_params)
            except Exception:
                call.ok = False
                raise

        aiobotocore.client.AioBaseClient._make_api_call = traced


# ------------------------------------------------------------------------------- the server
def start_server(tmp: Path) -> Any:
    """moto's server from tests/_s3.py, the AWS variables pointing at it, and the bucket."""
    sys.path.insert(0, str(REPO / "tests"))
    import _s3

    server = _s3._start(tmp / "moto.log")
    for var in _s3.UNSET_VARS:
        os.environ.pop(var, None)
    os.environ.update(server.env())
    os.environ["AWS_CONFIG_FILE"] = os.devnull
    os.environ["AWS_SHARED_CREDENTIALS_FILE"] = os.devnull
    server.make_bucket(BUCKET)
    return server


def git_revision() -> str:
    """The commit measured (``-dirty``: with uncommitted changes)."""
    try:
        out = subprocess.run(
            ["git", "-C", str(REPO), "describe", "--always", "--dirty"], capture_output=True, text=True
        )
        return out.stdout.strip() or "unknown"
    except OSError:
        return "unknown"


def clear_fs_cache() -> None:
    import s3fs

    s3fs.S3FileSystem.clear_instance_cache()


def list_sizes(server: Any, prefix: str) -> dict[str, int]:
    """Every object under ``prefix`` and its size (boto3: not traced; call outside a count)."""
    sizes = {}
    for page in server.client().get_paginator("list_objects_v2").paginate(Bucket=BUCKET, Prefix=prefix):
        for o in page.get("Contents", []):
            sizes[o["Key"]] = int(o["Size"])
    return sizes


def delete_prefix(server: Any, prefix: str) -> None:
    keys = list(list_sizes(server, prefix))
    c = server.client()
    for i in range(0, len(keys), 1000):
        c.delete_objects(Bucket=BUCKET, Delete={"Objects": [{"Key": k} for k in keys[i : i + 1000]]})


# ------------------------------------------------------------------------------- the stores
def track_list(n: int, seed: int = 0) -> list[tuple[str, int]]:
    rng = np.random.default_rng(seed)
    return [(f"album{i // 100:04d}/t{i:06d}", int(f)) for i, f in enumerate(rng.integers(20, 301, n))]


def build_store(path: Path, tracks: list[tuple[str, int]], frames: int, per_object: int, seed: int) -> None:
    """A finished store of seeded random latents (``synthetic_store``'s, for any layout)."""
    from lincae_core.store import LatentStore
    from lincae_core.store.layout import PlanRow
    from lincae_core.store.synthetic import synthetic_store

    if per_object == 1:
        synthetic_store(path, tracks, seed=seed, chunk_frames=frames, scale=0.3)
        return
    s = LatentStore.create(
        path,
        model_id="synthetic",
        model_config={"name": "synthetic"},
        geometry=GEOMETRY,
        channels=1,
        dtype="float16",
        encoding={"window_s": 10, "overlap_s": 1},
        chunk_frames=frames,
        chunks_per_object=per_object,
    )
    spf, rate = GEOMETRY["samples_per_frame"], GEOMETRY["sample_rate"]
    s.plan([PlanRow(k, f, max(0, f * spf - 100), rate, 1) for k, f in tracks])
    rng = np.random.default_rng(seed)
    block = frames * 64
    for b0 in range(0, s.total_frames, block):
        n = min(block, s.total_frames - b0)
        z = rng.standard_normal((n, 1, GEOMETRY["latent_dim"]), dtype=np.float32)
        s.latents.write(b0, (z * np.float32(0.3)).astype("float16"))
    s.mark_done(np.arange(len(tracks)))


@dataclass
class StoreInfo:
    """What the minimum request count of a store's readers needs: its metadata keys, its latent
    objects, and where each track lies."""

    frames: int  # frames a stored object
    per_object: int
    objects: list[str]
    meta: list[str]  # root + latents zarr.json, every column's zarr.json and chunks
    table_chunks: int
    offsets: np.ndarray
    lengths: np.ndarray
    keys: list[str]
    total_frames: int
    nbytes: int

    @classmethod
    def of(cls, path: Path) -> StoreInfo:
        from lincae_core.store import LatentStore

        s = LatentStore.open(path)
        g = s._group
        sep = s.chunk_key_separator
        n_obj = math.ceil(s.total_frames / s.chunk_frames)
        objects = [f"latents/c{sep}{k}{sep}0{sep}0" for k in range(n_obj)]
        meta = ["zarr.json", "latents/zarr.json"]
        chunks = 0
        for name in g["tracks"].array_keys():
            arr = g[f"tracks/{name}"]
            meta.append(f"tracks/{name}/zarr.json")
            meta += [f"tracks/{name}/c/{i}" for i in range(arr.nchunks)]
            chunks += arr.nchunks
        t = s.table()
        return cls(
            s.chunk_frames,
            s.chunks_per_object,
            objects,
            meta,
            chunks,
            t["offset"],
            t["frames"],
            s.keys(),
            s.total_frames,
            s.total_frames * 64 * 2,
        )

    def objects_of(self, key: str) -> list[str]:
        i = self.keys.index(key)
        a, b = int(self.offsets[i]), int(self.offsets[i] + self.lengths[i])
        return self.objects[a // self.frames : (b - 1) // self.frames + 1]


# ------------------------------------------------------------------------------- measuring
@dataclass
class Run:
    """One operation on one layout."""

    op: str
    layout: str
    s_bucket: float = 0.0
    s_local: float = 0.0
    server: dict[str, int] = field(default_factory=dict)
    client: dict[str, int] = field(default_factory=dict)
    minimum: dict[str, int] = field(default_factory=dict)
    mb_get: float = 0.0
    mb_put: float = 0.0
    mb_min: float = 0.0
    in_objects: int = 0
    out_objects: int = 0
    table_chunks: int = 0  # of the inputs and the output
    in_table_chunks: int = 0
    units: int = 0  # work units the op ran (each opens the stores again)
    # requests by term and kind: "in" on input latent objects, "out" on the output's latent
    # objects (or shards, or audio files), "table" on the chunks of the track tables, "unit"
    # opening stores in each work unit, "rest" (opening and creating the stores, checks)
    terms: dict[str, dict[str, int]] = field(default_factory=dict)
    out_meta: int = 0  # zarr.json objects of the output store
    extras: list[dict[str, Any]] = field(default_factory=list)

    @property
    def requests(self) -> int:
        return sum(self.server.values())

    @property
    def min_total(self) -> int:
        return sum(self.minimum.values())


@contextlib.contextmanager
def counting(server: Any, tracer: Tracer) -> Iterator[None]:
    clear_fs_cache()  # each operation as a fresh process sees the bucket: no listing cache
    server.reset_counts()
    tracer.calls.clear()
    tracer.enabled = True
    yield
    tracer.enabled = False


def timed(fn: Callable[[], Any]) -> float:
    t0 = time.perf_counter()
    fn()
    return time.perf_counter() - t0


def key_class(key: str, stores: dict[str, str]) -> str:
    """What a key is, for the attribution tables (table columns and source arrays merged)."""
    base = key.rstrip("*").rstrip("/").rsplit("/", 1)[-1]
    if base in (".zgroup", ".zattrs", ".zarray", ".zmetadata"):
        return "zarr v2 probe " + ("(LIST)" if key.endswith("*") else base)
    for role, prefix in stores.items():
        if key in (prefix, prefix + "*", prefix + "/*"):
            return f"{role} prefix" + (" (as an object)" if key == prefix else "")
        if not key.startswith(prefix + "/"):
            continue
        rel = re.sub(r"^(tracks|sources)/(?!zarr\.json)[^/*]+", r"\1/<col>", key[len(prefix) + 1 :])
        if rel.endswith("*"):
            return f"{role} prefix {rel}"
        if rel in ("tracks/<col>", "sources/<col>", "latents", "tracks", "sources", "origin"):
            return f"{role} prefix {rel} (as an object)"
        if rel == "zarr.json":
            return f"{role} root zarr.json"
        if rel.startswith("latents/c"):
            return f"{role} latent object"
        if rel.endswith("zarr.json"):
            return f"{role} {rel}"
        if rel.startswith(("tracks/", "sources/")):
            return f"{role} {rel.split('/', 1)[0]}/<col> chunk"
        if rel.endswith((".tar", ".wav")):
            return f"{role} file"
        return f"{role} {rel}"
    return "other"


def attribute(
    calls: list[Call],
    need_get: Counter[str],
    need_put: Counter[str],
    need_list: int,
    stores: dict[str, str],
) -> list[dict[str, Any]]:
    """Every call beyond the minimum, grouped by why it is extra, the key and the call site."""
    get_left, put_left, list_left = Counter(need_get), Counter(need_put), need_list
    seen: set[tuple[str, str]] = set()
    groups: Counter[tuple[str, str, str, str, str, str]] = Counter()
    for c in calls:
        reason = None
        if c.kind == "GET":
            if get_left[c.key] > 0 and c.ok:
                get_left[c.key] -= 1
            elif not c.ok:
                reason = "GET of a missing key (404)"
            elif ("GET", c.key) in seen:
                reason = "GET again (read before in this op)"
            else:
                reason = "GET not needed"
        elif c.kind == "PUT":
            if put_left[c.key] > 0:
                put_left[c.key] -= 1
            elif ("PUT", c.key) in seen:
                reason = "PUT again (rewritten)"
            else:
                reason = "PUT of a key not in the result"
        elif c.kind == "LIST" and list_left > 0:
            list_left -= 1
        elif c.kind == "HEAD":
            reason = "HEAD" + ("" if c.ok else " (404)")
        else:
            reason = c.kind + ("" if c.ok else " (failed)")
        seen.add((c.kind, c.key))
        c.reason = reason or ""
        if reason:
            via = " < ".join(c.chain.split(" < ")[:3])
            groups[(reason, c.kind, key_class(c.key, stores), c.site, via, c.lib)] += 1
    return [
        {"count": n, "reason": r, "kind": k, "key": kc, "site": s, "via": via, "lib": lib}
        for (r, k, kc, s, via, lib), n in groups.most_common()
    ]


def op_units(inf: StoreInfo) -> int:
    """The work units of a whole-store op with ``jobs=1`` (lincae_core.ops.engine)."""
    from lincae_core.ops.engine import block_groups

    return len(block_groups(inf.total_frames, inf.frames, 16384, 1))


def export_units(lengths: np.ndarray, window: int = 16, maxcount: int = 1000) -> int:
    """The work units of ``export_shards`` with ``jobs=1``: 2-s windows (16 frames)."""
    from lincae_core.ops.export.shards import _shards_per_unit
    from lincae_core.ops.export.windows import window_counts

    n_shards = math.ceil(int(window_counts(np.asarray(lengths), window, window).sum()) / maxcount)
    return math.ceil(n_shards / _shards_per_unit(n_shards, maxcount, 1))


class Bench:
    def __init__(self, args: argparse.Namespace, work: Path, server: Any, tracer: Tracer) -> None:
        self.args, self.work, self.server, self.tracer = args, work, server, tracer
        self.tracks = track_list(args.tracks)
        self.runs: list[Run] = []
        self.reads: list[dict[str, Any]] = []
        self.model: Any = None
        self.layout_info: dict[str, dict[str, Any]] = {}

    # -- setup
    def prepare(self, layout: str) -> dict[str, StoreInfo]:
        frames, per = LAYOUTS[layout]
        info = {}
        for name, seed in (("a", 1), ("b", 2)):
            local = self.work / layout / f"{name}.zarr"
            build_store(local, self.tracks, frames, per, seed)
            info[name] = StoreInfo.of(local)
            from lincae_core.location import RemotePath
            from lincae_core.remote_publish import upload_tree

            self.tracer.enabled = False
            upload_tree(local, RemotePath(f"s3://{BUCKET}/{layout}/{name}.zarr"))
        a = info["a"]
        self.layout_info[layout] = {
            "frames_per_object": frames,
            "chunks_per_object": per,
            "chunk_frames": frames // per,
            "objects": len(a.objects),
            "object_mib": frames * 128 / 2**20,
            "store_mb": a.nbytes / 1e6,
            "objects_per_gb": 1e9 / (frames * 128),
            "table_chunks": a.table_chunks,
            "meta_objects": len(a.meta),
        }
        return info

    def url(self, layout: str, name: str) -> str:
        return f"s3://{BUCKET}/{layout}/{name}"

    # -- one op, local then bucket
    def measure(
        self,
        op: str,
        layout: str,
        local_fn: Callable[[], Any],
        bucket_fn: Callable[[], Any],
        ins: dict[str, StoreInfo],
        out_prefix: str,
        local_out: Path,
        decode_keys: list[str] | None = None,
        units: int = 1,
        root_puts: int = 2,
    ) -> Run:
        run = Run(op, layout)
        run.s_local = timed(local_fn)
        with counting(self.server, self.tracer):
            run.s_bucket = timed(bucket_fn)
        run.server = {k: v for k, v in self.server.request_counts().items() if v}
        calls = list(self.tracer.calls)
        run.client = dict(Counter(c.kind for c in calls))
        out_sizes = list_sizes(self.server, out_prefix)
        # bytes: PUT bodies as sent; a whole-object GET moves the object
        sizes: dict[str, int] = dict(out_sizes)
        for name in ins:
            sizes.update(list_sizes(self.server, f"{layout}/{name}.zarr"))
        run.mb_get = (
            sum(c.nbytes if c.nbytes >= 0 else sizes.get(c.key, 0) for c in calls if c.kind == "GET" and c.ok)
            / 1e6
        )
        run.mb_put = sum(c.nbytes for c in calls if c.kind == "PUT") / 1e6
        # the minimum: every needed input key read once, every output object written once (the
        # root twice: incomplete, then committed), one LIST to find the output free
        need_get: Counter[str] = Counter()
        for name, inf in ins.items():
            prefix = f"{layout}/{name}.zarr"
            need_get.update(f"{prefix}/{m}" for m in inf.meta)
            run.table_chunks += inf.table_chunks
            run.in_table_chunks += inf.table_chunks
            if decode_keys is None:
                need_get.update(f"{prefix}/{o}" for o in inf.objects)
                run.in_objects += len(inf.objects)
            else:  # a whole object, or a shard's index and one range of its chunks
                for k in decode_keys:
                    for o in inf.objects_of(k):
                        need_get[f"{prefix}/{o}"] += 1 if inf.per_object == 1 else 2
                        run.in_objects += 1
        need_put = Counter(out_sizes.keys())
        root = f"{out_prefix}/zarr.json"
        if root in need_put:
            need_put[root] += root_puts - 1
        run.table_chunks += sum(1 for k in out_sizes if "/tracks/" in k and "/c/" in k)
        need_list = 0 if decode_keys is not None else 1
        run.out_objects = sum(1 for k in out_sizes if "/latents/c" in k or k.endswith((".tar", ".wav")))
        run.minimum = {"GET": sum(need_get.values()), "PUT": sum(need_put.values()), "LIST": need_list}
        min_get_bytes = 0
        for name, inf in ins.items():
            prefix = f"{layout}/{name}.zarr"
            min_get_bytes += sum(sizes.get(f"{prefix}/{m}", 0) for m in inf.meta)
            if decode_keys is None:
                min_get_bytes += sum(sizes.get(f"{prefix}/{o}", 0) for o in inf.objects)
            else:  # a range read of each track's frames
                min_get_bytes += sum(int(inf.lengths[inf.keys.index(k)]) * 128 for k in decode_keys)
        run.mb_min = (min_get_bytes + sum(out_sizes.values())) / 1e6
        ins_prefixes = tuple(f"{layout}/{name}.zarr/" for name in ins)
        terms: dict[str, Counter[str]] = {t: Counter() for t in ("in", "out", "table", "unit", "rest")}
        for c in calls:
            if c.key.startswith(ins_prefixes) and "/latents/c" in c.key:
                term = "in"
            elif c.key.startswith(out_prefix + "/") and (
                "/latents/c" in c.key or c.key.endswith((".tar", ".wav"))
            ):
                term = "out"
            elif re.search(r"/tracks/[^/]+/c/", c.key):
                term = "table"
            elif any(f in c.chain for f in ("run_unit", "write_shards", "_flush_done")):
                term = "unit"
            else:
                term = "rest"
            terms[term][c.kind] += 1
        run.terms = {t: dict(v) for t, v in terms.items()}
        run.units = units
        run.out_meta = sum(1 for k in out_sizes if k.endswith("zarr.json"))
        stores = {"input": f"{layout}/a.zarr", "input b": f"{layout}/b.zarr", "output": out_prefix}
        run.extras = attribute(calls, need_get, need_put, need_list, stores)
        if self.args.log_dir:
            d = Path(self.args.log_dir)
            d.mkdir(parents=True, exist_ok=True)
            with open(d / f"{op}-{layout}.jsonl", "w") as fh:
                for c in calls:
                    fh.write(json.dumps(asdict(c)) + "\n")
        delete_prefix(self.server, out_prefix)
        shutil.rmtree(local_out, ignore_errors=True)
        self.runs.append(run)
        return run

    def ops(self, layout: str, info: dict[str, StoreInfo]) -> None:
        from lincae_core.decoding.files import decode_store
        from lincae_core.ops import export_shards, gain_store, mix_stores

        lw = self.work / layout
        a, b = str(lw / "a.zarr"), str(lw / "b.zarr")
        ua, ub = self.url(layout, "a.zarr"), self.url(layout, "b.zarr")
        todo = self.args.ops
        if "encode" in todo:
            self.encode(layout)
        if "gain" in todo:
            self.measure(
                "gain",
                layout,
                lambda: gain_store(a, lw / "g.zarr", 0.5),
                lambda: gain_store(ua, self.url(layout, "g.zarr"), 0.5),
                {"a": info["a"]},
                f"{layout}/g.zarr",
                lw / "g.zarr",
                units=op_units(info["a"]),
            )
        if "mix" in todo:
            self.measure(
                "mix",
                layout,
                lambda: mix_stores([a, b], lw / "m.zarr", [0.5, 0.5]),
                lambda: mix_stores([ua, ub], self.url(layout, "m.zarr"), [0.5, 0.5]),
                info,
                f"{layout}/m.zarr",
                lw / "m.zarr",
                units=op_units(info["a"]),
            )
        if "export" in todo:
            (lw / "export").mkdir(exist_ok=True)
            self.measure(
                "export",
                layout,
                lambda: export_shards(a, str(lw / "export" / "%06d.tar"), 2.0, maxcount=1000),
                lambda: export_shards(ua, self.url(layout, "export/%06d.tar"), 2.0, maxcount=1000),
                {"a": info["a"]},
                f"{layout}/export",
                lw / "export",
                units=export_units(info["a"].lengths),
            )
        if "decode" in todo:
            self.load_model()
            keys = self.decode_keys(info["a"])
            self.measure(
                "decode",
                layout,
                lambda: decode_store(a, lw / "decoded", self.model, keys, force=True),
                lambda: decode_store(ua, self.url(layout, "decoded"), self.model, keys, force=True),
                {"a": info["a"]},
                f"{layout}/decoded",
                lw / "decoded",
                decode_keys=keys,
            )

    def load_model(self) -> Any:
        if self.model is None:
            from lincae_core import load_model

            self.model = load_model(None)
        return self.model

    def encode(self, layout: str) -> None:
        """``encode_files`` of ``--encode-files`` files of ``--encode-seconds`` into a new store:
        its requests per buffer flush (the encoder writes finished tracks when its buffer reaches
        the next object, after 0.5 s, or at 64 MiB: how many flushes an object gets depends on
        the encoder's speed)."""
        import soundfile as sf

        from lincae_core.discovery import discover
        from lincae_core.encoding.job import encode_files
        from lincae_core.encoding.settings import EncodeSettings
        from lincae_core.store.writing import StoreWriting

        frames, per = LAYOUTS[layout]
        lib = self.work / "audio"
        if not lib.exists():
            lib.mkdir()
            rate = GEOMETRY["sample_rate"]
            t = np.arange(int(rate * self.args.encode_seconds)) / rate
            for i in range(self.args.encode_files):
                rng = np.random.default_rng(i)
                x = 0.05 * rng.standard_normal(t.shape)
                for f in rng.uniform(80, 2000, 3):
                    x += 0.1 * np.sin(2 * np.pi * f * t)
                sf.write(lib / f"f{i:05d}.wav", (0.5 * x / np.abs(x).max()).astype(np.float32), rate)
        model = self.load_model()
        settings = EncodeSettings(chunk_frames=frames, chunks_per_object=per)
        lw = self.work / layout
        lw.mkdir(parents=True, exist_ok=True)
        flushes = {"n": 0}
        write_tracks = StoreWriting.write_tracks

        def counted(store: Any, *a: Any, **k: Any) -> int:  # counts the flushes, changes nothing
            flushes["n"] += 1
            return write_tracks(store, *a, **k)

        def bucket() -> None:
            StoreWriting.write_tracks = counted  # type: ignore[method-assign]
            try:
                encode_files(discover(lib), self.url(layout, "e.zarr"), model, None, settings)
            finally:
                StoreWriting.write_tracks = write_tracks  # type: ignore[method-assign]

        run = self.measure(
            "encode",
            layout,
            lambda: encode_files(discover(lib), lw / "e.zarr", model, None, settings),
            bucket,
            {},
            f"{layout}/e.zarr",
            lw / "e.zarr",
            root_puts=1,
        )
        run.units = flushes["n"]

    def decode_keys(self, inf: StoreInfo) -> list[str]:
        n = len(inf.keys)
        picks = np.linspace(0, n - 1, self.args.decode_keys + 2)[1:-1].astype(int)
        return [inf.keys[i] for i in picks]

    # -- the read layer
    def read_layers(self, layout: str, inf: StoreInfo) -> None:
        import zarr
        from obstore.store import S3Store
        from zarr.storage import FsspecStore, ObjectStore

        from lincae_core.location import storage_options

        url = self.url(layout, "a.zarr")
        n_obj = min(self.args.read_objects, len(inf.objects))
        rng = np.random.default_rng(3)
        rows = np.sort(rng.choice(len(inf.keys), min(self.args.read_tracks, len(inf.keys)), replace=False))
        cf = inf.frames

        def opener(layer: str) -> Any:
            if layer == "fsspec":
                st: Any = FsspecStore.from_url(url, storage_options=storage_options("s3"), read_only=True)
            else:
                st = ObjectStore(S3Store.from_url(url, client_options={"allow_http": True}), read_only=True)
            return zarr.open_array(st, path="latents", mode="r")

        tests: dict[str, Callable[[Any], None]] = {
            f"{n_obj} whole objects, one read each": lambda arr: [
                arr[k * cf : (k + 1) * cf] for k in range(n_obj)
            ],
            f"{n_obj} whole objects, one read": lambda arr: arr[0 : n_obj * cf],
            f"{len(rows)} short tracks, one read each": lambda arr: [
                arr[int(inf.offsets[i]) : int(inf.offsets[i] + inf.lengths[i])] for i in rows
            ],
        }
        for test, fn in tests.items():
            for layer in ("fsspec", "obstore"):
                secs, counts, mb = [], Counter(), 0.0
                for _ in range(self.args.repeat_reads):
                    clear_fs_cache()
                    arr = opener(layer)
                    with counting(self.server, self.tracer):
                        secs.append(timed(lambda arr=arr, fn=fn: fn(arr)))
                    counts = Counter({k: v for k, v in self.server.request_counts().items() if v})
                    if layer == "fsspec":
                        sizes = list_sizes(self.server, f"{layout}/a.zarr/latents")
                        mb = (
                            sum(
                                c.nbytes if c.nbytes >= 0 else sizes.get(c.key, 0)
                                for c in self.tracer.calls
                                if c.kind == "GET" and c.ok
                            )
                            / 1e6
                        )
                if layer == "obstore":  # zarr asks either layer for the same bytes
                    mb = self.reads[-1]["mb"]
                self.reads.append(
                    {
                        "layout": layout,
                        "test": test,
                        "layer": layer,
                        "seconds": statistics.median(secs),
                        "all_seconds": secs,
                        "requests": dict(counts),
                        "mb": mb,
                    }
                )


# ------------------------------------------------------------------------------- reporting
def fmt_counts(d: dict[str, int], kinds: tuple[str, ...] = ("GET", "PUT", "HEAD", "LIST")) -> list[str]:
    return [str(d.get(k, 0)) for k in kinds]


def print_table(runs: list[Run]) -> list[str]:
    head = (
        "| op | layout | s bucket | s local | bucket/local | GET | PUT | HEAD | LIST | other "
        "| minimum | requests/min | MB moved (min) |"
    )
    lines = [head, "|" + "---|" * 13]
    for r in runs:
        other = sum(v for k, v in r.server.items() if k not in ("GET", "PUT", "HEAD", "LIST"))
        ratio = r.s_bucket / r.s_local if r.s_local else float("nan")
        lines.append(
            f"| {r.op} | {r.layout} | {r.s_bucket:.2f} | {r.s_local:.2f} | {ratio:.1f}x | "
            + " | ".join(fmt_counts(r.server))
            + f" | {other} | {r.min_total} | {r.requests / max(1, r.min_total):.2f}x "
            f"| {r.mb_get + r.mb_put:.1f} ({r.mb_min:.1f}) |"
        )
    return lines


def per_object_model(runs: list[Run]) -> dict[str, dict[str, dict[str, float]]]:
    """Each op's requests split into the terms of the paper estimate: per input latent object,
    per output object (latent object, shard or audio file), per track-table chunk (input and
    output), per work unit, and the rest (opening and creating stores, checks)."""
    out: dict[str, dict[str, dict[str, float]]] = defaultdict(dict)
    for r in runs:
        n = {t: sum(v.values()) for t, v in r.terms.items()}
        out[r.op][r.layout] = {
            "in_objects": r.in_objects,
            "per_in_object": n["in"] / max(1, r.in_objects),
            "out_objects": r.out_objects,
            "per_out_object": n["out"] / max(1, r.out_objects),
            "table_chunks": r.table_chunks,
            "per_table_chunk": n["table"] / max(1, r.table_chunks),
            "units": r.units,
            "per_unit": n["unit"] / max(1, r.units),
            "rest": n["rest"],
        }
    return out


def cost(counts: dict[str, float]) -> float:
    """Dollars for these requests at S3 Standard prices."""
    return sum(PRICE.get(k, 0.0) * v / 1000 for k, v in counts.items())


def paper(runs: list[Run], layouts: dict[str, dict[str, Any]], tracks: int, minutes: float) -> list[str]:
    """Requests and request cost of encode, gain and export of a store of ``tracks`` tracks of
    ``minutes`` each, per layout: the minimum the layout allows, and lincae as measured here,
    each term scaled (objects, table chunks, work units)."""
    from lincae_core.ops.engine import block_groups
    from lincae_core.ops.export.shards import _shards_per_unit

    spf, rate = GEOMETRY["samples_per_frame"], GEOMETRY["sample_rate"]
    per_track = math.ceil(minutes * 60 * rate / spf)
    frames = tracks * per_track
    gb = frames * 128 / 1e9
    table = 6 * math.ceil(tracks / 65536) + math.ceil(tracks / 4096)  # input table chunks
    windows = tracks * (math.ceil((per_track - 16) / 16) + 1)  # 2-s windows, zero-padded last
    shards = math.ceil(windows / 1000)
    lines = [
        "",
        f"On paper: {tracks:,} tracks x {minutes:g} min = {frames:,} frames, {gb:.1f} GB "
        f"(64-dim mono float16); {table} input table chunks; export: {windows:,} 2-s windows "
        f"in {shards:,} shards of 1000",
        "",
        "| op | layout | objects | requests, minimum | $ minimum | requests, lincae now | $ now | now/min |",
        "|---|---|---|---|---|---|---|---|",
    ]
    by = {(r.op, r.layout): r for r in runs}
    for layout, li in layouts.items():
        n_obj = math.ceil(frames / li["frames_per_object"])
        enc_min = {"PUT": n_obj + table + 10, "LIST": 1}  # objects, table, 10 zarr.json
        r = by.get(("encode", layout))
        if r is None or not r.units or not r.out_objects:
            lines.append(
                f"| encode | {layout} | {n_obj:,} | {sum(enc_min.values()):,} | {cost(enc_min):.2f} "
                "| (not measured) | | |"
            )
        else:  # requests per flush, times the flushes an object got here, and one flush an object
            for f in sorted({round(r.units / r.out_objects, 1), 1.0}, reverse=True):
                enc: Counter[str] = Counter()
                for term, kinds in r.terms.items():
                    for k, v in kinds.items():
                        enc[k] += v if term == "rest" else v / r.units * f * n_obj
                n_enc, n_min = sum(enc.values()), sum(enc_min.values())
                lines.append(
                    f"| encode ({f:.1f} flushes an object) | {layout} | {n_obj:,} | {n_min:,} "
                    f"| {cost(enc_min):.2f} | {n_enc:,.0f} | {cost(enc):.2f} | {n_enc / n_min:.2f}x |"
                )
        for op in ("gain", "export"):
            r = by.get((op, layout))
            if r is None:
                continue
            t_scale = table / max(1, r.in_table_chunks)  # table chunks scale with the tracks
            out_table = (r.table_chunks - r.in_table_chunks) * t_scale
            if op == "gain":
                units = len(block_groups(frames, li["frames_per_object"], 16384, 1))
                o_in, o_out = n_obj, n_obj
                mn = {"GET": o_in + table + 9, "PUT": o_out + out_table + r.out_meta + 1, "LIST": 1}
            else:
                units = math.ceil(shards / _shards_per_unit(shards, 1000, 1))
                o_in, o_out = n_obj, shards
                mn = {"GET": o_in + table + 9, "PUT": o_out, "LIST": 1}
            scale = {
                "in": o_in / max(1, r.in_objects),
                "out": o_out / max(1, r.out_objects),
                "table": t_scale,
                "unit": units / max(1, r.units),
                "rest": 1.0,
            }
            now: Counter[str] = Counter()
            for term, kinds in r.terms.items():
                for k, v in kinds.items():
                    now[k] += v * scale[term]
            n_now, n_min = sum(now.values()), sum(mn.values())
            lines.append(
                f"| {op} | {layout} | {n_obj:,} | {n_min:,.0f} | {cost(mn):.2f} | {n_now:,.0f} "
                f"| {cost(now):.2f} | {n_now / n_min:.2f}x |"
            )
    return lines


def main() -> None:  # noqa: C901 - a linear script
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0].replace("\n", " "))
    ap.add_argument("--tracks", type=int, default=10000)
    ap.add_argument("--quick", action="store_true", help="1000 tracks, for a fast check")
    ap.add_argument("--layouts", nargs="+", default=list(LAYOUTS), choices=list(LAYOUTS))
    ap.add_argument("--ops", nargs="+", default=list(OPS), choices=list(OPS))
    ap.add_argument("--decode-keys", type=int, default=4)
    ap.add_argument("--encode-files", type=int, default=72, help="audio files encoded (encode)")
    ap.add_argument("--encode-seconds", type=float, default=30.0, help="seconds a file (encode)")
    ap.add_argument("--read-objects", type=int, default=16, help="whole objects read (read layer)")
    ap.add_argument("--read-tracks", type=int, default=200, help="short tracks read (read layer)")
    ap.add_argument("--repeat-reads", type=int, default=3)
    ap.add_argument("--no-reads", action="store_true", help="skip the read-layer comparison")
    ap.add_argument("--extras", type=int, default=12, help="extra-request groups printed per op")
    ap.add_argument("--json", type=Path, default=None, help="write every figure here")
    ap.add_argument("--log-dir", default=None, help="write each op's requests (JSON Lines) here")
    ap.add_argument("--keep", action="store_true", help="keep the temporary folder")
    ap.add_argument("--paper-tracks", type=int, default=1_000_000, help="the on-paper store's tracks")
    ap.add_argument("--paper-minutes", type=float, default=3.0, help="the on-paper store's track length")
    ap.add_argument(
        "--storage-options",
        default=None,
        help="JSON fsspec options for lincae (LINCAE_STORAGE_OPTIONS), e.g. to measure a fix: "
        "'{\"max_concurrency\": 1}'",
    )
    args = ap.parse_args()
    if args.quick:
        args.tracks = 1000
    logging.basicConfig(level=logging.ERROR)
    logging.getLogger("asyncio").setLevel(logging.CRITICAL)  # s3fs sessions dropped with its cache
    if args.storage_options is not None:
        os.environ["LINCAE_STORAGE_OPTIONS"] = args.storage_options
    load0 = os.getloadavg()
    revision = git_revision()
    work = Path(tempfile.mkdtemp(prefix="lincae-bench-s3-"))
    server = start_server(work)
    tracer = Tracer()
    tracer.install()
    bench = Bench(args, work, server, tracer)
    t0 = time.perf_counter()
    try:
        for layout in args.layouts:
            t = time.perf_counter()
            info = bench.prepare(layout)
            print(
                f"{layout}: 2 stores of {args.tracks} tracks, {info['a'].nbytes / 1e6:.0f} MB and "
                f"{len(info['a'].objects)} latent objects each, built in {time.perf_counter() - t:.0f} s",
                file=sys.stderr,
            )
            bench.ops(layout, info)
            if not args.no_reads and layout != "object1k":
                bench.read_layers(layout, info["a"])
            delete_prefix(server, f"{layout}/")
            shutil.rmtree(work / layout, ignore_errors=True)
    finally:
        server.stop()
        if not args.keep:
            shutil.rmtree(work, ignore_errors=True)
    load1 = os.getloadavg()
    lines = [
        f"{args.tracks} tracks of 20-300 frames (64-dim mono float16); moto on 127.0.0.1; "
        f"load average {load0[0]:.2f} at the start, {load1[0]:.2f} at the end "
        f"({os.cpu_count()} cores); {time.perf_counter() - t0:.0f} s in all; lincae at {revision}",
        "",
    ]
    lines += print_table(bench.runs)
    lines += [
        "",
        "| layout | frames an object | chunks an object | objects | MiB an object | objects per GB |",
    ]
    lines += ["|---|---|---|---|---|---|"]
    for name, li in bench.layout_info.items():
        lines.append(
            f"| {name} | {li['frames_per_object']} | {li['chunks_per_object']} | {li['objects']} "
            f"| {li['object_mib']:.3f} | {li['objects_per_gb']:.0f} |"
        )
    model = per_object_model(bench.runs)
    lines += [
        "",
        "| op | layout | input objects | requests each | output objects | requests each "
        "| table chunks | requests each | work units | requests each | other requests |",
        "|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for op, by in model.items():
        for layout, m in by.items():
            lines.append(
                f"| {op} | {layout} | {m['in_objects']} | {m['per_in_object']:.2f} | {m['out_objects']} "
                f"| {m['per_out_object']:.2f} | {m['table_chunks']} | {m['per_table_chunk']:.2f} "
                f"| {m['units']} | {m['per_unit']:.1f} | {m['rest']:.0f} |"
            )
    if bench.reads:
        lines += [
            "",
            "| layout | read | layer | s (median) | GET | HEAD | LIST | MB |",
            "|---|---|---|---|---|---|---|---|",
        ]
        for rd in bench.reads:
            q = rd["requests"]
            lines.append(
                f"| {rd['layout']} | {rd['test']} | {rd['layer']} | {rd['seconds']:.3f} | "
                f"{q.get('GET', 0)} | {q.get('HEAD', 0)} | {q.get('LIST', 0)} | {rd['mb']:.1f} |"
            )
    for r in bench.runs:
        mismatch = {
            k: (r.server.get(k, 0), r.client.get(k, 0))
            for k in KINDS
            if r.server.get(k, 0) != r.client.get(k, 0)
        }
        lines += [
            "",
            f"{r.op} on {r.layout}: {r.requests} requests, minimum {r.min_total} "
            f"({', '.join(f'{k} {v}' for k, v in r.minimum.items())}); extra requests by source"
            + (f" (server/client counts differ: {mismatch})" if mismatch else "")
            + ":",
        ]
        by_site: dict[str, Counter[str]] = defaultdict(Counter)
        for e in r.extras:
            by_site[re.sub(r":\d+ ->", " ->", e["site"])][e["kind"]] += e["count"]
        for site, kinds in sorted(by_site.items(), key=lambda kv: -sum(kv[1].values())):
            detail = ", ".join(f"{k} {v}" for k, v in kinds.most_common())
            lines.append(f"  {sum(kinds.values()):6d}  {site}  ({detail})")
        lines.append("  largest groups:")
        for e in r.extras[: args.extras]:
            lines.append(
                f"  {e['count']:6d}  {e['reason']}: {e['key']}  <- {e['site']} (in {e['via']})  [{e['lib']}]"
            )
        if len(r.extras) > args.extras:
            lines.append(f"  {sum(e['count'] for e in r.extras[args.extras :]):6d}  (other groups)")
    lines += paper(bench.runs, bench.layout_info, args.paper_tracks, args.paper_minutes)
    print("\n".join(lines))
    if args.json:
        record = {
            "tracks": args.tracks,
            "revision": revision,
            "storage_options": args.storage_options,
            "loadavg": [load0, load1],
            "cores": os.cpu_count(),
            "layouts": bench.layout_info,
            "runs": [{**asdict(r), "requests": r.requests, "min_total": r.min_total} for r in bench.runs],
            "per_object_model": model,
            "reads": bench.reads,
        }
        args.json.write_text(json.dumps(record, indent=1, default=lambda o: o.tolist()))


if __name__ == "__main__":
    main()
