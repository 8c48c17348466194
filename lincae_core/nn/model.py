"""The Music2Latent / Lin-CAE consistency autoencoder (method.md section 2), top to bottom.

``Encoder`` (representation -> tanh latent), ``LatentUpsampler`` (latent -> 2-D pyramid; the
reference calls it ``decoder``), and ``LinCAE``, which holds both plus the denoiser U-Net and
applies the consistency scalings. ``LinCAE.state_dict()`` has exactly the 583 keys of the
reference ``gen_state_dict`` for the ``paper`` config.

Layouts: audio ``[B, T]``; representation ``[B, 2, F, N]``; latent ``[B, D, Z]`` (raw tanh
latent, D = latent_dim, N = tdown*Z STFT frames).
"""

from __future__ import annotations

import math
from typing import Any

import torch
from torch import nn

from lincae_core.config import ModelConfig
from lincae_core.nn import transforms
from lincae_core.nn.consistency import sampler_sigmas, scalings
from lincae_core.nn.layers import (
    DownsampleConv,
    DownsampleFreqConv,
    FreqGain,
    PositionalEmbedding,
    ResBlock,
    UpsampleConv,
    UpsampleFreqConv,
    group_norm,
    zero_init,
)

__all__ = ["Encoder", "LatentUpsampler", "LinCAE"]


def _downsampler(cfg: ModelConfig, level: int, cin: int, cout: int, norm: bool) -> nn.Module:
    if cfg.freq_downsample[level]:
        return DownsampleFreqConv(cin, cout, normalize=norm)
    return DownsampleConv(cin, cout, normalize=norm)


def _upsampler(cfg: ModelConfig, up_level: int, cin: int, cout: int) -> nn.Module:
    if cfg.freq_downsample[::-1][up_level]:
        return UpsampleFreqConv(cin, cout)
    return UpsampleConv(cin, cout)


class Encoder(nn.Module):
    """Enc: 2-D ResNet down to [B, C, F', Z], channel-major flatten, 1-D bottleneck, tanh."""

    def __init__(self, cfg: ModelConfig) -> None:
        super().__init__()
        ch = [cfg.base_channels * m for m in cfg.multipliers]
        self.gain = FreqGain(cfg.freq_bins)
        self.conv_inp = nn.Conv2d(cfg.data_channels, ch[0], 3, padding=1)
        self.frequency_scaling = cfg.frequency_scaling
        layers: list[nn.Module] = []
        cin = ch[0]
        for level, n in enumerate(cfg.encoder_layers):
            for _ in range(n):
                layers.append(
                    ResBlock(cin, ch[level], attention=bool(cfg.encoder_attention[level]), heads=cfg.heads)
                )
                cin = ch[level]
            if level < len(ch) - 1:
                layers.append(_downsampler(cfg, level, cin, cin, cfg.pre_normalize_downsampling_encoder))
        self.down_layers = nn.ModuleList(layers)
        if cfg.pre_normalize_2d_to_1d:
            self.prenorm_1d_to_2d = group_norm(cin)
        width = cfg.bottleneck_base_channels
        self.bottleneck_layers = nn.Sequential(
            nn.Conv1d(cin * cfg.latent_freq_dim, width, 1),
            *[ResBlock(width, width, use_2d=False) for _ in range(cfg.num_bottleneck_layers)],
        )
        self.norm_out = group_norm(width)
        self.conv_out = nn.Conv1d(width, cfg.latent_dim, 1)

    def features(self, rep: torch.Tensor) -> torch.Tensor:
        """Return the pre-bottleneck features ``[B, C*F', Z]`` (channel-major, index c*F' + f)."""
        h = self.conv_inp(rep)
        if self.frequency_scaling:
            h = self.gain(h)
        for layer in self.down_layers:
            h = layer(h)
        if hasattr(self, "prenorm_1d_to_2d"):
            h = self.prenorm_1d_to_2d(h)
        return h.reshape(h.shape[0], h.shape[1] * h.shape[2], h.shape[3])  # (B, C*F', Z)

    def forward(self, rep: torch.Tensor) -> torch.Tensor:
        """Encode a representation ``[B, 2, F, N]`` into the raw tanh latent ``[B, D, Z]``."""
        h = self.bottleneck_layers(self.features(rep))
        return torch.tanh(self.conv_out(torch.nn.functional.silu(self.norm_out(h))))


