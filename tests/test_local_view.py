"""``ls`` and ``info`` read a local store without zarr (lincae_core.store.local_view): on real stores
of every kind the reader takes, and of some it leaves to zarr, their outputs are those of the zarr
path byte for byte, and damaged or malformed stores are refused as strictly, in one line."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest
import zarr

from lincae_core.errors import StoreFormatError
from lincae_core.store.latent_store import LatentStore
from lincae_core.store.layout import LOUDNESS
from lincae_core.store.local_view import LocalStoreView, array_meta, open_view, read_array
from lincae_core.store.synthetic import SYNTHETIC_GEOMETRY, synthetic_store

_PROBE = """
import json, sys
from click.testing import CliRunner
from lincae_cli.main import cli
store, out = sys.argv[1], {}
for args in (["ls"], ["ls", "--json"], ["ls", "--status", "all"], ["ls", "--json", "--status", "all"],
             ["info"], ["info", "--json"]):
    r = CliRunner().invoke(cli, [args[0], store, *args[1:]], catch_exceptions=False)
    out[" ".join(args)] = [r.exit_code, r.stdout, r.stderr]
seen = [m for m in ("zarr", "numcodecs", "torch", "scipy", "tqdm") if m in sys.modules]
print(json.dumps({"out": out, "modules": seen}))
"""

UNICODE_KEYS = [
    "ü/ñ 日本語",
    "tab\there",
    "new\nline",
    "bell\x07",
    "🎵 song",
    'quo"te',
    "\x1b[31mred",
    "a\\b",
]


def _probe(store: Path, zarr_io: bool) -> dict:
    env = {**os.environ, "LINCAE_ZARR_IO": "1" if zarr_io else "0"}
    r = subprocess.run(
        [sys.executable, "-c", _PROBE, str(store)], capture_output=True, text=True, env=env, timeout=300
    )
    assert r.returncode == 0, r.stderr
    return json.loads(r.stdout.splitlines()[-1])


def _rewrite(path: Path, name: str, values: np.ndarray | None = None, **create: object) -> None:
    """Write the array ``name`` of the store again through zarr (its values unless ``values``), with
    the plain layout's codecs unless ``create`` says otherwise."""
    g = zarr.open_group(str(path), mode="r+")
    old = g[name][:] if values is None else values
    string = old.dtype.kind in "TU"
    kwargs = {
        "compressors": None,
        "fill_value": "" if string else 0,
        "chunks": (max(1, old.shape[0]),),
        **create,
    }
    arr = g.create_array(name, shape=old.shape, dtype=str if string else old.dtype, overwrite=True, **kwargs)
    if old.size:
        arr[:] = old


def _store(path: Path, keys: list[str], sep: str = ".", **kwargs: object) -> LatentStore:
    if sep == ".":
        return synthetic_store(path, [(k, 5 + 3 * i) for i, k in enumerate(keys)], chunk_frames=16, **kwargs)
    s = LatentStore.create(
        path, model_id="m", model_config={}, geometry=SYNTHETIC_GEOMETRY, channels=1, chunk_frames=16,
        chunk_key_separator=sep,
    )  # fmt: skip
    s.plan([(k, 4 + i, 100, 16000, 1) for i, k in enumerate(keys)])
    s.latents.write(0, np.ones((s.total_frames, 1, 64), np.float16))
    s.mark_done(np.arange(len(keys)))
    return s


def _plain(p: Path) -> None:
    _store(p, ["a", "b", "c"])


def _slash_and_dot_chunks(p: Path) -> None:
    """Latent chunk keys with '/', table columns in chunks of 3 rows with '.' keys (an edge chunk)."""
    _store(p, [f"t{i}" for i in range(8)], sep="/")
    for name in ("key", "offset", "frames", "samples", "source_rate", "channels", "status"):
        _rewrite(p, f"tracks/{name}", chunks=(3,), chunk_key_encoding={"name": "default", "separator": "."})
    assert (p / "tracks/key/c.2").is_file()
    assert (p / "latents/c/0/0/0").is_file()


