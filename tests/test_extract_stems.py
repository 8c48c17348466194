"""``lincae extract MIX --stem NAME=STORE ... [--consistent]``: every stem of a mixture at once."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from _latent_stores import make_store
from click.testing import CliRunner

from lincae_cli.main import cli
from lincae_core import LatentStore, extract_stems
from lincae_core.errors import ConfigError
from lincae_core.ops import OpOptions

TRACKS = [("x", 30), ("y", 50), ("z", 7)]
NAMES = ("vocals", "drums", "bass")


def stores(tmp_path: Path, **kw: object) -> tuple[dict[str, Path], dict[str, dict[str, np.ndarray]]]:
    paths, zs = {}, {}
    for seed, name in enumerate(("mix", *NAMES)):
        paths[name] = tmp_path / f"{name}.zarr"
        zs[name] = make_store(paths[name], TRACKS, seed=seed, **kw)[1]  # type: ignore[arg-type]
    return paths, zs


def f32(z: np.ndarray) -> np.ndarray:
    return z.astype(np.float32)


def test_consistent_stems_sum_to_the_mixture_latent(tmp_path: Path) -> None:
    paths, zs = stores(tmp_path)  # float16 inputs, as encode writes them
    result = extract_stems(
        paths["mix"],
        {n: paths[n] for n in NAMES},
        tmp_path / "c",
        consistent=True,
        options=OpOptions(max_block_frames=16),
    )
    assert result.consistent is True
    assert sorted(result.stems) == sorted(NAMES)
    out = {n: LatentStore.open(tmp_path / "c" / f"{n}.zarr") for n in NAMES}
    for key, _ in TRACKS:
        est = [out[n].read_track(key) for n in NAMES]
        assert all(e.dtype == np.float32 for e in est)
        total = sum(f32(z[key]) for n, z in zs.items() if n != "mix")
        for n, e in zip(NAMES, est, strict=True):  # z_i + (z_mix - sum z_j) / n
            np.testing.assert_allclose(
                e, f32(zs[n][key]) + (f32(zs["mix"][key]) - total) / 3, rtol=1e-5, atol=1e-6
            )
        np.testing.assert_allclose(
            est[0] + est[1] + est[2],
            f32(zs["mix"][key]),
            rtol=0,
            atol=8 * np.finfo(np.float32).eps * np.abs(f32(zs["mix"][key])).max(),
        )
    entry = out["drums"].lineage[-1]
    assert (entry["op"], entry["args"]["stem"], entry["args"]["consistent"]) == ("extract", "drums", True)
    assert entry["args"]["stems"] == list(NAMES)
    assert entry["args"]["gains"] == pytest.approx([1 / 3, -1 / 3, 2 / 3, -1 / 3])


def test_plain_stems_are_the_papers_leave_one_out_estimates(tmp_path: Path) -> None:
    paths, zs = stores(tmp_path, dtype="float32")
    extract_stems(paths["mix"], {n: paths[n] for n in NAMES}, tmp_path / "p")
    for i, n in enumerate(NAMES):
        got = LatentStore.open(tmp_path / "p" / f"{n}.zarr")
        assert got.lineage[-1]["args"]["consistent"] is False
        for key, _ in TRACKS:
            others = sum(zs[m][key] for m in NAMES if m != NAMES[i])
            np.testing.assert_allclose(got.read_track(key), zs["mix"][key] - others, rtol=1e-6, atol=1e-6)


def test_affine_consistency_holds_for_the_centred_latents(tmp_path: Path) -> None:
    paths, zs = stores(tmp_path, dtype="float32")
    o = np.random.default_rng(9).standard_normal((4, 2, 8)).astype(np.float32)  # Enc(0) window
    LatentStore.open(paths["mix"], "r+").write_origin(o)
    extract_stems(
        paths["mix"],
        {n: paths[n] for n in NAMES},
        tmp_path / "a",
        consistent=True,
        options=OpOptions(origin="affine"),
    )
    origin = o.mean(axis=0)
    est = [LatentStore.open(tmp_path / "a" / f"{n}.zarr").read_track("y") for n in NAMES]
    np.testing.assert_allclose(sum(e - origin for e in est), zs["mix"]["y"] - origin, rtol=1e-5, atol=1e-5)


def test_refusals(tmp_path: Path) -> None:
    paths, _ = stores(tmp_path)
    with pytest.raises(ConfigError, match="at least two stems"):
        extract_stems(paths["mix"], {"vocals": paths["vocals"]}, tmp_path / "o")
    with pytest.raises(ConfigError, match="file names"):
        extract_stems(paths["mix"], {"a/b": paths["vocals"], "c": paths["drums"]}, tmp_path / "o")
    (tmp_path / "taken").mkdir()
    with pytest.raises(Exception, match="already exists"):
        extract_stems(paths["mix"], {n: paths[n] for n in NAMES}, tmp_path / "taken")
    assert not list(tmp_path.glob(".taken*"))  # nothing left beside it


def test_extract_stem_command_contract(tmp_path: Path) -> None:
    paths, _ = stores(tmp_path)
    make_store(tmp_path / "bad.zarr", TRACKS, failed=("z",))
    stem_args = [a for n in NAMES for a in ("--stem", f"{n}={paths[n]}")]
    mix = str(paths["mix"])

    def run(*args: str) -> tuple[int, str, str]:
        r = CliRunner().invoke(cli, list(args))
        return r.exit_code, r.stdout, r.stderr

    code, out, err = run("extract", mix, *stem_args, "--consistent")
    assert code == 0, err
    assert out.splitlines() == [str(tmp_path / "mix.consistent" / f"{n}.zarr") for n in NAMES]
    code, out, _ = run("extract", mix, *stem_args, "-o", str(tmp_path / "p"), "--json")
    record = json.loads(out)
    assert (code, record["out"], record["consistent"]) == (0, str(tmp_path / "p"), False)
    assert record["stems"]["bass"]["out"] == str(tmp_path / "p" / "bass.zarr")
    assert Path(record["stems"]["bass"]["out"]).is_dir()
    code, out, err = run("extract", str(tmp_path / "bad.zarr"), *stem_args, "--missing", "skip")
    assert code == 3
    assert "left out 0 planned and 1 failed" in err
    assert run("extract", mix, "--minus", str(paths["bass"]), "--consistent")[0] == 2
    assert run("extract", mix, "--minus", str(paths["bass"]), *stem_args)[0] == 2
    assert run("extract", mix)[0] == 2
    assert run("extract", mix, "--stem", "vocals")[0] == 2
    assert run("extract", mix, "--stem", f"a={paths['bass']}", "--stem", f"a={paths['bass']}")[0] == 2
    code, _, err = run("extract", mix, "--stem", f"a={paths['bass']}")
    assert code == 2  # the library's refusal of a command-line value: a usage error
    assert "at least two stems" in err
