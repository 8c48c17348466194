"""Measure what the latent chunk layout costs the streaming operations (docs/store-format.md).

With direct chunk-file I/O (``lincae_core/store/array.py``) reading a chunk is a byte range of one
file, so what is left of the per-chunk cost is the file system's: creating every output chunk
file (and, with ``/`` chunk keys, the two directories ``c/K`` and ``c/K/0`` above it), opening
it and writing it through a temporary file. This script builds the same two ``--size-gb``
float16 stores (bench_ops geometry: 64-dim mono latents, tracks of 500-5000 frames) in several
layouts, ``FRAMES`` frames a chunk with ``/`` or ``.`` chunk keys, and times ``gain`` and
``mix`` on each, every run in a fresh process with torch and the engine already imported, the
layouts and the raw torch memmap pass of bench_ops interleaved ``--repeat`` times (the machine is
noisy: medians). It prints seconds, the ratio to the raw pass and the number of files an output
has, and writes JSON (``--out``).

Usage:  python scripts/bench_chunk_layout.py --size-gb 0.5 --repeat 7 --layouts 4096/,16384/,16384.
"""

from __future__ import annotations

import argparse
import json
import shutil
import sys
import tempfile
from pathlib import Path
from typing import Any

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import bench_ops  # noqa: E402

from lincae_core.store import latent_store  # noqa: E402


def parse_layouts(text: str) -> list[tuple[int, str]]:
    """``"4096/,16384."`` -> ``[(4096, "/"), (16384, ".")]``."""
    out = []
    for item in text.split(","):
        item = item.strip()
        if not item or item[-1] not in "/." or not item[:-1].isdigit():
            raise SystemExit(f"--layouts: expected FRAMES/ or FRAMES. items, got {item!r}")
        out.append((int(item[:-1]), item[-1]))
    return out


def build(root: Path, size_gb: float, layout: tuple[int, str]) -> dict[str, Any]:
    """Stores A and B of one layout under ``root`` (their raw twins are not needed: removed)."""
    latent_store.CHUNK_KEY_SEPARATOR = layout[1]  # the outputs of the ops keep it
    info = {}
    for name, seed in (("A", 1), ("B", 2)):
        info = bench_ops.build_store(root / name, size_gb, seed=seed, chunk_frames=layout[0])
        Path(f"{root / name}.f16").unlink()
    return info


def main() -> None:
    """Build every layout, run the interleaved measurements, print the table, write the JSON."""
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--size-gb", type=float, default=0.5)
    p.add_argument("--repeat", type=int, default=7)
    p.add_argument(
        "--layouts",
        default="4096/,16384/,4096.,16384.,65536.",
        help="Comma-separated FRAMES/ or FRAMES. (chunk frames and chunk key separator).",
    )
    p.add_argument("--dir", default=None, help="Work directory (default: a temp dir, removed).")
    p.add_argument("--out", default="bench_chunk_layout.json")
    args = p.parse_args()
    layouts = parse_layouts(args.layouts)
    work = Path(args.dir or tempfile.mkdtemp(prefix="lincae-layout-"))
    try:
        raw_dir = work / "raw"
        info = bench_ops.build_store(raw_dir / "A", args.size_gb, seed=1)
        bench_ops.build_store(raw_dir / "B", args.size_gb, seed=2)
        dirs = {}
        for lay in layouts:
            dirs[lay] = work / f"{lay[0]}{'slash' if lay[1] == '/' else 'dot'}"
            build(dirs[lay], args.size_gb, lay)
        print(
            f"built {len(layouts)} layouts of 2 x {info['nbytes'] / 1e9:.2f} GB ({info['tracks']} tracks)",
            file=sys.stderr,
        )
        runs: dict[str, list[float]] = {}
        files: dict[str, int] = {}
        for _ in range(args.repeat):
            for op in ("gain", "mix"):
                ns = argparse.Namespace(dir=raw_dir, jobs=1)
                runs.setdefault(f"{op} raw", []).append(
                    bench_ops.run_child(f"torch-{op}", ns, info["frames"], None)["seconds"]
                )
                for lay, d in dirs.items():
                    ns = argparse.Namespace(dir=d, jobs=1)
                    name = f"{op} {lay[0]}{lay[1]}"
                    runs.setdefault(name, []).append(
                        bench_ops.run_child(op, ns, info["frames"], None)["seconds"]
                    )
                    lat = d / f"out-{op}" / "latents"
                    files[name] = sum(1 for q in lat.rglob("*") if q.name != "zarr.json")
        rows = []
        for op in ("gain", "mix"):
            raw = float(np.median(runs[f"{op} raw"]))
            print(f"{op}: raw torch pass {raw:.3f} s (median of {args.repeat})")
            print(f"  {'layout':>8} {'seconds':>8} {'min':>6} {'raw/ops':>8} {'files+dirs':>11}")
            for lay in layouts:
                name = f"{op} {lay[0]}{lay[1]}"
                sec = float(np.median(runs[name]))
                ratio = float(np.median([r / o for r, o in zip(runs[f"{op} raw"], runs[name], strict=True)]))
                rows.append(
                    {
                        "op": op,
                        "chunk_frames": lay[0],
                        "separator": lay[1],
                        "seconds": sec,
                        "min_seconds": min(runs[name]),
                        "ratio_vs_raw": ratio,
                        "output_entries": files[name],
                        "raw_seconds": raw,
                    }
                )
                print(
                    f"  {lay[0]:>7}{lay[1]} {sec:8.3f} {min(runs[name]):6.3f} {ratio:8.2f} {files[name]:>11}"
                )
        Path(args.out).write_text(
            json.dumps({"store": info, "repeat": args.repeat, "rows": rows, "runs": runs}, indent=2)
        )
        print(f"wrote {args.out}")
    finally:
        if args.dir is None:
            shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
