"""How every store command grows with the number of tracks: stores of 10^4 and 10^5 tracks.

For each size N it builds, with the public store API, two mono stores A and B and one stereo store
S of N tracks x ``--frames`` latent frames (64-dim float16, the default model's 16 kHz / 2048
geometry, 4096-frame chunks), then runs every command that works on stores exactly as a user
types it (``lincae ...`` in a subprocess, stdout to /dev/null), and prints seconds per command
and per 1,000 tracks, so growth with N is visible (a command whose cost per 1,000 tracks rises
with N grows faster than linearly). A subprocess includes the CLI's start-up (importing torch,
about a second): that floor is measured too (``lincae --version``), and the per-1,000-tracks
columns subtract it.

``encode`` and ``decode`` are not here: their cost is the model's and grows with the audio's
duration, not with the number of tracks (``scripts/bench_encode.py``,
``scripts/bench_small_files.py``).

    python scripts/bench_scale.py --sizes 10000 100000 --frames 40 --out bench_scale.json
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

from lincae_core.store.synthetic import synthetic_store

GEOMETRY = {"sample_rate": 16000, "samples_per_frame": 2048, "latent_dim": 64}


def make(path: Path, n: int, frames: int, channels: int, seed: int) -> None:
    """A done store of ``n`` tracks ``t0000000..`` of ``frames`` frames each (bounded blocks)."""
    synthetic_store(path, [(f"t{i:07d}", frames) for i in range(n)], seed=seed, channels=channels)


def commands(w: Path) -> list[tuple[str, list[str]]]:
    """(label, argv) of every measured command, on the stores under ``w``."""
    a, b, s, keys = str(w / "A.zarr"), str(w / "B.zarr"), str(w / "S.zarr"), str(w / "keys1000.txt")
    return [
        ("start-up (lincae --version)", ["--version"]),
        ("ls", ["ls", a]),
        ("info", ["info", a]),
        ("select 1000 keys", ["select", a, "--keys-from", keys, "-o", str(w / "sel.zarr")]),
        ("gain", ["gain", a, "--gain", "0.5", "-o", str(w / "gain.zarr")]),
        ("mix (by key)", ["mix", a, b, "-o", str(w / "mix.zarr")]),
        ("mix --pair random", ["mix", a, b, "--pair", "random", "--seed", "1", "-o", str(w / "rmix.zarr")]),
        ("extract", ["extract", a, "--minus", b, "-o", str(w / "ext.zarr")]),
        ("concat 1000 keys", ["concat", a, "--keys-from", keys, "-o", str(w / "cat.zarr")]),
        ("pan (stereo)", ["pan", s, "--pan", "0.3", "-o", str(w / "pan.zarr")]),
        ("midside (stereo)", ["midside", s, "--to", "ms", "-o", str(w / "ms.zarr")]),
        ("stats", ["stats", a]),
        ("export --window 2", ["export", a, str(w / "shards" / "%06d.tar"), "--window", "2", "--overwrite"]),
    ]


def run(argv: list[str]) -> tuple[float, int]:
    """Wall seconds and exit status of ``lincae ARGV`` (quiet; stdout discarded)."""
    cmd = (
        [sys.executable, "-m", "lincae_cli", *argv[:1], "-q", *argv[1:]]
        if argv[0] != "--version"
        else [sys.executable, "-m", "lincae_cli", "--version"]
    )
    t0 = time.perf_counter()
    proc = subprocess.run(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True, check=False)
    dt = time.perf_counter() - t0
    if proc.returncode not in (0, 3):
        raise RuntimeError(f"lincae {' '.join(argv)} failed ({proc.returncode}): {proc.stderr[-500:]}")
    return dt, proc.returncode


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--sizes", type=int, nargs="+", default=[10_000, 100_000])
    ap.add_argument("--frames", type=int, default=40)
    ap.add_argument("--dir", default=None, help="Work directory (default: a temp dir, removed).")
    ap.add_argument("--out", default=None, help="Write the results as JSON here.")
    args = ap.parse_args()
    root = Path(args.dir or tempfile.mkdtemp(prefix="lincae-scale-"))
    results: dict[str, dict[str, float]] = {}
    try:
        for n in args.sizes:
            w = root / f"n{n}"
            shutil.rmtree(w, ignore_errors=True)
            w.mkdir(parents=True)
            t0 = time.perf_counter()
            make(w / "A.zarr", n, args.frames, 1, 1)
            make(w / "B.zarr", n, args.frames, 1, 2)
            make(w / "S.zarr", n, args.frames, 2, 3)
            keys = [f"t{i:07d}" for i in np.random.default_rng(0).choice(n, min(1000, n), replace=False)]
            (w / "keys1000.txt").write_text("\n".join(sorted(keys)) + "\n")
            mb = n * args.frames * 64 * 2 * 4 / 1e6
            took = time.perf_counter() - t0
            print(f"N={n}: built A, B (mono) and S (stereo), {mb:.0f} MB, in {took:.0f} s", file=sys.stderr)
            for label, argv in commands(w):
                os.sync()
                dt, _ = run(argv)
                results.setdefault(label, {})[str(n)] = dt
                print(f"  {label:28s} {dt:8.2f} s", file=sys.stderr)
            shutil.rmtree(w, ignore_errors=True)
    finally:
        if not args.dir:
            shutil.rmtree(root, ignore_errors=True)
    sizes = [str(n) for n in args.sizes]
    base = results.get("start-up (lincae --version)", {})
    head = (
        "| command | "
        + " | ".join(f"N={n}: s" for n in sizes)
        + " | "
        + " | ".join(f"N={n}: s / 1000 tracks, less start-up" for n in sizes)
        + " |"
    )
    print(head)
    print("|" + "---|" * (1 + 2 * len(sizes)))
    for label, row in results.items():
        secs = " | ".join(f"{row[n]:.2f}" for n in sizes)
        per = " | ".join(
            "—"
            if label.startswith("start-up")
            else f"{max(row[n] - base.get(n, 0.0), 0.0) / (int(n) / 1000):.3f}"
            for n in sizes
        )
        print(f"| {label} | {secs} | {per} |")
    if args.out:
        Path(args.out).write_text(
            json.dumps(
                {"frames": args.frames, "seconds": results, "load_avg": list(os.getloadavg())}, indent=2
            )
        )


if __name__ == "__main__":
    main()
