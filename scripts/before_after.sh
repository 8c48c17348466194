#!/usr/bin/env bash
# Before/after check of a refactor: run the same commands with two versions of lincae on the same
# library and compare every output byte for byte (JSON metadata compared with its per-run fields
# -- store_id, created, time, path and the like -- removed).
#
#   bash scripts/before_after.sh TREE OUTDIR        # run the commands with the lincae in TREE
#   bash scripts/before_after.sh --compare DIR1 DIR2  # compare two such runs
#
# TREE is a checkout (for example `git worktree add /tmp/before COMMIT`); OUTDIR is created.
# The library is synthetic and seeded (the same on every run): 3 songs x (vocals, accompaniment,
# mixture), 8 s, 16 kHz, one stereo file. One thread, so that the runs are deterministic.
set -euo pipefail
HERE="$(cd "$(dirname "$0")/.." && pwd)"
if [ "${1:-}" = "--compare" ]; then
  exec python "$HERE/scripts/before_after_manifest.py" --compare "$2" "$3"
fi
TREE="$(cd "$1" && pwd)"; OUT="$2"
mkdir -p "$OUT"; OUT="$(cd "$OUT" && pwd)"
export PYTHONPATH="$TREE" OMP_NUM_THREADS=1 LINCAE_DEVICE=cpu
L() { python -m lincae_cli "$@"; }
cd "$OUT"
python - <<'EOF'
import numpy as np, soundfile as sf, os
rng = np.random.default_rng(10)
sr = 16000
t = np.arange(8 * sr) / sr
for s in range(3):
    voc = 0.3 * np.sin(2 * np.pi * (220 + 55 * s) * t) * (1 + 0.5 * np.sin(2 * np.pi * 0.5 * t))
    acc = 0.1 * rng.standard_normal(t.size) * np.exp(-((t * 4) % 1) * 6)
    for name, x in (("vocals", voc), ("accompaniment", acc), ("mixture", voc + acc)):
        os.makedirs(f"lib/{name}", exist_ok=True)
        sf.write(f"lib/{name}/song{s}.wav", x.astype(np.float32), sr)
os.makedirs("stereo", exist_ok=True)
sf.write("stereo/st.wav", np.stack([np.sin(2 * np.pi * 330 * t), 0.5 * rng.standard_normal(t.size)], 1).astype(np.float32) * 0.3, sr)
EOF
L encode lib/vocals v.zarr
L encode lib/accompaniment a.zarr
L encode lib/mixture m.zarr
L encode stereo st.zarr --channels stereo
L gain v.zarr -o g.zarr --db -6
L gain v.zarr -o fade.zarr --fade-in 1 --fade-out 2
L mix v.zarr a.zarr -o mix.zarr --gain 0.5 --gain 1.0
L extract m.zarr --minus a.zarr -o ext.zarr
L extract m.zarr --stem vocals=v.zarr --stem accompaniment=a.zarr -o stems
L select v.zarr -o sel.zarr --start 1 --duration 4
printf 'song0\nsong1\n' > keys.txt
L concat v.zarr --keys-from keys.txt -o cat.zarr --crossfade 0.5
L pan st.zarr -o pan.zarr --pan 0.3
L midside st.zarr -o ms.zarr --to ms
L stats v.zarr
L decode v.zarr dec_v
L decode mix.zarr dec_mix
L decode ext.zarr dec_ext
L decode st.zarr dec_st
L decode cat.zarr dec_cat
L export v.zarr 'shards/%06d.tar' --window 2 --hop 1
python "$HERE/scripts/before_after_manifest.py" "$OUT" > "$OUT/manifest.txt"
echo "$OUT/manifest.txt"
