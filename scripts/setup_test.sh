#!/usr/bin/env bash
# Install everything the test suite needs on a fresh machine (idempotent).
#  1. torch==2.13.0 first: the CPU build on local disk (an unpinned torch pulls a ~5 GB CUDA build)
#  2. the package with its test, dask and s3 extras (the Dask cluster test; moto's S3 server)
#  3. test oracles installed with --no-deps so that they never replace torch:
#     linear-cae (the reference Lin-CAE implementation), torchmetrics + lightning-utilities
#     (SI-SDR/SNR), auraloss (multi-resolution STFT), museval (BSSEval v4 SDR; the tests load its
#     metrics module alone, which needs only numpy and scipy)
#  4. Debian: fluidsynth + GM soundfont + espeak-ng for the rendered stems corpus (as root)
set -euo pipefail
cd "$(dirname "$0")/.."
PIP=(python -m pip install --quiet --disable-pip-version-check)
"${PIP[@]}" "torch==2.13.0"
"${PIP[@]}" -e ".[test,dask,s3]"
"${PIP[@]}" --no-deps "linear-cae==0.1.4" "torchmetrics==1.9.0" "lightning-utilities==0.15.3" "auraloss==0.4.0" "museval==0.4.1"
"${PIP[@]}" --no-deps "stable-audio-tools==0.0.19" "torchdata==0.11.0"  # its loaders read our exports (tests/_sat_torchaudio.py); StatefulDataLoader
if [ "$(id -u)" -eq 0 ] || command -v sudo >/dev/null 2>&1; then
    bash scripts/install_corpus_deps.sh
else
    echo "setup_test.sh: not root: skipping Debian packages (corpus rendering tests will skip)" >&2
fi
python -c "import torch; assert torch.__version__.startswith('2.13.0'), torch.__version__"