def _zstd_keys(p: Path) -> None:
    """Keys written as before this reader: vlen-utf8 then zstd (read through zarr)."""
    _store(p, ["a", "b"])
    _rewrite(p, "tracks/key", compressors="auto")
    assert "zstd" in (p / "tracks/key/zarr.json").read_text()


def _unicode_keys(p: Path) -> None:
    _store(p, UNICODE_KEYS)
    _rewrite(p, "tracks/key", chunks=(3,))


def _empty(p: Path) -> None:
    synthetic_store(p, [])


def _failed_and_loudness(p: Path) -> None:
    """Failed rows (ledger), an input failed at planning, planned rows whose status chunk holds
    only the fill value (no file), loudness measured for some rows (NaN chunks: no file)."""
    s = _store(p, [f"t{i}" for i in range(6)], failed=["t1", "t4"], loudness=True)
    s.record_failure("lib/broken.flac", "cannot decode: truncated file")
    status = s.table()["status"]
    status[2:4] = 0
    _rewrite(p, "tracks/status", status, chunks=(2,))
    _rewrite(p, "tracks/loudness_lufs", np.array([-14.5, np.nan, np.nan, np.nan, -20.25, 1.0], np.float32),
             chunks=(2,), fill_value=float("nan"))  # fmt: skip
    assert not (p / "tracks/status/c/1").exists()
    assert not (p / "tracks/loudness_lufs/c/1").exists()


def _mix_sources(p: Path) -> None:
    s = _store(p, ["m1", "m2", "m3"])
    keys = np.array([["a", "x"], ["b", "y"], ["c", "ü"]])
    s.write_sources(keys, np.array([[1.0, 0.5], [1.0, -0.25], [2.0, 1e-3]]), ["a.zarr", "b.zarr"])


def _checksums(p: Path) -> None:
    _store(p, ["a", "b"], checksums=True)


def _sharded(p: Path) -> None:
    _store(p, ["a", "b"], chunks_per_object=2)


CASES: dict[str, tuple[Callable[[Path], None], bool]] = {  # builder, read without zarr
    "plain": (_plain, True),
    "slash-latents-dot-table": (_slash_and_dot_chunks, True),
    "zstd-keys": (_zstd_keys, False),
    "unicode-keys": (_unicode_keys, True),
    "empty": (_empty, True),
    "failed-loudness": (_failed_and_loudness, True),
    "mix-sources": (_mix_sources, True),
    "checksums": (_checksums, True),
    "sharded": (_sharded, False),
}


@pytest.mark.parametrize("case", sorted(CASES))
def test_ls_and_info_equal_the_zarr_path(case: str, tmp_path: Path) -> None:
    build, fast = CASES[case]
    store = tmp_path / "s.zarr"
    build(store)
    assert isinstance(open_view(store), LocalStoreView) is fast
    got, want = _probe(store, zarr_io=False), _probe(store, zarr_io=True)
    assert got["out"] == want["out"]
    assert all(code == 0 for code, _, _ in got["out"].values())
    assert "zarr" in want["modules"]
    assert "torch" not in got["modules"]
    if fast:  # neither zarr nor numcodecs (zstd), nor tqdm, for ls, ls --json and info
        assert not {"zarr", "numcodecs", "tqdm", "scipy"} & set(got["modules"]), got["modules"]
    else:
        assert "zarr" in got["modules"]


def test_every_array_reads_as_zarr_reads_it(tmp_path: Path) -> None:
    for case in ("slash-latents-dot-table", "unicode-keys", "failed-loudness", "mix-sources", "empty"):
        store = tmp_path / f"{case}.zarr"
        CASES[case][0](store)
        g = zarr.open_group(str(store), mode="r")
        names = [f"tracks/{n}" for n in g["tracks"].array_keys()]
        names += [f"sources/{n}" for n in g["sources"].array_keys()] if "sources" in g else []
        for name in names:
            want = g[name][:]
            got = read_array(
                store, name, array_meta(json.loads((store / name / "zarr.json").read_text())), "s"
            )
            assert (got.dtype, got.shape) == (want.dtype, want.shape), name
            assert np.array_equal(got, want, equal_nan=want.dtype.kind == "f"), name
    assert open_view(tmp_path / "unicode-keys.zarr").keys() == UNICODE_KEYS


