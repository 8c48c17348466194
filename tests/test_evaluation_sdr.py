"""Tests of the community SDR conventions (evaluation/sdr.py): museval as an oracle, hand cases, silence."""

from __future__ import annotations

import importlib.util
import math
from pathlib import Path

import numpy as np
import pytest
import torch
from conftest import music

from lincae_core.errors import ShapeMismatchError
from lincae_core.evaluation.protocol import ChunkCodec, EvalConfig, community_sdr, score_stems_track
from lincae_core.evaluation.sdr import bsseval_v4_sdr, global_sdr, mean_over_tracks, median_over_tracks

SR = 8000


def _museval_metrics():
    """museval's ``metrics`` module (numpy/scipy only), without its package ``__init__`` (musdb, pandas).

    Installed by scripts/setup_test.sh with ``--no-deps``; the test skips where it is absent.
    """
    spec = importlib.util.find_spec("museval")
    if spec is None or not spec.submodule_search_locations:
        pytest.skip("museval is not installed (scripts/setup_test.sh installs it)")
    path = Path(next(iter(spec.submodule_search_locations))) / "metrics.py"
    module_spec = importlib.util.spec_from_file_location("museval_metrics_oracle", path)
    module = importlib.util.module_from_spec(module_spec)
    module_spec.loader.exec_module(module)
    return module


def _pair(seconds: float, noise: float, seed: int) -> tuple[np.ndarray, np.ndarray]:
    ref = music(SR, seconds, seed=seed).astype(np.float64)
    rng = np.random.default_rng(seed)
    est = 0.8 * ref + noise * rng.standard_normal(ref.shape) + 0.3 * np.roll(ref, 37)
    return est, ref


@pytest.mark.parametrize(("seconds", "noise"), [(4.0, 0.05), (3.6, 0.2)])  # 3.6 s: a partial frame
def test_bsseval_v4_matches_museval(seconds: float, noise: float) -> None:
    museval = _museval_metrics()
    est, ref = _pair(seconds, noise, seed=3)
    # museval.evaluate(mode="v4") calls bss_eval this way: images version, time-invariant filters
    sdr, *_ = museval.bss_eval(
        ref[None, :, None],
        est[None, :, None],
        window=SR,
        hop=SR,
        compute_permutation=False,
        framewise_filters=False,
        bsseval_sources_version=False,
    )
    framed = bsseval_v4_sdr(est, ref, SR)
    assert framed.frames == sdr.shape[1] == int(seconds)  # the partial last frame is dropped
    assert framed.silent == 0
    assert framed.median == pytest.approx(float(np.nanmedian(sdr[0])), abs=1e-6)


def test_bsseval_v4_silent_frames_match_museval() -> None:
    museval = _museval_metrics()
    est, ref = _pair(4.0, 0.1, seed=5)
    ref[SR : 2 * SR] = 0.0  # a silent reference frame
    sdr, *_ = museval.bss_eval(
        ref[None, :, None],
        est[None, :, None],
        window=SR,
        hop=SR,
        framewise_filters=False,
        bsseval_sources_version=False,
    )
    assert np.isnan(sdr[0, 1])  # museval skips it too
    framed = bsseval_v4_sdr(torch.from_numpy(est).float(), torch.from_numpy(ref).float(), SR)
    assert (framed.frames, framed.silent) == (4, 1)
    assert framed.median == pytest.approx(float(np.nanmedian(sdr[0])), abs=1e-3)  # float32 input


def test_hand_computed_case() -> None:
    # two 1-s frames: frame 0 error 0.1·s (20 dB), frame 1 error 0.01·s (40 dB), one partial frame
    ref = np.ones(2 * SR + 100)
    est = ref.copy()
    est[:SR] += 0.1
    est[SR : 2 * SR] += 0.01
    est[2 * SR :] += 5.0  # dropped by the framing, counted by the global SDR
    framed = bsseval_v4_sdr(est, ref, SR)
    assert (framed.frames, framed.silent) == (2, 0)
    assert framed.median == pytest.approx(30.0)  # the median of 20 and 40 dB
    energy = 2 * SR + 100
    err = SR * 0.01 + SR * 1e-4 + 100 * 25.0
    assert global_sdr(est, ref) == pytest.approx(10 * math.log10((energy + 1e-7) / (err + 1e-7)))


def test_silence_never_crashes() -> None:
    zeros = np.zeros(3 * SR)
    framed = bsseval_v4_sdr(np.ones(3 * SR), zeros, SR)
    assert (framed.frames, framed.silent) == (3, 3)
    assert math.isnan(framed.median)
    assert global_sdr(np.ones(3 * SR), zeros) < -100  # finite: δ keeps it defined
    assert global_sdr(zeros, zeros) == pytest.approx(0.0)
    assert bsseval_v4_sdr(zeros[:100], np.ones(100), SR).frames == 1  # shorter than a frame
    assert bsseval_v4_sdr(np.ones(SR), np.ones(SR), SR).median == math.inf  # perfect, as museval
    assert median_over_tracks([math.nan, 3.0, 5.0, 10.0]) == 5.0
    assert median_over_tracks([math.nan]) is None
    assert mean_over_tracks([1.0, 2.0]) == 1.5
    with pytest.raises(ShapeMismatchError):
        bsseval_v4_sdr(np.ones(10), np.ones(11), SR)


def test_stems_track_reports_both_references(micro_model, one_thread) -> None:
    x = [torch.from_numpy(music(16000, 2.5, seed=i)) for i in range(4)]
    x[3][:16000] = 0.0  # vocals silent in the first second
    codec = ChunkCodec(micro_model, EvalConfig(chunk_s=1.0, overlap_s=0.25))
    row, _ = score_stems_track(codec, x, "t")
    assert row["sep_vocals_silent_frames_true"] == 1.0
    assert row["sep_vocals_silent_frames_ae"] == 0.0  # the decoded stem is never digital silence
    assert row["sep_bass_silent_frames_true"] == 0.0
    assert row["sep_vocals_sdr_frames"] == 2.0
    for stem in ("bass", "vocals"):
        for key in ("sdr_v4_ae", "sdr_v4_true", "sdr_global_ae", "sdr_global_true"):
            assert math.isfinite(row[f"sep_{stem}_{key}"]), key
    same = community_sdr(x[0], {"self": x[0]}, 16000, "")
    assert same["sdr_v4_self"] == math.inf
    assert same["sdr_global_self"] > 90  # 10·log10(Σs²/δ)
