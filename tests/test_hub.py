"""Released models by name (design.md section 5c): ``-c lin-cae`` fetched from a hub served on
127.0.0.1 (never the real hub), converted, verified and cached; offline from a hub cache; the
missing-model message; ``lincae models``. Oracle: ``linear_cae.Autoencoder.from_pretrained`` on the
same cache, in a subprocess with the same environment."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
from click.testing import CliRunner, Result
from conftest import micro_config, music

pytest.importorskip("linear_cae")
pytest.importorskip("huggingface_hub")
pytest.importorskip("yaml")

from _fake_hub import (  # noqa: E402
    COMMIT,
    RELEASE_REPO,
    FakeHub,
    populate_hub_cache,
    reference_release,
    sha256,
    write_release,
)

from lincae_cli.main import cli  # noqa: E402
from lincae_core.config import get_preset  # noqa: E402
from lincae_core.errors import CheckpointError  # noqa: E402
from lincae_core.hub import parse_model_name  # noqa: E402
from lincae_core.release import reference_kwargs, release_config  # noqa: E402
from lincae_core.store import LatentStore  # noqa: E402
from lincae_core.windowing import window_span  # noqa: E402

LIN_CAE_HASH = "0a3afbec"


@pytest.fixture(scope="module")
def served(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, list[str]]:
    """A micro release written by the reference classes in the published layout, as ``lin-cae``."""
    root = tmp_path_factory.mktemp("hub-repo")
    ae, kwargs = reference_release(micro_config())
    return root, write_release(root, LIN_CAE_HASH, ae, kwargs)


@pytest.fixture
def env(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> dict[str, str]:
    """Fresh hub and lincae caches; no proxy; nothing offline unless a test says so."""
    for key in ("HF_HUB_CACHE", "HUGGINGFACE_HUB_CACHE", "HF_HUB_OFFLINE", "TRANSFORMERS_OFFLINE"):
        monkeypatch.delenv(key, raising=False)
    for key in ("HTTPS_PROXY", "https_proxy", "HTTP_PROXY", "http_proxy", "ALL_PROXY", "all_proxy"):
        monkeypatch.delenv(key, raising=False)
    values = {
        "HF_HOME": str(tmp_path / "hf"),
        "LINCAE_CACHE": str(tmp_path / "lincae-cache"),
        "HF_HUB_DISABLE_PROGRESS_BARS": "1",
        "HF_HUB_DISABLE_TELEMETRY": "1",
        "NO_PROXY": "127.0.0.1,localhost",
        "HF_ENDPOINT": f"http://127.0.0.1:{_closed_port()}",  # a test that serves sets its own
    }
    for k, v in values.items():
        monkeypatch.setenv(k, v)
    return values


@pytest.fixture
def library(tmp_path: Path) -> Path:
    lib = tmp_path / "lib"
    lib.mkdir()
    sf.write(lib / "song.wav", music(16000, 1.3, seed=4), 16000, subtype="FLOAT")
    return lib


def _closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _run(*args: str) -> Result:
    return CliRunner().invoke(cli, list(args), catch_exceptions=False)


def _encode(library: Path, out: Path) -> np.ndarray:
    r = _run("encode", str(library), str(out), "-c", "lin-cae", "--dtype", "float32", "--device", "cpu")
    assert r.exit_code == 0, r.output
    return LatentStore.open(out).read_track("song")[:, 0, :].T.astype(np.float32)  # [D, Z]


_REFERENCE = """
import json, sys
import numpy as np, soundfile as sf, torch
from linear_cae import Autoencoder
ae = Autoencoder.from_pretrained("lin-cae")
x, _ = sf.read(sys.argv[1], dtype="float32")
x = np.pad(x, (0, int(sys.argv[2]) - x.shape[0]))
with torch.no_grad():
    z = ae.encode(torch.from_numpy(x)[None])[0].numpy()
