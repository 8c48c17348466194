"""Validation during training: cheap reconstruction and linearity scores of the EMA weights on a
fixed held-out batch (rank 0 only), logged to ``metrics.jsonl`` and the model card."""

from __future__ import annotations

import torch

from lincae_core.config import ModelConfig, TrainConfig
from lincae_core.nn.model import LinCAE
from lincae_core.train.data import load_validation, segment_length
from lincae_core.train.ema import EMA

__all__ = ["VALID_GAINS", "Validator", "validate"]

VALID_GAINS = (0.25, 0.5, 0.75, 1.1)


@torch.no_grad()
def validate(model: LinCAE, x: torch.Tensor, seed: int = 0) -> dict[str, float]:
    """Cheap validation of reconstruction and linearity (arXiv:2510.23530, Sec. 4.2-4.4).

    Reconstruction SNR/MSS of one-step decodes, encoder homogeneity error averaged over
    a ∈ {0.25, 0.5, 0.75, 1.1}, and encoder/decoder additivity on pairs (x_i, x_{i−1}).
    Decodes are seeded, so the numbers depend only on the weights and ``x``.

    Args:
        model: the model to score (the EMA weights), in eval mode.
        x: validation audio ``[N, T]``.
    """
    from lincae_core.evaluation import metrics

    sr, n = model.config.sample_rate, x.shape[-1]

    def dec(z: torch.Tensor) -> torch.Tensor:
        return model.decode(z, num_samples=n, generator=torch.Generator(z.device).manual_seed(seed))

    z = model.encode(x)
    out = {k: float(v.mean()) for k, v in metrics.reconstruction_scores(dec(z), x, sr).items()}
    hom = [metrics.encoder_homogeneity_error(model.encode(a * x), z, a).mean() for a in VALID_GAINS]
    out["enc_hom"] = float(torch.stack(hom).mean())
    if x.shape[0] > 1:
        z_mix, z_sum = model.encode(x + x.roll(1, 0)), z + z.roll(1, 0)
        out["enc_add"] = float(metrics.encoder_additivity_error(z_mix, z_sum).mean())
        dec_add = metrics.decoder_additivity(dec(z_sum), dec(z_mix), sr)
        out.update({f"dec_add_{k}": float(v.mean()) for k, v in dec_add.items()})
    return out


class Validator:
    """Scores the EMA weights on a fixed validation batch (rank 0 only)."""

    def __init__(self, cfg: TrainConfig, mcfg: ModelConfig, device: torch.device) -> None:
        self.x = (
            load_validation(
                cfg.valid, mcfg.sample_rate, segment_length(cfg, mcfg), cfg.valid_items, cfg.silence_rms
            ).to(device)
            if cfg.valid
            else None
        )
        self.model = LinCAE(mcfg).to(device).eval() if cfg.valid else None

    def __call__(self, ema: EMA, seed: int) -> dict[str, float]:
        if self.x is None or self.model is None:
            return {}
        ema.copy_to(self.model)
        return validate(self.model, self.x, seed)
