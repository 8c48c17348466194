"""Manifest of a before/after run (scripts/before_after.sh): one line per output file.

Binary files (chunks, WAVs, shards) are hashed as they are; JSON files are hashed after removing
the fields that differ on every run by design (ids, times, paths, versions, host names).
``--compare A B`` compares the manifests of two runs and exits 1 on any difference.
"""

from __future__ import annotations

import contextlib
import hashlib
import io
import json
import sys
import tarfile
from pathlib import Path

ROOT = ""  # the run folder: absolute paths under it are compared relative to it
VOLATILE = {
    "store_id",
    "created",
    "time",
    "path",
    "paths",
    "host",
    "pid",
    "version",
    "lincae_version",
    "command",
    "argv",
    "cwd",
    "seconds",
    "elapsed_s",
    "started",
    "finished",
    "updated",
    "library",
    "root",
    "source",
    "writer",
    "user",
    "inputs_sha256",  # hashes the inputs' mtimes by design: new on every run
}


def _scrub(v):
    if isinstance(v, dict):
        return {k: _scrub(x) for k, x in sorted(v.items()) if k not in VOLATILE}
    if isinstance(v, list):
        return [_scrub(x) for x in v]
    if isinstance(v, str) and ROOT and v.startswith(ROOT):
        return "<ROOT>" + v[len(ROOT) :]
    return v


def _digest(p: Path) -> str:
    data = p.read_bytes()
    if p.suffix == ".json" or p.name in (".zattrs", ".zarray", ".zgroup", "zarr.json"):
        with contextlib.suppress(ValueError):
            data = json.dumps(_scrub(json.loads(data)), sort_keys=True).encode()
    elif p.suffix == ".tar":  # member bytes only (tar headers carry mtimes)
        h = hashlib.sha256()
        with tarfile.open(fileobj=io.BytesIO(data)) as tf:
            for m in tf.getmembers():
                h.update(m.name.encode())
                f = tf.extractfile(m)
                raw = f.read() if f else b""
                if m.name.endswith(".json"):
                    raw = json.dumps(_scrub(json.loads(raw)), sort_keys=True).encode()
                h.update(raw)
        return h.hexdigest()
    return hashlib.sha256(data).hexdigest()


def manifest(root: Path) -> dict[str, str]:
    global ROOT
    ROOT = str(root.resolve())
    out = {}
    for p in sorted(root.rglob("*")):
        rel = p.relative_to(root).as_posix()
        if p.is_file() and not rel.startswith(("lib/", "stereo/")) and rel != "manifest.txt":
            out[rel] = _digest(p)
    return out


def main() -> int:
    if sys.argv[1] == "--compare":
        a, b = (
            dict(line.split("  ", 1)[::-1] for line in Path(d, "manifest.txt").read_text().splitlines())
            for d in sys.argv[2:4]
        )
        diff = sorted(k for k in a.keys() | b.keys() if a.get(k) != b.get(k))
        for k in diff:
            print(f"differs: {k}")
        print(
            f"{len(a.keys() & b.keys()) - len([k for k in diff if k in a and k in b])} identical, "
            f"{len(diff)} different of {len(a.keys() | b.keys())} files"
        )
        return 1 if diff else 0
    for rel, h in manifest(Path(sys.argv[1])).items():
        print(f"{h}  {rel}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