class LatentUpsampler(nn.Module):
    """Latent -> 1-D bottleneck -> frequency-major reshape -> 2-D pyramid (no noise input)."""

    def __init__(self, cfg: ModelConfig) -> None:
        super().__init__()
        ch = [cfg.base_channels * m for m in cfg.multipliers]
        width = cfg.bottleneck_base_channels
        self.freq_dim = cfg.latent_freq_dim
        self.conv_inp = nn.Conv1d(cfg.latent_dim, width, 1)
        # Built with cond_channels but called without t_emb, as in the reference (dead proj_emb).
        self.bottleneck_layers = nn.Sequential(
            *[
                ResBlock(width, width, cfg.cond_channels, use_2d=False)
                for _ in range(cfg.num_bottleneck_layers)
            ]
        )
        self.conv_out_bottleneck = nn.Conv1d(width, ch[-1] * self.freq_dim, 1)
        layers: list[nn.Module] = []
        cin = ch[-1]
        levels = len(ch)
        for up, n in enumerate(reversed(cfg.encoder_layers)):
            level = levels - 1 - up
            for _ in range(n):
                layers.append(
                    ResBlock(cin, cin, attention=bool(cfg.encoder_attention[level]), heads=cfg.heads)
                )
            if up < levels - 1:
                layers.append(_upsampler(cfg, up, cin, ch[level - 1]))
                cin = ch[level - 1]
        self.up_layers = nn.ModuleList(layers)
        self.layers_per_level = tuple(reversed(cfg.encoder_layers))

    def forward(self, z: torch.Tensor) -> list[torch.Tensor]:
        """Map a latent ``[B, D, Z]`` to the pyramid [level 0 (finest), ..., level L-1]."""
        h = self.conv_inp(z)
        for layer in self.bottleneck_layers:
            h = layer(h)
        h = self.conv_out_bottleneck(h)  # (B, F'*C, Z), frequency-major
        b, _, t = h.shape
        h = h.reshape(b, self.freq_dim, -1, t).transpose(1, 2)  # (B, C, F', Z)
        pyramid, k = [], 0
        for up, n in enumerate(self.layers_per_level):
            for _ in range(n):
                h = self.up_layers[k](h)
                k += 1
            pyramid.append(h)
            if up < len(self.layers_per_level) - 1:
                h = self.up_layers[k](h)
                k += 1
        return pyramid[::-1]


def _mlp(cond: int, out: int, depth: int) -> nn.Sequential:
    mods: list[nn.Module] = []
    for _ in range(depth):
        mods += [nn.Linear(cond, cond), nn.SiLU()]
    if out:
        mods.append(zero_init(nn.Linear(cond, out)))
    return nn.Sequential(*mods)