def test_a_malformed_optional_array_fails_where_the_zarr_path_fails(tmp_path: Path) -> None:
    """Loudness of the wrong length: ``ls`` (which reads it) refuses, ``info`` (which does not)
    answers, through the view as through zarr."""
    store = tmp_path / "s.zarr"
    _store(store, ["a", "b"], loudness=True)
    _rewrite(store, LOUDNESS, np.zeros(3, np.float32))
    got, want = _probe(store, zarr_io=False), _probe(store, zarr_io=True)
    assert got["out"] == want["out"]
    assert got["out"]["ls"][0] == 1
    assert "tracks/loudness_lufs: expected shape (2,), got (3,)" in got["out"]["ls"][2]
    assert got["out"]["info"][0] == 0
    assert "zarr" not in got["modules"]


def test_new_keys_are_uncompressed_and_older_ones_stay_readable(tmp_path: Path) -> None:
    _plain(tmp_path / "new.zarr")
    codecs = json.loads((tmp_path / "new.zarr/tracks/key/zarr.json").read_text())["codecs"]
    assert [c["name"] for c in codecs] == ["vlen-utf8"]
    _zstd_keys(tmp_path / "old.zarr")
    assert open_view(tmp_path / "old.zarr").keys() == ["a", "b"]


@pytest.mark.parametrize(
    ("name", "cut", "problem"),
    [
        ("frames", 5, "chunk file c/0 is damaged: 5 bytes, expected 24"),
        ("key", 9, "chunk file c/0 is damaged: truncated after 1 of 3 strings"),
        ("key", 2, "chunk file c/0 is damaged: no header, expected 3 strings"),
    ],
)
def test_a_truncated_table_chunk_stops_in_one_line(tmp_path: Path, name: str, cut: int, problem: str) -> None:
    store = tmp_path / "s.zarr"
    _plain(store)
    chunk = store / "tracks" / name / "c" / "0"
    chunk.write_bytes(chunk.read_bytes()[:cut])
    with pytest.raises(StoreFormatError) as exc:
        LocalStoreView(store)
    assert str(exc.value).startswith(f"{store}: tracks/{name}: {problem}")
    for zarr_io in (False, True):  # through zarr too: one line naming the store and the column
        out = _probe(store, zarr_io)["out"]
        for code, stdout, stderr in out.values():
            assert code == 1
            assert stdout == ""
            assert stderr.startswith(f"Error: {store}: tracks/{name}: ")
            assert stderr.count("\n") == 1


def test_damaged_key_chunks_are_refused(tmp_path: Path) -> None:
    store = tmp_path / "s.zarr"
    _plain(store)
    chunk = store / "tracks/key/c/0"
    good = chunk.read_bytes()
    chunk.write_bytes(good[:-1] + b"\xff")
    with pytest.raises(StoreFormatError, match="c/0 is damaged: string 2 is not UTF-8"):
        LocalStoreView(store)
    chunk.write_bytes((2).to_bytes(4, "little") + good[4:])
    with pytest.raises(StoreFormatError, match="c/0 is damaged: 2 strings, expected 3 strings"):
        LocalStoreView(store)
    chunk.write_bytes(good + b"trailing")  # ignored, as numcodecs ignores it
    assert LocalStoreView(store).keys() == zarr.open_group(str(store), mode="r")["tracks/key"][:].tolist()


def _refusal(store: Path) -> str:
    with pytest.raises(StoreFormatError) as zarr_exc:
        LatentStore.open(store)
    with pytest.raises(StoreFormatError) as view_exc:
        LocalStoreView(store)  # the view itself, not zarr behind it
    assert str(view_exc.value) == str(zarr_exc.value)
    return str(view_exc.value)


