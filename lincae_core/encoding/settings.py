"""What an encode is asked to do and what it did: settings, progress, summary, and the shard of
this process (``--shard auto``)."""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import asdict, dataclass, field, replace
from typing import Any

from lincae_core.errors import ConfigError

__all__ = ["AUTOCAST_CHOICES", "EncodeProgress", "EncodeSettings", "EncodeSummary", "shard_from_env"]

AUTOCAST_CHOICES = ("none", "bf16")


@dataclass(frozen=True)
class EncodeSettings:
    """How to encode (everything but the model and the window, which ``InferenceConfig`` holds).

    Attributes:
        channels: ``"mono"`` (1 latent channel) or ``"stereo"`` (2).
        dtype: Storage dtype, ``"float16"`` or ``"float32"``.
        workers: Audio reader threads (decode + resample, overlapped with the model).
        shard: This process's shard index, in ``[0, shards)``.
        shards: Number of shard processes filling the store.
        overwrite: Replace an existing ``OUT`` made by another model/config/input set.
        plan_only: Plan the store and stop (then start the shards).
        amp: float16 autocast of the encoder on CUDA.
        channels_last: Run the encoder in channels-last memory format; ``None`` (default): on
            CPU, where it is about 1.5-2x faster and the latents stay within float16 storage
            precision of ``inference.encode`` (a different convolution algorithm, ~1e-4), off on
            CUDA. :meth:`for_device` resolves it.
        autocast: ``"none"`` or ``"bf16"``: bfloat16 autocast of the encoder on CPU (opt-in: the
            latents are *not* within float16 precision of ``inference.encode``, docs/encoding.md).
        compile: Run the encoder through ``torch.compile`` (opt-in; compiles per input shape).
        parallel_forward: Run one encoder pass per core at once, each on one torch thread, instead
            of one pass at a time on every core; ``None`` (default): on with channels-last on CPU
            (1.5x the throughput of small passes there), off on CUDA, with ``compile`` and with
            ``channels_last=False`` (which keeps the library API's exact bits). The latents
            then do not depend on the number of cores (every pass runs on one thread).
        chunk_frames: Frames per latent chunk of a new store (None: the store default,
            ``DEFAULT_CHUNK_FRAMES``); a store being resumed keeps its own.
        chunks_per_object: Zarr v3 sharding of a new store's latents: chunks per stored object
            (1: none; :meth:`lincae_core.store.LatentStore.create`).
        checksums: A CRC32C after every latent chunk of a new store, checked on every read (Zarr
            v3's ``crc32c`` codec; docs/store-format.md); None: the choice of the store being
            resumed or updated, else off.
        chunk_writes: Buffer finished tracks and write them together, a chunk at a time, instead
            of one read-modify-write of the shared chunk per track (same bytes, same crash
            safety: a track is marked done only after its latents are written).
    """

    channels: str = "mono"
    dtype: str = "float16"
    workers: int = 2
    shard: int = 0
    shards: int = 1
    overwrite: bool = False
    plan_only: bool = False
    amp: bool = True
    channels_last: bool | None = None
    autocast: str = "none"
    compile: bool = False
    chunk_writes: bool = True
    chunk_frames: int | None = None
    chunks_per_object: int = 1
    checksums: bool | None = None
    parallel_forward: bool | None = None

    def __post_init__(self) -> None:
        """Validate the settings (``ConfigError`` naming what was expected)."""
        if self.channels not in ("mono", "stereo"):
            raise ConfigError(f"Expected channels 'mono' or 'stereo'. Got {self.channels!r} instead.")
        if self.dtype not in ("float16", "float32"):
            raise ConfigError(f"Expected dtype 'float16' or 'float32'. Got {self.dtype!r} instead.")
        if not 0 <= self.shard < self.shards:
            raise ConfigError(f"Expected shard i/N with 0 <= i < N. Got {self.shard}/{self.shards} instead.")
        from lincae_core.store.layout import MAX_CHUNK_FRAMES

        if self.chunk_frames is not None and not 1 <= self.chunk_frames <= MAX_CHUNK_FRAMES:
            raise ConfigError(
                f"Expected chunk_frames in 1..{MAX_CHUNK_FRAMES}. Got {self.chunk_frames} instead."
            )
        if self.workers < 1:
            raise ConfigError(f"Expected workers >= 1. Got {self.workers} instead.")
        if self.autocast not in AUTOCAST_CHOICES:
            raise ConfigError(
                f"Expected autocast one of {list(AUTOCAST_CHOICES)}. Got {self.autocast!r} instead."
            )
        if self.overwrite and self.shards > 1 and not self.plan_only:
            raise ConfigError(
                "overwrite with several shards would let each shard replace the "
                "others' work: replace the store once with plan_only, then run shards."
            )

    def for_device(self, device_type: str) -> EncodeSettings:
        """These settings with ``channels_last`` and ``parallel_forward`` resolved for
        ``device_type`` (``None``: on for CPU; parallel passes only with channels-last and
        without compile)."""
        cl = self.channels_last if self.channels_last is not None else device_type == "cpu"
        par = self.parallel_forward
        if par is None:
            par = device_type == "cpu" and cl and not self.compile
        return replace(self, channels_last=cl, parallel_forward=bool(par))

    def forward_workers(self) -> int:
        """Encoder passes run at once: one per torch thread with ``parallel_forward``, else 1."""
        if not self.parallel_forward or self.compile:
            return 1
        import torch

        return max(1, torch.get_num_threads())

    @property
    def latent_channels(self) -> int:
        """Latent channels C."""
        return 1 if self.channels == "mono" else 2