class LinCAE(nn.Module):
    """Consistency autoencoder: Enc, latent upsampler and the denoiser F_theta with its scalings.

    Attributes:
        config: The geometry and architecture.
        model_id: SHA-256 of the weights and config when they were loaded from or saved to a
            checkpoint (``lincae_core.checkpoint``); None for weights that were never saved.
        card: The checkpoint's model card (``{}`` when not loaded from a checkpoint).
        recommended_steps: The decoding step count the card recommends (measured by
            ``lincae card``), 1 when it recommends none.
    """

    model_id: str | None
    card: dict[str, Any]

    @property
    def recommended_steps(self) -> int:
        """Decoding steps recommended by the model card (``recommended_steps``), else 1."""
        steps = self.card.get("recommended_steps")
        return int(steps) if isinstance(steps, int) and not isinstance(steps, bool) and steps >= 1 else 1

    def __init__(self, cfg: ModelConfig) -> None:
        super().__init__()
        self.config = cfg
        self.model_id = None
        self.card = {}
        ch = [cfg.base_channels * m for m in cfg.multipliers]
        self.encoder = Encoder(cfg)
        self.decoder = LatentUpsampler(cfg)
        self.emb = PositionalEmbedding(cfg.cond_channels)
        self.emb_proj = _mlp(cfg.cond_channels, 0, 2)
        self.scale_inp = _mlp(cfg.cond_channels, cfg.freq_bins, 2)
        self.scale_out = _mlp(cfg.cond_channels, cfg.freq_bins, 2)
        self.conv_inp = nn.Conv2d(cfg.data_channels, ch[0], 3, padding=1)
        down: list[nn.Module] = []
        for level, n in enumerate(cfg.layers):
            for _ in range(n):
                down += [
                    nn.Conv2d(ch[level], ch[level], 1),
                    ResBlock(ch[level], ch[level], cfg.cond_channels, bool(cfg.attention[level]), cfg.heads),
                ]
            if level < len(ch) - 1:
                down.append(_downsampler(cfg, level, ch[level], ch[level + 1], False))
        self.down_layers = nn.ModuleList(down)
        up: list[nn.Module] = []
        for u, n in enumerate(reversed(cfg.layers)):
            level = len(ch) - 1 - u
            for _ in range(n):
                up += [
                    nn.Conv2d(ch[level], ch[level], 1),
                    ResBlock(ch[level], ch[level], cfg.cond_channels, bool(cfg.attention[level]), cfg.heads),
                ]
            if level > 0:
                up.append(_upsampler(cfg, u, ch[level], ch[level - 1]))
        self.up_layers = nn.ModuleList(up)
        self.conv_decoded = nn.Conv2d(ch[0], ch[0], 1)
        self.norm_out = group_norm(ch[0])
        self.conv_out = zero_init(nn.Conv2d(ch[0], cfg.data_channels, 3, padding=1))

    # --- the denoiser ------------------------------------------------------------------
    def _raw_denoiser(self, x: torch.Tensor, e: torch.Tensor, pyramid: list[torch.Tensor]) -> torch.Tensor:
        """The U-Net F_theta on a c_in-scaled input; e is the raw noise embedding [B, cond]."""
        b = x.shape[0]
        t_emb = self.emb_proj(e)
        h = self.conv_inp(x)
        if self.config.frequency_scaling:
            h = h * (1.0 + self.scale_inp(e).reshape(b, 1, -1, 1))
        skips, k = [], 0
        for level, n in enumerate(self.config.layers):
            for _ in range(n):
                h = (h + self.down_layers[k](pyramid[level])) / math.sqrt(2.0)
                h = self.down_layers[k + 1](h, t_emb)
                skips.append(h)
                k += 2
            if level < len(self.config.layers) - 1:
                h = self.down_layers[k](h)
                k += 1
        k = 0
        for u, n in enumerate(reversed(self.config.layers)):
            level = len(self.config.layers) - 1 - u
            for _ in range(n):
                h = (h + skips.pop() + self.up_layers[k](pyramid[level])) / math.sqrt(3.0)
                h = self.up_layers[k + 1](h, t_emb)
                k += 2
            if level > 0:
                h = self.up_layers[k](h)
                k += 1
        h = (h + self.conv_decoded(pyramid[0])) / math.sqrt(2.0)
        h = torch.nn.functional.silu(self.norm_out(h))
        if self.config.frequency_scaling:
            h = h * (1.0 + self.scale_out(e).reshape(b, 1, -1, 1))
        return self.conv_out(h)

    def denoise(
        self, x_sigma: torch.Tensor, sigma: torch.Tensor | float, pyramid: list[torch.Tensor]
    ) -> torch.Tensor:
        """Consistency function f(x_sigma, sigma, z) = c_skip x + c_out F(c_in x) (Song et al., 2023).

        Args:
            x_sigma: noisy representation ``[B, 2, F, N]``.
            sigma: noise level, scalar or ``[B]``.
            pyramid: the latent upsampler's output for the conditioning latent.
        """
        cfg = self.config
        b = x_sigma.shape[0]
        sigma = torch.as_tensor(sigma, dtype=torch.float32, device=x_sigma.device).reshape(-1).expand(b)
        e = self.emb(torch.log(sigma) / 4.0)
        c_skip, c_out, c_in = scalings(sigma, cfg.sigma_data, cfg.sigma_min)
        return c_skip * x_sigma + c_out * self._raw_denoiser(c_in * x_sigma, e, pyramid)

    # --- latents -----------------------------------------------------------------------
    def encode_representation(self, rep: torch.Tensor) -> torch.Tensor:
        """Enc on a representation ``[B, 2, F, N]`` -> raw latent ``[B, D, ceil(N/tdown)]``."""
        return self.encoder(rep)

    def encode(self, audio: torch.Tensor) -> torch.Tensor:
        """Encode audio ``[B, T]`` covering every sample: ``[B, D, ceil(T/samples_per_frame)]``.

        The signal is zero-padded at the end to ``samples_per_frame*Z + n_fft - hop`` samples so
        that the STFT has exactly ``tdown*Z`` frames (see ``transforms.padded_length``).
        """
        cfg = self.config
        _, length = transforms.padded_length(audio.shape[-1], cfg)
        audio = torch.nn.functional.pad(audio.float(), (0, length - audio.shape[-1]))
        return self.encoder(transforms.to_representation(audio, cfg))

    @torch.no_grad()
    def decode_representation(
        self,
        z: torch.Tensor,
        steps: int = 1,
        generator: torch.Generator | None = None,
        generators: list[torch.Generator] | None = None,
    ) -> torch.Tensor:
        """Consistency sampling (method.md §4): x_T = sigma_max*eps, x0 = f(x, sigma_k, z), re-noise.

        Args:
            z: raw latent ``[B, D, Z]``.
            steps: number of denoising steps (1 = single-step decoding).
            generator: one torch generator seeding every noise draw (reproducible decodes).
            generators: alternatively one generator per batch item (noise independent of batching).

        Returns:
            Representation ``[B, 2, F, tdown*Z]``.
        """
        cfg = self.config
        b, _, frames = z.shape
        shape = (b, cfg.data_channels, cfg.freq_bins, frames * cfg.time_downsample)
        if generators is not None and len(generators) != b:
            raise ValueError(f"Expected {b} generators (one per item). Got {len(generators)}.")

        def noise() -> torch.Tensor:
            if generators is not None:
                eps = torch.stack([torch.randn(shape[1:], generator=g) for g in generators])
            else:
                eps = torch.randn(
                    shape, generator=generator, device=generator.device if generator else z.device
                )
            return eps.to(device=z.device, dtype=z.dtype)

        pyramid = self.decoder(z)
        sigmas = sampler_sigmas(steps, cfg.sigma_min, cfg.sigma_max, cfg.rho)
        x = noise() * cfg.sigma_max
        x0 = x
        for k in range(steps):
            x0 = self.denoise(x, sigmas[k], pyramid)
            if k < steps - 1:
                x = x0 + math.sqrt(sigmas[k + 1] ** 2 - cfg.sigma_min**2) * noise()
        return x0

    @torch.no_grad()
    def decode(
        self,
        z: torch.Tensor,
        num_samples: int | None = None,
        steps: int = 1,
        generator: torch.Generator | None = None,
    ) -> torch.Tensor:
        """Decode a raw latent ``[B, D, Z]`` to audio ``[B, num_samples or 4096 Z + 1536]``."""
        audio = transforms.from_representation(self.decode_representation(z, steps, generator), self.config)
        return audio if num_samples is None else audio[:, :num_samples]