@pytest.mark.parametrize(
    ("name", "values", "message"),
    [
        ("offset", np.array([0, 10**9, 20]), "exceeds the latent array"),
        ("frames", np.array([-5, 50, 3]), "expected values >= 0"),
        ("offset", np.array([0, 3, 13]), "non-overlapping"),
        ("key", np.array([1, 2, 3]), "expected strings"),
        ("key", np.array(["a", "a", "b"], dtype=np.dtypes.StringDType()), "unique"),
        ("key", np.array(["a", "", "b"], dtype=np.dtypes.StringDType()), "non-empty"),
        ("key", np.array(["a", "b\x00", "c"], dtype=np.dtypes.StringDType()), "NUL"),
        ("status", np.array([1, 9, 1], dtype=np.int8), "out of range"),
        ("frames", np.array([30.0, 50.0, 1.0]), "expected int64"),
        ("channels", np.array([1, 1, 1, 1], dtype=np.int8), r"expected shape \(3,\)"),
    ],
)
def test_malformed_tables_are_refused_as_through_zarr(
    tmp_path: Path, name: str, values: np.ndarray, message: str
) -> None:
    store = tmp_path / "s.zarr"
    _plain(store)
    _rewrite(store, f"tracks/{name}", values)
    assert re.search(message, _refusal(store))


def test_missing_table_chunks_read_as_the_fill_value_then_checked(tmp_path: Path) -> None:
    store = tmp_path / "s.zarr"
    _plain(store)
    (store / "tracks/frames/c/0").unlink()  # frames 0: samples > frames * samples_per_frame
    assert "samples <= frames" in _refusal(store)
    _plain(tmp_path / "k.zarr")
    (tmp_path / "k.zarr/tracks/key/c/0").unlink()
    assert "non-empty" in _refusal(tmp_path / "k.zarr")


def test_malformed_attributes_and_latents_are_refused_as_through_zarr(tmp_path: Path) -> None:
    store = tmp_path / "s.zarr"
    _plain(store)
    root = json.loads((store / "zarr.json").read_text())
    root["attributes"]["channels"] = 3
    (store / "zarr.json").write_text(json.dumps(root))
    assert "channels: expected 1 or 2" in _refusal(store)
    root["attributes"]["channels"] = 1
    (store / "zarr.json").write_text(json.dumps(root))
    meta = json.loads((store / "latents/zarr.json").read_text())
    (store / "latents/zarr.json").write_text(json.dumps({**meta, "data_type": "float32"}))
    assert "expected dtype float16" in _refusal(store)
    (store / "latents/zarr.json").write_text(json.dumps({**meta, "shape": [meta["shape"][0], 1, 9]}))
    assert "latents: expected shape (F, 1, 64)" in _refusal(store)


@pytest.mark.parametrize(
    "change",
    [
        lambda m: {**m, "codecs": [{"name": "bytes", "configuration": {"endian": "big"}}]},
        lambda m: {**m, "must_understand_me": True},
        lambda m: {**m, "chunk_key_encoding": {"name": "v2", "configuration": {"separator": "."}}},
        lambda m: {**m, "fill_value": "0x7fc00000"},
    ],
)
def test_what_the_view_does_not_know_goes_through_zarr(tmp_path: Path, change: Callable) -> None:
    store = tmp_path / "s.zarr"
    _plain(store)
    meta_file = store / "tracks/samples/zarr.json"
    meta_file.write_text(json.dumps(change(json.loads(meta_file.read_text()))))
    try:
        want: dict | str = LatentStore.open(store).describe()
    except StoreFormatError as exc:  # zarr's own refusal (a big-endian column read, then checked)
        want = str(exc)
    try:
        got = open_view(store)
        assert isinstance(got, LatentStore)
        assert got.describe() == want
    except StoreFormatError as exc:
        assert str(exc) == want  # noqa: PT017
