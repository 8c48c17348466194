"""``lincae concat``: tracks joined on the latent frame grid with a latent crossfade."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from _latent_stores import make_store
from click.testing import CliRunner

from lincae_cli.main import cli
from lincae_core import LatentStore, concat_store, parse_concat_list
from lincae_core.errors import ConfigError, StoreMismatchError
from lincae_core.ops import OpOptions
from lincae_core.ops.envelopes import ramp_gains

TRACKS = [("x", 30), ("y", 50), ("z", 7)]
SPF = 256  # the geometry of _latent_stores (16 kHz); samples = frames * 256 - 100


def crossfaded(parts: list[np.ndarray], w: int) -> np.ndarray:
    """Reference: segments overlapped by ``w`` frames, ramps ``(j + 0.5) / w`` up and down."""
    up = ((np.arange(w) + 0.5) / w).astype(np.float32)[:, None, None]
    out = parts[0].astype(np.float32).copy()
    for z in parts[1:]:
        z = z.astype(np.float32).copy()
        if w:
            out[len(out) - w :] *= up[::-1]
            z[:w] *= up
            out[len(out) - w :] += z[:w]
        out = np.concatenate([out, z[w:]])
    return out


def test_concat_with_crossfade_is_the_ramped_overlap_add(tmp_path: Path) -> None:
    src, zs = make_store(tmp_path / "A", TRACKS, dtype="float32", chunk_frames=8)
    entries = [("a", ["x", "y", "z"]), ("b", ["y"]), ("c", ["z", "x", "z"])]
    result = concat_store(
        src, tmp_path / "o", entries, crossfade_s=3 * SPF / 16000, options=OpOptions(max_block_frames=16)
    )  # 3 frames; several blocks per track
    assert (result.op, result.tracks, result.info["crossfade_frames"]) == ("concat", 3, 3)
    out = LatentStore.open(tmp_path / "o")
    assert out.keys() == ["a", "b", "c"]
    for key, keys in entries:
        ref = crossfaded([zs[k] for k in keys], 3)
        np.testing.assert_allclose(out.read_track(key), ref, rtol=1e-6, atol=1e-7)
        frames = [dict(TRACKS)[k] for k in keys]
        assert out.track(key).frames == sum(frames) - 3 * (len(keys) - 1)
        start_last = sum(frames[:-1]) - 3 * (len(keys) - 1)
        assert out.track(key).samples == start_last * SPF + frames[-1] * SPF - 100
    np.testing.assert_array_equal(out.read_track("b"), zs["y"])  # one input: a copy
    args = out.lineage[-1]["args"]
    assert args["crossfade_frames"] == 3
    assert args["list"]["entries"][0] == ["a", ["x", "y", "z"]]
    assert out.lineage[-1]["op"] == "concat"


def test_without_crossfade_tracks_are_butted_on_the_frame_grid(tmp_path: Path) -> None:
    src, zs = make_store(tmp_path / "A", TRACKS)  # float16 stays float16, bit for bit
    concat_store(src, tmp_path / "o", [("all", ["z", "x", "y"])])
    got = LatentStore.open(tmp_path / "o")
    np.testing.assert_array_equal(got.read_track("all"), np.concatenate([zs["z"], zs["x"], zs["y"]]))
    assert got.track("all").samples == (7 + 30) * SPF + 50 * SPF - 100


def test_ramps_sum_to_one_over_the_overlap() -> None:
    for w in (1, 2, 5, 16):
        down = ramp_gains(10, w, 10 + w, 0, w)  # the last w frames of a segment
        up = ramp_gains(0, w, 40, w, 0)
        np.testing.assert_allclose(down + up, 1.0, rtol=0, atol=1e-7)
        assert (np.diff(up) > 0).all()


def test_concat_list_formats_and_refusals(tmp_path: Path) -> None:
    assert parse_concat_list("x\n\ny z\n") == [("concat", ["x", "y z"])]  # keys taken literally
    assert parse_concat_list("a\tx\ty\r\nb\tz\n") == [("a", ["x", "y"]), ("b", ["z"])]
    # the one list-file rule: blank and # comment lines skipped (line numbers still count them)
    assert parse_concat_list("# joins\na\tx\n\n  # b next\nb\tz\n") == [("a", ["x"]), ("b", ["z"])]
    for bad, why in (
        ("", "empty list"),
        ("a\tx\ny\n", "line 2"),
        ("a\tx\na\ty\n", "once"),
        ("a\t\n", "non-empty"),
    ):
        with pytest.raises(ConfigError, match=why):
            parse_concat_list(bad)
    src, _ = make_store(tmp_path / "A", TRACKS)
    with pytest.raises(StoreMismatchError, match="'nope'"):
        concat_store(src, tmp_path / "o", [("a", ["x", "nope"])])
    with pytest.raises(ConfigError, match="'z' with 7 frames"):  # z is inner: needs 2 x 4 frames
        concat_store(src, tmp_path / "o", [("a", ["x", "z", "y"])], crossfade_s=4 * SPF / 16000)
    with pytest.raises(ConfigError, match="crossfade"):
        concat_store(src, tmp_path / "o", [("a", ["x"])], crossfade_s=-1)


def test_concat_command_contract(tmp_path: Path) -> None:
    make_store(tmp_path / "A", TRACKS, failed=("z",))
    a = str(tmp_path / "A")
    listing = tmp_path / "list.tsv"
    listing.write_text("ab\tx\ty\nyy\ty\ty\n")

    def run(*args: str, input: str | None = None) -> tuple[int, str, str]:
        r = CliRunner().invoke(cli, list(args), input=input)
        return r.exit_code, r.stdout, r.stderr

    code, out, err = run("concat", a, "--keys-from", str(listing), "--crossfade", "0.05")
    assert (code, out) == (3, f"{tmp_path / 'A.concat.zarr'}\n")  # z failed in A: left out, exit 3
    assert "concat: wrote" in err
    assert LatentStore.open(tmp_path / "A.concat.zarr").keys() == ["ab", "yy"]
    code, out, _ = run("concat", a, "--keys-from", "-", "-o", str(tmp_path / "p"), "--json", input="y\nx\n")
    record = json.loads(out)
    assert (code, record["op"], record["tracks"], record["crossfade_frames"]) == (3, "concat", 1, 0)
    assert LatentStore.open(tmp_path / "p").keys() == ["concat"]
    code, _, err = run("concat", a, "--keys-from", "-", "-o", str(tmp_path / "q"), input="z\n")
    assert code == 1
    assert "'z'" in err
    assert len(err.strip().splitlines()) == 1
    assert run("concat", a, "--keys-from", "-", "-o", str(tmp_path / "p"), input="x\n")[0] == 1
    assert run("concat", a)[0] == 2
    assert run("concat", a, "--keys-from", str(listing), "--crossfade", "-1")[0] == 2
