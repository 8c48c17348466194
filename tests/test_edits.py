"""Latent edits on real stores: fades, envelopes, loudness normalization, pan, mid/side."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from _latent_stores import make_store
from click.testing import CliRunner

from lincae_cli.main import cli
from lincae_core import LatentStore, gain_store, midside_store, pan_store
from lincae_core.errors import ConfigError, StoreMismatchError
from lincae_core.ops import OpOptions
from lincae_core.ops.channels import pan_gains
from lincae_core.ops.envelopes import parse_envelope
from lincae_core.ops.plan import FrameShape

TRACKS = [("x", 30), ("y", 50), ("z", 7)]
SR, SPF = 16000, 256  # the geometry of _latent_stores


def frame_times(frames: int) -> np.ndarray:
    return (np.arange(frames) + 0.5) * SPF / SR


def test_fades_scale_each_frame_by_the_curve_at_its_centre(tmp_path: Path) -> None:
    src, zs = make_store(tmp_path / "A", TRACKS, dtype="float32")
    out = tmp_path / "f"
    run = OpOptions(dtype="float32", max_block_frames=16)
    gain_store(src, out, 0.5, fade_in_s=0.1, fade_out_s=0.2, options=run)
    got = LatentStore.open(out)
    for key, frames in TRACKS:
        t, dur = frame_times(frames), (frames * SPF - 100) / SR
        g = 0.5 * np.clip(t / 0.1, 0, 1) * np.clip((dur - t) / 0.2, 0, 1)
        np.testing.assert_allclose(
            got.read_track(key), zs[key] * g[:, None, None].astype(np.float32), rtol=1e-6, atol=1e-7
        )
    assert got.lineage[-1]["args"]["fade_out_s"] == 0.2


def test_envelope_in_db_and_gain_is_interpolated_on_the_frame_grid(tmp_path: Path) -> None:
    src, zs = make_store(tmp_path / "A", TRACKS, dtype="float32")
    curve = tmp_path / "env.csv"
    curve.write_text("# a ramp down and back\ntime_s,db\n0.1,0\n0.3,-20\n0.5,0\n")
    gain_store(src, tmp_path / "e", envelope=curve, options=OpOptions(dtype="float32"))
    t = frame_times(50)
    g = np.interp(t, [0.1, 0.3, 0.5], [1.0, 0.1, 1.0])  # dB points, amplitude between them
    np.testing.assert_allclose(
        LatentStore.open(tmp_path / "e").read_track("y"), zs["y"] * g[:, None, None], rtol=1e-6
    )
    env = LatentStore.open(tmp_path / "e").lineage[-1]["args"]["envelope"]
    assert env["times"] == [0.1, 0.3, 0.5]


def test_envelope_file_format_and_refusals() -> None:
    t, g = parse_envelope("0 1\n1.5, 0.25\n")
    assert t.tolist() == [0.0, 1.5]
    assert g.tolist() == [1.0, 0.25]
    for bad, why in (
        ("time_s,lufs\n0,1\n", "header"),
        ("0,1\n0,2\n", "increasing"),
        ("0,x\n", "two numbers"),
        ("", "at least one"),
    ):
        with pytest.raises(ConfigError, match=why):
            parse_envelope(bad)
    with pytest.raises(ConfigError, match="fade_in"):
        FrameShape(SR, SPF, fade_in_s=-1)


def test_to_lufs_gains_each_track_by_its_measured_loudness(tmp_path: Path) -> None:
    src, zs = make_store(tmp_path / "A", TRACKS, dtype="float32", loudness=True)
    src.write_loudness([0, 1], [-20.0, -8.0])  # z unmeasured
    with pytest.raises(StoreMismatchError, match="'z'"):
        gain_store(src, tmp_path / "n", to_lufs=-14)
    result = gain_store(src, tmp_path / "n", to_lufs=-14, missing="skip", options=OpOptions(dtype="float32"))
    assert result.skipped == 1
    out = LatentStore.open(tmp_path / "n")
    assert out.keys() == ["x", "y"]
    np.testing.assert_allclose(out.read_track("x"), zs["x"] * 10 ** (6 / 20), rtol=1e-6)
    np.testing.assert_allclose(out.read_track("y"), zs["y"] * 10 ** (-6 / 20), rtol=1e-6)
    assert out.sources()["gain"][:, 0] == pytest.approx([10**0.3, 10**-0.3])  # recorded
    with pytest.raises(StoreMismatchError, match="every done track"):  # no array at all
        gain_store(make_store(tmp_path / "B", TRACKS)[0], tmp_path / "m", to_lufs=-14)


def test_to_lufs_fused_pass_equals_the_float32_accumulation(tmp_path: Path) -> None:
    """Consecutive float16 tracks with different --to-lufs gains take one fused pass with
    per-frame gains (kernel.direct, fused_pass): the same bits as the general float32 block path."""
    tracks = [(f"t{i}", 5 + 3 * i) for i in range(12)]
    src, _ = make_store(tmp_path / "A", tracks, loudness=True)
    src.write_loudness(list(range(12)), [-30.0 + 2.5 * i for i in range(12)])
    gain_store(src, tmp_path / "fused", to_lufs=-14, options=OpOptions(max_block_frames=64))
    general = OpOptions(max_block_frames=64, fused_pass=False)  # the general path
    gain_store(src, tmp_path / "general", to_lufs=-14, options=general)
    fused, general = LatentStore.open(tmp_path / "fused"), LatentStore.open(tmp_path / "general")
    assert fused.dtype == "float16"
    for key in fused.keys():  # noqa: SIM118 - LatentStore.keys()
        np.testing.assert_array_equal(fused.read_track(key), general.read_track(key))


def test_pan_is_constant_power_per_channel_and_refuses_mono(tmp_path: Path) -> None:
    src, zs = make_store(tmp_path / "A", TRACKS, dtype="float32")
    for p in (-1.0, -0.3, 0.0, 1.0):
        gl, gr = pan_gains(p)
        assert gl**2 + gr**2 == pytest.approx(1.0)
        pan_store(src, tmp_path / f"p{p}", pan=p)
        got = LatentStore.open(tmp_path / f"p{p}").read_track("y")
        np.testing.assert_allclose(got[:, 0], zs["y"][:, 0] * np.float32(gl), rtol=1e-6, atol=1e-7)
        np.testing.assert_allclose(got[:, 1], zs["y"][:, 1] * np.float32(gr), rtol=1e-6, atol=1e-7)
    assert pan_gains(-1.0) == pytest.approx((1.0, 0.0))
    mono, _ = make_store(tmp_path / "M", TRACKS, channels=1)
    with pytest.raises(StoreMismatchError, match="stereo"):
        pan_store(mono, tmp_path / "pm", pan=0.5)
    with pytest.raises(StoreMismatchError, match="stereo"):
        midside_store(mono, tmp_path / "mm", "ms")


def test_channel_matrices_take_runs_of_tracks(tmp_path: Path) -> None:
    """pan and midside apply one matrix to every frame, so whole runs of tracks take one pass
    (merge_runs, the default; kernel.runs is tested in test_ops.py): the same bits as track by
    track (merge_runs=False)."""
    tracks = [(f"t{i}", 3 + 2 * i) for i in range(30)]
    src, _ = make_store(tmp_path / "A", tracks)
    runs, by_track = OpOptions(max_block_frames=64), OpOptions(max_block_frames=64, merge_runs=False)
    pan_store(src, tmp_path / "pan", pan=0.3, options=runs)
    midside_store(src, tmp_path / "ms", "ms", options=runs)
    pan_store(src, tmp_path / "pan1", pan=0.3, options=by_track)
    midside_store(src, tmp_path / "ms1", "ms", options=by_track)
    for a, b in (("pan", "pan1"), ("ms", "ms1")):
        x, y = LatentStore.open(tmp_path / a), LatentStore.open(tmp_path / b)
        for key in x.keys():  # noqa: SIM118 - LatentStore.keys()
            np.testing.assert_array_equal(x.read_track(key), y.read_track(key))


def test_midside_is_exact_and_its_inverse_restores_the_store(tmp_path: Path) -> None:
    src, zs = make_store(tmp_path / "A", TRACKS)  # float16 left/right
    midside_store(src, tmp_path / "ms", "ms")
    ms = LatentStore.open(tmp_path / "ms")
    assert ms.dtype == "float32"
    left, right = (zs["y"][:, c].astype(np.float32) for c in (0, 1))
    np.testing.assert_array_equal(ms.read_track("y")[:, 0], (left + right) / 2)
    np.testing.assert_array_equal(ms.read_track("y")[:, 1], (left - right) / 2)
    with pytest.raises(StoreMismatchError, match="mid/side latents already"):
        midside_store(ms, tmp_path / "ms2", "ms")
    with pytest.raises(StoreMismatchError, match="mid/side"):
        pan_store(ms, tmp_path / "pan", pan=0.2)
    midside_store(ms, tmp_path / "lr", "lr")
    lr = LatentStore.open(tmp_path / "lr")
    assert lr.dtype == "float16"
    for key, z in zs.items():
        np.testing.assert_array_equal(lr.read_track(key), z)  # bit-exact round trip
    with pytest.raises(StoreMismatchError, match="left/right latents already"):
        midside_store(lr, tmp_path / "lr2", "lr")


def test_edit_commands_print_the_store_and_refuse_as_documented(tmp_path: Path) -> None:
    make_store(tmp_path / "A", TRACKS, failed=("z",))
    make_store(tmp_path / "M", TRACKS, channels=1)
    a = str(tmp_path / "A")

    def run(*args: str) -> tuple[int, str, str]:
        r = CliRunner().invoke(cli, list(args))
        return r.exit_code, r.stdout, r.stderr

    code, out, err = run("gain", a, "--fade-in", "0.1", "--fade-out", "0.1")
    assert (code, out) == (3, f"{tmp_path / 'A.gain.zarr'}\n")  # z failed: left out, exit 3
    code, out, _ = run("pan", a, "--pan", "0.5", "--json", "--require-complete")
    assert code == 1
    code, out, _ = run("pan", a, "--channel-gains", "1", "0.5", "--json")
    assert (code, json.loads(out)["op"]) == (3, "pan")
    code, out, _ = run("midside", a, "--to", "ms", "-o", str(tmp_path / "ms"))
    assert (code, out) == (3, f"{tmp_path / 'ms'}\n")
    code, _, err = run("pan", str(tmp_path / "M"), "--pan", "0")
    assert code == 1
    assert "needs a stereo store" in err
    assert run("pan", a)[0] == 2
    assert run("pan", a, "--pan", "2")[0] == 2
    assert run("gain", a, "--gain", "1", "--to-lufs", "-14")[0] == 2
    assert run("gain", a)[0] == 2
    assert run("midside", a)[0] == 2
