"""The latent-operation commands through click's CliRunner: output, exit codes, messages."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from _latent_stores import make_store
from click.testing import CliRunner

from lincae_cli.main import cli
from lincae_core.store import LatentStore

TRACKS = [("x", 30), ("y", 50), ("z", 7)]


@pytest.fixture
def stores(tmp_path: Path) -> tuple[str, str]:
    make_store(tmp_path / "A", TRACKS, seed=1, failed=("z",))
    make_store(tmp_path / "B", TRACKS, seed=2)
    return str(tmp_path / "A"), str(tmp_path / "B")


def run(*args: str, input: str | None = None, code: int = 0) -> str:
    result = CliRunner().invoke(cli, list(args), input=input)
    assert result.exit_code == code, result.output
    return result.stdout if code in (0, 3) else result.stderr


def run_both(*args: str, code: int = 0) -> tuple[str, str]:
    result = CliRunner().invoke(cli, list(args))
    assert result.exit_code == code, result.output
    return result.stdout, result.stderr


def one_line_error(text: str) -> str:
    lines = text.strip().splitlines()
    assert len(lines) == 1, text
    assert lines[0].startswith("Error: "), text
    return lines[0]


def test_ls_human_json_and_filter(stores: tuple[str, str]) -> None:
    a, _ = stores
    out, err = run_both("ls", a)
    assert out.splitlines() == ["x\t0.474\tdone", "y\t0.794\tdone"]  # the decodable tracks by default
    assert "1 failed tracks not listed (--status all lists them)" in err
    lines = run("ls", a, "--status", "all").splitlines()
    assert lines == ["x\t0.474\tdone", "y\t0.794\tdone", "z\t0.106\tfailed\tsynthetic failure"]
    rows = [json.loads(line) for line in run("ls", a, "--json").splitlines()]
    assert rows[0] == {"key": "x", "duration_s": (30 * 256 - 100) / 16000, "frames": 30, "status": "done"}
    assert run("ls", a, "--status", "failed").splitlines() == ["z\t0.106\tfailed\tsynthetic failure"]


def test_gain_by_amplitude_and_db(stores: tuple[str, str], tmp_path: Path) -> None:
    _, a = stores
    out, err = run_both("gain", a, "-o", str(tmp_path / "g"), "--gain", "0.5")
    assert out == f"{tmp_path / 'g'}\n"  # the output path, alone on stdout: commands chain
    assert "gain: wrote" in err
    summary = json.loads(run("gain", a, "-o", str(tmp_path / "d"), "--db", "-6", "--json"))
    assert summary["tracks"] == 3
    g, d = LatentStore.open(tmp_path / "g"), LatentStore.open(tmp_path / "d")
    np.testing.assert_allclose(g.read_track("x").astype(float), d.read_track("x"), rtol=5e-3, atol=2e-3)
    assert "exactly one of --gain or --db" in run("gain", a, "-o", str(tmp_path / "n"), code=2)
    err = run("gain", a, "-o", str(tmp_path / "g"), "--gain", "2", code=1)
    assert "already exists" in one_line_error(err)
    run("gain", a, "-o", str(tmp_path / "g"), "--gain", "2", "--overwrite")


def test_mix_options_and_refusals(stores: tuple[str, str], tmp_path: Path) -> None:
    a, b = stores
    err = run("mix", a, b, "-o", str(tmp_path / "m"), code=1)
    assert "'z' (missing from" in one_line_error(err)
    summary = json.loads(
        run(
            "mix",
            a,
            b,
            "-o",
            str(tmp_path / "m"),
            "--missing",
            "skip",
            "--gain",
            "0.5",
            "--gain",
            "1",
            "--length",
            "longest",
            "--json",
            code=3,
        )
    )
    assert summary["skipped"] == 1
    assert summary["tracks"] == 2
    assert summary["left_out"] == {a: {"planned": 0, "failed": 1}}  # z failed in A: left out, exit 3
    out, err = run_both(
        "mix",
        a,
        b,
        "-o",
        str(tmp_path / "r"),
        "--pair",
        "random",
        "--seed",
        "3",
        "--count",
        "4",
        "--gain-range",
        "0.2",
        "0.4",
        "--jobs",
        "1",
        code=3,
    )
    assert "4 tracks" in err
    assert LatentStore.open(tmp_path / "r").lineage[-1]["args"]["seed"] == 3
    assert "at least two" in run("mix", a, "-o", str(tmp_path / "s"), code=2)
    make_store(tmp_path / "C", TRACKS, model_id="other")
    err = run("mix", a, str(tmp_path / "C"), "-o", str(tmp_path / "c"), "--missing", "skip", code=1)
    assert "different models" in one_line_error(err)
    run("mix", a, str(tmp_path / "C"), "-o", str(tmp_path / "c"), "--missing", "skip", "--force", code=3)


def test_extract(stores: tuple[str, str], tmp_path: Path) -> None:
    a, b = stores
    run("mix", a, b, "-o", str(tmp_path / "m"), "--missing", "skip", code=3)
    _, err = run_both(
        "extract", str(tmp_path / "m"), "--minus", b, "-o", str(tmp_path / "e"), "--missing", "skip"
    )
    assert "extract: wrote" in err
    e, ref = LatentStore.open(tmp_path / "e"), LatentStore.open(a)
    np.testing.assert_allclose(e.read_track("y").astype(float), ref.read_track("y"), atol=1e-2)
    assert "either --minus" in run("extract", a, "-o", str(tmp_path / "f"), code=2)


def test_select_with_keys_from_stdin(stores: tuple[str, str], tmp_path: Path) -> None:
    _, b = stores
    out = run(
        "select",
        b,
        "-o",
        str(tmp_path / "s"),
        "--keys-from",
        "-",
        "--start",
        "0.1",
        "--duration",
        "0.2",
        input="y\n\nx\n",
    )
    assert out == f"{tmp_path / 's'}\n"
    s = LatentStore.open(tmp_path / "s")
    assert s.keys() == ["y", "x"]
    assert s.track("y").frames == 13
    err = run("select", b, "-o", str(tmp_path / "t"), "--keys-from", "-", input="nope\n", code=1)
    assert "'nope'" in one_line_error(err)
    keys = tmp_path / "keys.txt"
    keys.write_text("z\n")
    run("select", b, "-o", str(tmp_path / "u"), "--keys-from", str(keys))
    assert LatentStore.open(tmp_path / "u").keys() == ["z"]


def test_bad_stores_give_one_line_errors(tmp_path: Path) -> None:
    for cmd in (["ls"], ["gain", "--gain", "2", "-o", str(tmp_path / "o")]):
        err = run(*cmd[:1], str(tmp_path / "missing"), *cmd[1:], code=1)
        assert "does not exist" in one_line_error(err)
    (tmp_path / "dir").mkdir()
    assert "is not a lincae latent store" in one_line_error(run("ls", str(tmp_path / "dir"), code=1))


def test_ops_without_output_write_beside_the_first_input(stores: tuple[str, str], tmp_path: Path) -> None:
    a, b = stores
    first = run("mix", b, b, "--gain", "0.5").strip()
    assert first == str(tmp_path / "B+B.mix.zarr")
    second = run("mix", b, b, "--gain", "0.5").strip()  # never replaces: a suffix instead
    assert second == str(tmp_path / "B+B.mix-2.zarr")
    assert run("gain", b, "--db", "-6").strip() == str(tmp_path / "B.gain.zarr")
    chained = run("extract", first, "--minus", b).strip()  # a command's stdout is the next one's input
    assert chained == str(tmp_path / "B+B.mix+B.extract.zarr")
    assert LatentStore.open(chained).n_tracks == 3


def test_random_mix_seed_is_drawn_recorded_and_sources_listed(
    stores: tuple[str, str], tmp_path: Path
) -> None:
    _, b = stores
    out, err = run_both("mix", b, b, "--pair", "random", "--count", "5", "--json")
    summary = json.loads(out)
    seed = summary["seed"]
    assert isinstance(seed, int)
    assert f"--seed {seed}" in err
    store = LatentStore.open(summary["out"])
    assert store.lineage[-1]["args"]["seed"] == seed
    again = json.loads(run("mix", b, b, "--pair", "random", "--count", "5", "--seed", str(seed), "--json"))
    np.testing.assert_array_equal(
        LatentStore.open(again["out"]).read_track("mix-00000003"), store.read_track("mix-00000003")
    )
    rows = [json.loads(line) for line in run("ls", summary["out"], "--json").splitlines()]
    assert len(rows[0]["sources"]) == 2
    src = rows[0]["sources"][0]
    assert src["key"] in {"x", "y", "z"}
    assert 0.5 <= src["gain"] <= 1.0
    assert src["store"].endswith("B")


def test_refused_option_combinations(stores: tuple[str, str], tmp_path: Path) -> None:
    """Checked once, by the library: one line, exit 2 (a usage error, as click's own)."""
    a, b = stores
    assert "only with pair='random' (--pair random)" in one_line_error(
        run("mix", b, b, "--seed", "1", code=2)
    )
    assert "only with pair='random' (--pair random)" in one_line_error(
        run("mix", b, b, "--count", "3", code=2)
    )
    err = run("mix", a, b, "--gain", "1", "--gain", "1", "--gain", "1", code=2)
    assert "expected 1 or 2 gains (one per input), got 3" in one_line_error(err)
    assert "at least two" in run("mix", a, code=2)  # the command's own rule: a usage error


def test_keys_from_skips_comment_and_blank_lines(stores: tuple[str, str], tmp_path: Path) -> None:
    """--keys-from reads a list file as encode's --files-from does: blank and # lines skipped."""
    _, b = stores
    keys = tmp_path / "keys.txt"
    keys.write_text("# the keys to keep\ny\n\n   \n  # indented comment\nx\n")
    run("select", b, "-o", str(tmp_path / "s"), "--keys-from", str(keys))
    assert LatentStore.open(tmp_path / "s").keys() == ["y", "x"]


def test_unfinished_inputs_left_out_or_refused(stores: tuple[str, str], tmp_path: Path) -> None:
    a, _ = stores
    out, err = run_both("gain", a, "--gain", "2", code=3)
    assert LatentStore.open(out.strip()).keys() == ["x", "y"]
    assert "left out 0 planned and 1 failed tracks" in err
    err = run("gain", a, "--gain", "2", "--require-complete", code=1)
    assert "1 failed" in one_line_error(err)
