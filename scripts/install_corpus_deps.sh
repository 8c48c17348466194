#!/usr/bin/env bash
# Install the Debian packages needed by scripts/render_corpus.py:
#   fluidsynth          - renders the per-stem MIDI files to WAV
#   fluid-soundfont-gm  - the General MIDI soundfont (FluidR3_GM.sf2)
#   espeak-ng           - synthesises the "sung" vocal phrases
#   timgm6mb-soundfont  - the held-out soundfont of the demo's music excerpt (scripts/make_demo_music.sh)
#   chromium, fonts-liberation - the listening-page test opens report.html in headless Chromium
# and the PyPI package soxr (resampling of the espeak-ng output).
#
# Idempotent: does nothing when everything is already installed.
# Works as root; uses sudo when not root and sudo is available.
set -euo pipefail

PKGS=(fluidsynth fluid-soundfont-gm espeak-ng sox timgm6mb-soundfont chromium fonts-liberation)  # sox: README test

missing=()
for pkg in "${PKGS[@]}"; do
    if ! dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null | grep -q "install ok installed"; then
        missing+=("$pkg")
    fi
done

if [ "$(id -u)" -eq 0 ]; then
    SUDO=()
elif command -v sudo >/dev/null 2>&1; then
    SUDO=(sudo)
else
    SUDO=()
fi

if [ "${#missing[@]}" -gt 0 ]; then
    if [ "$(id -u)" -ne 0 ] && [ "${#SUDO[@]}" -eq 0 ]; then
        echo "install_corpus_deps.sh: need root or sudo to install: ${missing[*]}" >&2
        exit 1
    fi
    echo "install_corpus_deps.sh: installing ${missing[*]}" >&2
    "${SUDO[@]}" apt-get update
    DEBIAN_FRONTEND=noninteractive "${SUDO[@]}" apt-get install -y --no-install-recommends "${missing[@]}"
else
    echo "install_corpus_deps.sh: Debian packages already installed: ${PKGS[*]}" >&2
fi

PYTHON="${PYTHON:-python3}"
if command -v "$PYTHON" >/dev/null 2>&1 && ! "$PYTHON" -c "import soxr" >/dev/null 2>&1; then
    echo "install_corpus_deps.sh: installing soxr (PyPI)" >&2
    "$PYTHON" -m pip install --quiet soxr
fi