@dataclass(frozen=True)
class EncodeProgress:
    """A progress report: ``phase`` is ``"plan"`` (probing headers) or ``"encode"``."""

    phase: str
    files_done: int
    files_total: int
    seconds_done: float = 0.0
    seconds_total: float = 0.0
    elapsed_s: float = 0.0


@dataclass
class EncodeSummary:
    """What one ``encode_files`` call did (JSON-ready through :meth:`to_dict`)."""

    store: str
    shard: int
    shards: int
    tracks: int = 0
    encoded: int = 0
    failed: int = 0
    skipped: int = 0
    failed_total: int = 0
    plan_failures: int = 0
    pending_elsewhere: int = 0
    audio_seconds: float = 0.0
    wall_seconds: float = 0.0
    model_seconds: float = 0.0  # inside the encoder's forward passes (busy / wall: loading hidden)
    batch_size: int = 0  # the batch size this call ran with (resolved when "auto")
    planned_here: bool = False
    nothing_to_do: bool = False
    update: dict[str, Any] | None = None  # what changed in the library since the store was planned
    failures: list[dict[str, Any]] = field(default_factory=list)

    @property
    def realtime(self) -> float:
        """Audio seconds encoded per wall second (x real time)."""
        return self.audio_seconds / self.wall_seconds if self.wall_seconds > 0 else 0.0

    @property
    def partial(self) -> bool:
        """Whether some inputs of this shard (or, for shard 0, of the plan) failed."""
        return self.failed_total > 0 or (self.shard == 0 and self.plan_failures > 0)

    def to_dict(self) -> dict[str, Any]:
        """Return a JSON-ready dict."""
        return {**asdict(self), "realtime": self.realtime, "partial": self.partial}


def shard_from_env(env: Mapping[str, str] | None = None) -> tuple[int, int]:
    """``--shard auto``: this process's shard ``(i, N)`` from a Slurm array or ``torchrun``.

    ``SLURM_ARRAY_TASK_ID`` (less ``SLURM_ARRAY_TASK_MIN``) of ``SLURM_ARRAY_TASK_COUNT``, else
    ``RANK`` of ``WORLD_SIZE``, else ``(0, 1)``.

    Raises:
        ConfigError: The variables are set but inconsistent.
    """
    env = os.environ if env is None else env
    pairs = (("SLURM_ARRAY_TASK_ID", "SLURM_ARRAY_TASK_COUNT"), ("RANK", "WORLD_SIZE"))
    for index_var, count_var in pairs:
        if index_var in env and count_var in env:
            try:
                first = env.get("SLURM_ARRAY_TASK_MIN", "0") if index_var.startswith("SLURM") else "0"
                i = int(env[index_var]) - int(first)
                n = int(env[count_var])
            except ValueError:
                raise ConfigError(
                    f"Expected integers in {index_var}/{count_var}. Got "
                    f"{env[index_var]!r}/{env[count_var]!r} instead."
                ) from None
            if not 0 <= i < n:
                raise ConfigError(f"Expected 0 <= {index_var} < {count_var}. Got {i} of {n} instead.")
            return i, n
    return 0, 1
