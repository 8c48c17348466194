#!/usr/bin/env bash
# Rebuild the demo's held-out music excerpt (lincae_core/demo_music): 3 songs x 10 s rendered with
# the TimGM6mb soundfont, which no training corpus used, then written as 16-bit FLAC.
set -euo pipefail
cd "$(dirname "$0")/.."
command -v fluidsynth >/dev/null || bash scripts/install_corpus_deps.sh
[ -f /usr/share/sounds/sf2/TimGM6mb.sf2 ] || apt-get install -y -q timgm6mb-soundfont
tmp=$(mktemp -d)
python scripts/render_corpus.py "$tmp" --tracks 3 --seconds 10 --seed 2026 --sample-rate 44100 \
  --soundfont /usr/share/sounds/sf2/TimGM6mb.sf2
python - "$tmp" <<'PY'
import pathlib, sys
import soundfile as sf
src, dst = pathlib.Path(sys.argv[1]), pathlib.Path("lincae_core/demo_music")
for i, t in enumerate(sorted(p for p in src.iterdir() if p.is_dir()), 1):
    (dst / f"heldout-{i}").mkdir(parents=True, exist_ok=True)
    for f in sorted(t.glob("*.wav")):
        x, sr = sf.read(f, dtype="float32")
        sf.write(dst / f"heldout-{i}" / f"{f.stem}.flac", x, sr, format="FLAC", subtype="PCM_16")
PY
rm -rf "$tmp"
