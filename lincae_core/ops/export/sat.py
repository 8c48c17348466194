"""What stable-audio-tools' pre-encoded loaders (and Stable Audio 3's) read besides the windows.

``sat-wds`` names the tar members ``<key>/<start>.npy`` + ``.json`` (its WebDataset loader reads
``sample["npy"]``); ``sat-dir`` writes them as files, which its ``PreEncodedDataset`` finds by
``filelist.txt`` and pairs by replacing ``.npy`` with ``.json``. Both add ``details.json``: the
model config, card and downsampling ratio embedded (stable-audio-tools records only config
paths there), and ``silence.npy``: ``Enc(0)`` of the store as ``[C*D, W]``, the latent of
digital silence, to pad or fill with.
"""

from __future__ import annotations

import io
import json
import os
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np

from lincae_core.location import Location, RemotePath
from lincae_core.ops.export.windows import key_prefix
from lincae_core.store import LatentStore

__all__ = ["FORMATS", "file_list", "write_sat_extras"]

#: ``export`` output formats: today's WebDataset members, and stable-audio-tools' two layouts.
FORMATS = ("wds", "sat-wds", "sat-dir")


def file_list(keys: Sequence[str], counts: np.ndarray, hop: int) -> list[str]:
    """The ``.npy`` files of a ``sat-dir`` export, relative to its root, in window order."""
    return [
        f"{key_prefix(k)}/{j * hop:08d}.npy"
        for k, c in zip(keys, counts.tolist(), strict=True)
        for j in range(c)
    ]


def _write(path: Location, data: bytes) -> None:
    if isinstance(path, RemotePath):
        path.write_bytes(data)  # one PUT: whole or absent
        return
    tmp = path.with_name(f"{path.name}.partial")
    tmp.write_bytes(data)
    os.replace(tmp, path)


def write_sat_extras(
    root: Location,
    store: LatentStore,
    common: Mapping[str, Any],
    *,
    window: int,
    hop: int,
    pad: bool,
    format: str,
    dtype: str,
    files: list[str] | None,
) -> None:
    """Write ``details.json``, ``silence.npy`` (when the store records ``Enc(0)``) and, for
    ``sat-dir``, ``filelist.txt`` into ``root``."""
    origin = store.origin_frames()
    if origin is not None:
        w = origin.shape[0]
        buf = np.ascontiguousarray(origin.reshape(w, -1).T.astype(dtype))  # [C*D, W]
        out = io.BytesIO()
        np.save(out, buf, allow_pickle=False)
        _write(root / "silence.npy", out.getvalue())
    details = {
        "format": format,
        "layout": "[C*D, T]",
        "window_frames": window,
        "hop_frames": hop,
        "padded": pad,
        "latent_rate": store.geometry.frame_rate,
        "io_channels": store.channels * store.geometry.latent_dim,
        "silence": "silence.npy" if origin is not None else None,
        **{k: v for k, v in common.items() if k != "layout"},
        "model_config": store.model_config,
        "model_card": store.model_card,
    }
    _write(root / "details.json", (json.dumps(details, indent=1) + "\n").encode())
    if files is not None:
        _write(root / "filelist.txt", "".join(f"{f}\n" for f in files).encode())
