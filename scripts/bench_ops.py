"""Benchmark the streaming latent operations against a plain numpy pass, with peak memory.

Builds two synthetic float16 stores of ``--size-gb`` each (paper geometry: 64-dim mono latents,
tracks of 500-5000 frames), then runs, each in a fresh subprocess so that its peak RSS
(``getrusage``) is its own:

- ``gain``: ``lincae_core.ops.gain_store`` of store A;
- ``mix``:  ``lincae_core.ops.mix_stores`` of A and B paired by key;
- ``numpy-gain`` / ``numpy-mix``: the same arithmetic as a plain numpy pass over the same
  latents kept as raw memory-mapped files (read float16 block, compute float32, write float16),
  i.e. the same bytes in and out with no store format, no track table and no Zarr;
- ``torch-gain`` / ``torch-mix``: that pass again with torch's fast float16 casts (what the ops
  engine uses), the stricter reference: it isolates the cost of the store format itself;
- ``gain:zarr-io`` / ``mix:zarr-io``: the ops with ``LINCAE_ZARR_IO=1``, i.e. through zarr's own
  chunk I/O instead of the direct chunk-file path (``lincae_core/store/array.py``).

It prints a table and writes JSON (``--out``): throughput in GB/s of input latents, the ratios
ops/numpy (target >= 0.5) and ops/torch-pass, and the peak RSS of every run.
``--rss-limit-mb`` additionally caps the address space of the op subprocesses (RLIMIT_AS) to
show they work in less memory than the store occupies.

``--with-model CKPT`` also times the audio-domain path (decode -> mix -> encode) on a few tracks
with a real model: see :func:`audio_path_speedup`.

Usage:  python scripts/bench_ops.py --size-gb 1 --out bench_ops.json [--jobs 2] [--keep]
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from lincae_core import ops  # noqa: E402
from lincae_core.store import LatentStore  # noqa: E402
from lincae_core.store.synthetic import synthetic_store  # noqa: E402

PRESET_NAMES = ("paper", "small", "tiny")

GEOMETRY = {"sample_rate": 44100, "samples_per_frame": 4096, "latent_dim": 64}
BLOCK = 16384  # frames per block of the numpy baseline (the ops' default max_block_frames)


def build_store(path: Path, size_gb: float, seed: int, chunk_frames: int | None = None) -> dict[str, Any]:
    """Create a synthetic float16 store of about ``size_gb`` GB and its raw ``.f16`` twin
    (``chunk_frames``: frames per latent chunk, default the store default)."""
    d = GEOMETRY["latent_dim"]
    frames_total = int(size_gb * 1e9 / (2 * d))
    rng = np.random.default_rng(0)  # same track table for A and B (pairing by key)
    lengths = []
    while sum(lengths) < frames_total:
        lengths.append(int(rng.integers(500, 5000)))
    s = synthetic_store(
        path,
        [(f"track-{i:06d}", f) for i, f in enumerate(lengths)],
        seed=seed,
        geometry=GEOMETRY,
        chunk_frames=chunk_frames,
        model_id="bench",
    )
    raw = np.memmap(f"{path}.f16", dtype=np.float16, mode="w+", shape=(s.total_frames, 1, d))
    for b0 in range(0, s.total_frames, BLOCK):  # the raw twin: the same bytes, no store format
        raw[b0 : b0 + BLOCK] = s.latents.read(b0, min(b0 + BLOCK, s.total_frames))
    raw.flush()
    del raw
    return {
        "tracks": s.n_tracks,
        "frames": s.total_frames,
        "nbytes": s.total_frames * d * 2,
        "chunk_frames": s.chunk_frames,
    }


def numpy_pass(inputs: list[str], out: str, gains: list[float], frames: int, use_torch: bool = False) -> None:
    """The baseline: ``out = sum g_k x_k`` over raw float16 files, block by block.

    ``use_torch`` does the float16<->float32 casts with torch (one thread) instead of numpy, the
    way the ops engine does them: the same pass without any store format around it.
    """
    shape = (frames, 1, GEOMETRY["latent_dim"])
    xs = [np.memmap(p, dtype=np.float16, mode="r", shape=shape) for p in inputs]
    y = np.memmap(out, dtype=np.float16, mode="w+", shape=shape)
    if use_torch:
        import torch

        torch.set_num_threads(1)
    for b0 in range(0, frames, BLOCK):
        if use_torch:
            acc = torch.from_numpy(np.asarray(xs[0][b0 : b0 + BLOCK])).float().mul_(gains[0])
            for x, g in zip(xs[1:], gains[1:], strict=True):
                acc.add_(torch.from_numpy(np.asarray(x[b0 : b0 + BLOCK])), alpha=g)
            y[b0 : b0 + BLOCK] = acc.half().numpy()
            continue
        acc = xs[0][b0 : b0 + BLOCK].astype(np.float32) * np.float32(gains[0])
        for x, g in zip(xs[1:], gains[1:], strict=True):
            acc += np.float32(g) * x[b0 : b0 + BLOCK].astype(np.float32)
        y[b0 : b0 + BLOCK] = acc.astype(np.float16)
    # No flush (msync): like the ops' file writes, the output is left to the page cache.
    del y


def child(args: argparse.Namespace) -> None:
    """Run one measured operation in this (fresh) process and print a JSON result line."""
    if args.rss_limit_mb:
        lim = args.rss_limit_mb * 2**20
        resource.setrlimit(resource.RLIMIT_AS, (lim, lim))
    work = Path(args.dir)
    if args.child.endswith(":zarr-io"):  # the ops with zarr's own chunk I/O (before the direct path)
        os.environ["LINCAE_ZARR_IO"] = "1"
        args.child = args.child.removesuffix(":zarr-io")
    # Every pass starts with the same libraries loaded (torch, the ops engine): the measured
    # seconds are the pass over the bytes, not the interpreter's one-off imports (~0.5-0.9 s of
    # torch here), which the CLI start-up figures of scripts/bench_scale.py cover instead.
    import torch  # noqa: F401

    from lincae_core.ops import engine, levels, mixing  # noqa: F401

    t0 = time.perf_counter()
    if args.child == "gain":
        ops.gain_store(work / "A", work / "out-gain", 0.5, jobs=args.jobs)
    elif args.child == "mix":
        ops.mix_stores([work / "A", work / "B"], work / "out-mix", [0.5, 0.5], jobs=args.jobs)
    else:  # numpy-gain, numpy-mix, torch-gain, torch-mix
        kind, op = args.child.split("-")
        ins = [f"{work}/A.f16"] + ([f"{work}/B.f16"] if op == "mix" else [])
        numpy_pass(ins, f"{work}/out.f16", [0.5] * len(ins), args.frames, kind == "torch")
    seconds = time.perf_counter() - t0
    if args.jobs != 1:  # reap joblib's workers so that RUSAGE_CHILDREN counts them
        from joblib.externals.loky import get_reusable_executor

        get_reusable_executor().shutdown(wait=True)
    print(json.dumps({"seconds": seconds, "peak_rss_mb": peak_rss_mb()}))


def peak_rss_mb() -> float:
    """Peak RSS of this process and of its finished children (joblib workers), in MiB.

    ``VmHWM`` of this process, not ``getrusage(RUSAGE_SELF)``: on Linux a fork+exec'd child
    inherits its parent's ``ru_maxrss``.
    """
    hwm = 0
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith("VmHWM:"):
                hwm = int(line.split()[1])  # KiB
    return max(hwm, resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss) / 1024


def run_child(name: str, args: argparse.Namespace, frames: int, limit: int | None) -> dict:
    """Run ``name`` in a subprocess; return its timing and peak RSS."""
    cmd = [
        sys.executable,
        __file__,
        "--child",
        name,
        "--dir",
        str(args.dir),
        "--frames",
        str(frames),
        "--jobs",
        str(args.jobs),
        "--rss-limit-mb",
        str(limit or 0),
    ]
    for old in ("out-gain", "out-mix", "out.f16"):  # deleting is not part of any measured pass
        target = Path(args.dir) / old
        shutil.rmtree(target) if target.is_dir() else target.unlink(missing_ok=True)
    os.sync()  # start every run with no dirty pages left by the previous one
    proc = subprocess.run(cmd, capture_output=True, text=True, check=False)
    if proc.returncode != 0:
        raise RuntimeError(f"{name} failed:\n{proc.stderr[-2000:]}")
    return json.loads(proc.stdout.strip().splitlines()[-1])


def audio_path_speedup(model: Any, work: Path, n_tracks: int = 4, seconds: float = 30.0) -> dict:
    """Time latent mixing (``mix_stores``) against decode -> mix -> encode on the same tracks.

    Two stores of ``n_tracks`` synthetic tracks are encoded with ``model`` (a real LinCAE); the
    latent path mixes them store to store, the audio path decodes both (``inference.decode``), sums
    the audio and encodes the sum (``inference.encode``), without even writing the result.
    """
    import soundfile as sf
    import torch

    from lincae_core import inference
    from lincae_core.discovery import discover
    from lincae_core.encoding.job import EncodeSettings, encode_files

    rate = model.config.sample_rate
    rng = np.random.default_rng(0)
    for name in ("A", "B"):
        lib = work / f"lib{name}"
        lib.mkdir(parents=True, exist_ok=True)
        for i in range(n_tracks):
            x = 0.1 * rng.standard_normal(int(seconds * rate)).astype(np.float32)
            sf.write(lib / f"t{i}.wav", x, rate)
        encode_files(
            discover(lib), work / f"audio{name}.zarr", model, settings=EncodeSettings(overwrite=True)
        )
    t0 = time.perf_counter()
    ops.mix_stores([work / "audioA.zarr", work / "audioB.zarr"], work / "mixAB.zarr", overwrite=True)
    t_latent = time.perf_counter() - t0
    sa, sb = LatentStore.open(work / "audioA.zarr"), LatentStore.open(work / "audioB.zarr")
    t0 = time.perf_counter()
    keys = sa.keys()  # a LatentStore is not iterable
    for key in keys:
        za, zb = (s.read_track(key).astype(np.float32).transpose(1, 2, 0) for s in (sa, sb))
        n = sa.track(key).samples
        xa, xb = (
            inference.decode(model, torch.from_numpy(za), n),
            inference.decode(model, torch.from_numpy(zb), n),
        )
        inference.encode(model, xa + xb)
    t_audio = time.perf_counter() - t0
    return {
        "audio_path_s": t_audio,
        "latent_path_s": t_latent,
        "speedup": t_audio / max(t_latent, 1e-9),
        "tracks": n_tracks,
        "seconds_per_track": seconds,
        "model": model.config.name,
    }


def main() -> None:
    """Build the stores, run every measurement, print the table and write the JSON."""
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--size-gb", type=float, default=1.0, help="Size of each input store.")
    p.add_argument("--dir", default=None, help="Work directory (default: a temp dir).")
    p.add_argument("--jobs", type=int, default=1)
    p.add_argument(
        "--chunk-frames",
        type=int,
        default=None,
        help="Frames per latent chunk of the built stores (default: the store default).",
    )
    p.add_argument("--repeat", type=int, default=3, help="Runs of each pass (median reported).")
    p.add_argument("--rss-limit-mb", type=int, default=0, help="RLIMIT_AS of the op subprocesses (0: none).")
    p.add_argument("--out", default="bench_ops.json")
    p.add_argument("--keep", action="store_true", help="Keep the work directory.")
    p.add_argument(
        "--reuse", action="store_true", help="Reuse the stores of a kept --dir instead of building them."
    )
    p.add_argument("--audio-tracks", type=int, default=4, help="Tracks per store for --with-model.")
    p.add_argument("--audio-seconds", type=float, default=30.0, help="Seconds per track for --with-model.")
    p.add_argument(
        "--with-model",
        default=None,
        metavar="CKPT",
        help="Also time decode->mix->encode: a checkpoint dir, default, or a preset name (random weights).",
    )
    p.add_argument("--child", default=None, help=argparse.SUPPRESS)
    p.add_argument("--frames", type=int, default=0, help=argparse.SUPPRESS)
    args = p.parse_args()
    if args.child:
        child(args)
        return
    args.dir = Path(args.dir or tempfile.mkdtemp(prefix="lincae-bench-"))
    args.dir.mkdir(parents=True, exist_ok=True)
    try:
        results = measure(args)
    finally:
        if not args.keep:
            shutil.rmtree(args.dir, ignore_errors=True)
    Path(args.out).write_text(json.dumps(results, indent=2))
    print(f"wrote {args.out}")


def measure(args: argparse.Namespace) -> dict[str, Any]:
    """Build the inputs and run the four measured passes (two ops, two baselines)."""
    t0 = time.perf_counter()
    if args.reuse and (args.dir / "B.f16").exists():
        a = LatentStore.open(args.dir / "A")
        info = {
            "tracks": a.n_tracks,
            "frames": a.total_frames,
            "nbytes": a.describe()["nbytes"],
            "chunk_frames": a.chunk_frames,
        }
    else:
        info = build_store(args.dir / "A", args.size_gb, seed=1, chunk_frames=args.chunk_frames)
        build_store(args.dir / "B", args.size_gb, seed=2, chunk_frames=args.chunk_frames)
    print(
        f"built 2 stores of {info['nbytes'] / 1e9:.2f} GB ({info['tracks']} tracks, "
        f"chunks of {info['chunk_frames']} frames) "
        f"in {time.perf_counter() - t0:.0f} s",
        file=sys.stderr,
    )
    rows = []
    for op, n_in in (("gain", 1), ("mix", 2)):
        runs = []
        for _ in range(args.repeat):  # interleaved, so that load changes hit all three alike
            runs.append(
                {
                    "numpy": run_child(f"numpy-{op}", args, info["frames"], None),
                    "torch": run_child(f"torch-{op}", args, info["frames"], None),
                    "ops": run_child(op, args, info["frames"], args.rss_limit_mb or None),
                    "ops_zarr_io": run_child(f"{op}:zarr-io", args, info["frames"], None),
                }
            )
        gb = n_in * info["nbytes"] / 1e9
        sec = {k: float(np.median([r[k]["seconds"] for r in runs])) for k in runs[0]}
        rows.append(
            {
                "op": op,
                "input_gb": gb,
                "jobs": args.jobs,
                "repeat": args.repeat,
                "seconds": sec,
                "ops_gb_s": gb / sec["ops"],
                "numpy_gb_s": gb / sec["numpy"],
                "torch_pass_gb_s": gb / sec["torch"],
                "ratio_vs_numpy": float(
                    np.median([r["numpy"]["seconds"] / r["ops"]["seconds"] for r in runs])
                ),
                "ratio_vs_torch_pass": float(
                    np.median([r["torch"]["seconds"] / r["ops"]["seconds"] for r in runs])
                ),
                "ratio_vs_zarr_io": float(
                    np.median([r["ops_zarr_io"]["seconds"] / r["ops"]["seconds"] for r in runs])
                ),
                "ops_peak_rss_mb": max(r["ops"]["peak_rss_mb"] for r in runs),
                "numpy_peak_rss_mb": max(r["numpy"]["peak_rss_mb"] for r in runs),
                "rss_limit_mb": args.rss_limit_mb or None,
            }
        )
    print(
        f"{'op':5} {'in GB':>6} {'ops GB/s':>9} {'numpy GB/s':>11} {'ratio':>6} "
        f"{'torch-pass GB/s':>16} {'ratio':>6} {'vs zarr I/O':>12} {'ops RSS MB':>11}"
    )
    for r in rows:
        print(
            f"{r['op']:5} {r['input_gb']:6.2f} {r['ops_gb_s']:9.3f} {r['numpy_gb_s']:11.3f} "
            f"{r['ratio_vs_numpy']:6.2f} {r['torch_pass_gb_s']:16.3f} "
            f"{r['ratio_vs_torch_pass']:6.2f} {r['ratio_vs_zarr_io']:11.2f}x {r['ops_peak_rss_mb']:11.0f}"
        )
    out: dict[str, Any] = {"store": info, "results": rows, "load_avg": list(os.getloadavg())}
    if args.with_model:
        from lincae_core.models import load_model

        if args.with_model in PRESET_NAMES:  # random weights of a preset: same cost as trained
            from lincae_core.checkpoint import model_id
            from lincae_core.config import get_preset
            from lincae_core.nn.model import LinCAE

            model = LinCAE(get_preset(args.with_model)).eval()
            model.model_id = model_id(model.state_dict(), model.config)
        else:
            model = load_model(None if args.with_model == "default" else args.with_model)
        out["audio_path"] = r = audio_path_speedup(
            model, Path(args.dir or tempfile.mkdtemp()) / "audio_path", args.audio_tracks, args.audio_seconds
        )
        print(
            f"audio path (decode -> mix -> encode) {r['audio_path_s']:.2f} s vs latent mix "
            f"{r['latent_path_s']:.3f} s: {r['speedup']:.0f}x "
            f"({r['tracks']} x {r['seconds_per_track']:.0f} s, "
            f"{r['model']})"
        )
    return out


if __name__ == "__main__":
    main()