np.save(sys.argv[3], z)
print(json.dumps({"scale_factor": ae.scale_factor}))
"""


def _reference_latents(wav: Path, frames: int, tmp: Path) -> np.ndarray:
    """``Autoencoder.from_pretrained("lin-cae")`` from the same hub cache (offline), latents / scale."""
    length = window_span(0, frames, micro_config())[1]  # lincae's one-window encode: the padded clip
    out = tmp / "reference.npy"
    child = {**os.environ, "HF_HUB_OFFLINE": "1"}  # the test's HF_HOME: the same hub cache
    done = subprocess.run(
        [sys.executable, "-c", _REFERENCE, str(wav), str(length), str(out)],
        env=child,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert done.returncode == 0, done.stderr[-2000:]
    scale = json.loads(done.stdout.strip().splitlines()[-1])["scale_factor"]
    assert scale == 33.0
    return np.load(out) / scale


def _check_card(path: Path, served: tuple[Path, list[str]]) -> dict:
    card = json.loads((path / "model_card.json").read_text())
    root, files = served
    source = card["source"]
    assert source["repo"] == RELEASE_REPO
    assert source["revision"] == "main"
    assert source["commit"] == COMMIT
    assert source["files"] == {f: sha256(root / f) for f in files}
    assert source["scale_factor"] == 33.0
    assert source["format"] == "linear-cae"
    return card


def test_names_and_hf_specs() -> None:
    src = parse_model_name("lin-cae")
    assert src is not None
    assert src.repo == RELEASE_REPO
    assert src.files == (
        "0a3afbec_weights/autoencoder_inference_model_last.pth",
        "0a3afbec_weights/frontend_kwargs_last.yaml",
        "0a3afbec_weights/generator_kwargs_last.yaml",
        "0a3afbec_weights/diffusion_kwargs_last.yaml",
    )
    other = parse_model_name("hf:me/models@v2/abc_weights/autoencoder_inference_model_best.pth")
    assert other is not None
    assert (other.repo, other.revision, other.scale_factor) == ("me/models", "v2", None)
    assert other.configs[1] == "abc_weights/generator_kwargs_best.yaml"
    same = parse_model_name(f"hf:{RELEASE_REPO}/0a3afbec_weights")
    assert same is not None
    assert same.canonical == src.canonical
    assert same.scale_factor == 33.0
    m2l = parse_model_name("hf:someone/music2latent/music2latent.pt")
    assert m2l is not None
    assert m2l.configs == ()
    assert parse_model_name("default") is None
    assert parse_model_name("./some/checkpoint") is None
    for bad in ("hf:onlyrepo", "hf:a/b/weights.bin.pth"):
        with pytest.raises(CheckpointError, match="Expected hf:|expected a release"):
            parse_model_name(bad)


def test_release_config_is_the_inverse_of_reference_kwargs() -> None:
    for cfg in (micro_config(), get_preset("paper"), get_preset("tiny")):
        front, gen = reference_kwargs(cfg)
        got = release_config(front, gen, {"rho": cfg.rho, "sigma_min": cfg.sigma_min, "p_mean": -1.1})
        assert got.replace(name=cfg.name) == cfg
    front, gen = reference_kwargs(get_preset("paper"))
    assert release_config(front, {**gen, "sigma_max": 80}) is get_preset("paper")  # YAML's int 80
    with pytest.raises(CheckpointError, match="unknown key 'surprise'"):
        release_config(front, {**gen, "surprise": 1})
    with pytest.raises(CheckpointError, match="expected use_fourier=False"):
        release_config(front, {**gen, "use_fourier": True})
    with pytest.raises(CheckpointError, match="diffusion sigma_max"):
        release_config(front, gen, {"sigma_max": 40.0})
    with pytest.raises(CheckpointError, match="expected a sample_rate"):
        release_config({k: v for k, v in front.items() if k != "sample_rate"}, gen)


def test_lin_cae_from_a_hub_server_then_from_the_cache(
    served: tuple[Path, list[str]],
    env: dict[str, str],
    library: Path,
    tmp_path: Path,
    one_thread: None,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    root, files = served
    hub = FakeHub(root)
    with hub.serving():
        monkeypatch.setenv("HF_ENDPOINT", hub.endpoint)
        z = _encode(library, tmp_path / "a.zarr")
        first = list(hub.requests)
        # the revision is resolved once (main), every file is fetched at that commit
        assert {p for _, p in first} == {f"/{RELEASE_REPO}/resolve/main/{files[0]}"} | {
            f"/{RELEASE_REPO}/resolve/{COMMIT}/{f}" for f in files[1:]
        }
        assert [m for m, _ in first].count("GET") == len(files)
        assert len(first) == 2 * len(files)  # a HEAD and a GET each
        z2 = _encode(library, tmp_path / "b.zarr")  # a second use: lincae's cache only
        assert hub.requests == first
        listed = [json.loads(line) for line in _run("models", "--json").output.splitlines()]
        info = json.loads(_run("info", "lin-cae", "--json").output)
        assert hub.requests == first
    np.testing.assert_array_equal(z, z2)
    ref = _reference_latents(library / "song.wav", z.shape[-1], tmp_path)
    assert ref.shape == z.shape
    np.testing.assert_allclose(z, ref, atol=5e-5, rtol=0)

    store = LatentStore.open(tmp_path / "a.zarr")
    assert store.lineage[0]["args"]["checkpoint"] == "lin-cae"
    source = store.lineage[0]["args"]["model_source"]
    assert (source["repo"], source["commit"]) == (RELEASE_REPO, COMMIT)
    assert source["files"] == {f: sha256(root / f) for f in files}
    r = _run("gain", str(tmp_path / "a.zarr"), "-o", str(tmp_path / "g.zarr"), "--gain", "0.5")
    assert r.exit_code == 0, r.output
    assert LatentStore.open(tmp_path / "g.zarr").lineage[0]["args"]["model_source"] == source
    row = next(r for r in listed if r["name"] == "lin-cae")
    assert (row["state"], row["offline"], row["model_id"]) == ("converted", True, store.model_id)
    assert row["source"] == {"repo": RELEASE_REPO, "commit": COMMIT}
    card = _check_card(Path(row["path"]), served)
    assert card["model_id"] == store.model_id == info["model_id"]
    assert info["model_card"]["source"] == card["source"]
    # the store names its model: decode finds it without -c
    r = _run("decode", str(tmp_path / "a.zarr"), str(tmp_path / "decoded"), "--device", "cpu")
    assert r.exit_code == 0, r.output
    assert (tmp_path / "decoded" / "song.wav").is_file()
    # `lincae card NAME` measures the converted checkpoint in lincae's cache (no request)
    sr = store.geometry.sample_rate
    (tmp_path / "stems" / "song").mkdir(parents=True)
    for i, stem in enumerate(("bass", "drums", "other", "vocals")):
        sf.write(tmp_path / "stems" / "song" / f"{stem}.wav", 0.3 * music(sr, 1.0, seed=i), sr)
    r = _run("card", "lin-cae", "--stems", str(tmp_path / "stems"), "--max-seconds", "1", "-j", "1")
    assert r.exit_code == 0, r.output
    measured = json.loads((Path(row["path"]) / "model_card.json").read_text())
    assert measured["model_id"] == store.model_id
    assert "reconstruction" in measured["measured"]
    assert hub.requests == first


def test_lin_cae_offline_from_a_hub_cache(
    served: tuple[Path, list[str]],
    env: dict[str, str],
    library: Path,
    tmp_path: Path,
    one_thread: None,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    root, files = served
    populate_hub_cache(Path(env["HF_HOME"]) / "hub", RELEASE_REPO, root, files)
    hub = FakeHub(root)  # served, and offline: it must see no request
    with hub.serving():
        monkeypatch.setenv("HF_ENDPOINT", hub.endpoint)
        monkeypatch.setenv("HF_HUB_OFFLINE", "1")
        listed = [json.loads(line) for line in _run("models", "--json").output.splitlines()]
        z = _encode(library, tmp_path / "a.zarr")
        z2 = _encode(library, tmp_path / "b.zarr")
        assert hub.requests == []
    row = next(r for r in listed if r["name"] == "lin-cae")
    assert (row["state"], row["offline"]) == ("in the hub cache", True)
    np.testing.assert_array_equal(z, z2)
    ref = _reference_latents(library / "song.wav", z.shape[-1], tmp_path)
    np.testing.assert_allclose(z, ref, atol=5e-5, rtol=0)
    path = next(Path(env["LINCAE_CACHE"], "checkpoints").iterdir())
    _check_card(path, served)


@pytest.mark.parametrize("offline", [True, False])
def test_missing_model_is_one_line_with_the_fetch_command(
    env: dict[str, str], library: Path, tmp_path: Path, offline: bool, monkeypatch: pytest.MonkeyPatch
) -> None:
    if offline:
        monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    r = CliRunner().invoke(cli, ["encode", str(library), str(tmp_path / "o.zarr"), "-c", "lin-cae"])
    assert r.exit_code == 1
    lines = [line for line in r.output.splitlines() if line.strip()]
    assert len(lines) == 1, r.output
    line = lines[0]
    assert "lin-cae" in line
    assert ("HF_HUB_OFFLINE is set" if offline else "cannot be reached") in line
    src = parse_model_name("lin-cae")
    assert src is not None
    assert f"`hf download {RELEASE_REPO} {' '.join(src.files)} --revision main`" in line
    assert (
        str(Path(env["HF_HOME"]) / "hub" / "models--BernardoTorres--linear_consistency_autoencoders") in line
    )
    assert not (tmp_path / "o.zarr").exists()


def test_models_lists_default_baseline_and_releases(env: dict[str, str]) -> None:
    r = _run("models", "--json")
    assert r.exit_code == 0, r.output
    rows = {row["name"]: row for row in map(json.loads, r.output.splitlines())}
    assert {"default", "lin-cae", "lin-cae-2", "m2l"} <= set(rows)
    assert rows["default"]["offline"]
    assert rows["default"]["sample_rate"] == 16000
    assert isinstance(rows["default"]["measured"], dict)
    if "baseline-tiny" in rows:  # a source checkout ships it
        assert rows["baseline-tiny"]["kind"] == "baseline"
    for name in ("lin-cae", "lin-cae-2", "m2l"):
        row = rows[name]
        assert (row["sample_rate"], row["channels"], row["offline"]) == (44100, 1, False)
        assert row["parameters"] == 58185026
        assert row["use"] == f"-c {name}"
    text = _run("models").output
    assert "lin-cae-2" in text
    assert "not downloaded" in text


def test_fetch_an_hf_spec_at_a_commit(
    served: tuple[Path, list[str]], env: dict[str, str], monkeypatch: pytest.MonkeyPatch
) -> None:
    root, _ = served
    hub = FakeHub(root, repo="someone/other-release")
    spec = f"hf:someone/other-release@{COMMIT}/{LIN_CAE_HASH}_weights"
    with hub.serving():
        monkeypatch.setenv("HF_ENDPOINT", hub.endpoint)
        r = _run("models", "--fetch", spec)
        assert r.exit_code == 0, r.output
        n = len(hub.requests)
        assert n == 8  # HEAD + GET of four files, every one at the commit asked for
        assert all(f"/resolve/{COMMIT}/" in p for _, p in hub.requests)
        assert _run("models", "--fetch", spec).output == r.output
        assert len(hub.requests) == n
    card = json.loads((Path(r.output.strip()) / "model_card.json").read_text())
    assert card["source"]["repo"] == "someone/other-release"
    assert card["source"]["scale_factor"] == 33.0  # the folder of a known release
    rows = [json.loads(line) for line in _run("models", "--json").output.splitlines()]
    assert any(row["name"] == spec and row["kind"] == "cached" for row in rows)


def test_a_corrupted_hub_cache_file_is_refused(
    served: tuple[Path, list[str]], env: dict[str, str], monkeypatch: pytest.MonkeyPatch
) -> None:
    root, files = served
    cache = Path(env["HF_HOME"]) / "hub"
    populate_hub_cache(cache, RELEASE_REPO, root, files)
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    blob = (cache / f"models--{RELEASE_REPO.replace('/', '--')}" / "snapshots" / COMMIT / files[0]).resolve()
    data = bytearray(blob.read_bytes())
    data[-100] ^= 0xFF
    blob.write_bytes(bytes(data))
    r = CliRunner().invoke(cli, ["models", "--fetch", "lin-cae"])
    assert r.exit_code == 1
    assert "the hub cache's file has sha256" in r.output
    assert not list(Path(env["LINCAE_CACHE"]).glob("checkpoints/*"))
