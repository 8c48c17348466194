"""Input fingerprint of an encode: size+mtime (one ``stat`` a file) against a content hash.

Prints, for a library of N files of S seconds, the seconds each fingerprint takes and their ratio
within one run. The store's ``inputs_sha256`` uses size+mtime (lincae_core.discovery).

    python scripts/bench_fingerprint.py --files 500 --seconds 30
"""

from __future__ import annotations

import argparse
import hashlib
import tempfile
import time
from pathlib import Path

import numpy as np
import soundfile as sf

from lincae_core.discovery import discover, sources_fingerprint


def content_fingerprint(paths: list[Path]) -> str:
    h = hashlib.sha256()
    for p in paths:
        with open(p, "rb") as f:
            for block in iter(lambda f=f: f.read(1 << 20), b""):
                h.update(block)
    return h.hexdigest()


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--files", type=int, default=500)
    ap.add_argument("--seconds", type=float, default=30.0)
    ap.add_argument("--rate", type=int, default=44100)
    args = ap.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        x = np.random.default_rng(0).standard_normal((int(args.seconds * args.rate), 2)) * 0.1
        for i in range(args.files):
            sf.write(root / f"{i:05d}.wav", x.astype(np.float32), args.rate, subtype="PCM_16")
        sources = discover(root)
        t0 = time.perf_counter()
        sources_fingerprint(sources)
        stat_s = time.perf_counter() - t0
        t0 = time.perf_counter()
        content_fingerprint([s.path for s in sources])
        hash_s = time.perf_counter() - t0  # page cache warm: a lower bound for a cold library
    mb = args.files * x.shape[0] * 4 / 1e6
    print(
        f"{args.files} files x {args.seconds:.0f} s ({mb:.0f} MB of PCM_16 stereo): "
        f"size+mtime {stat_s * 1000:.1f} ms, content SHA-256 {hash_s * 1000:.0f} ms "
        f"(warm cache), ratio {hash_s / stat_s:.0f}x"
    )


if __name__ == "__main__":
    main()
