"""Building blocks of the Music2Latent / Lin-CAE U-Net (method.md section 2).

Attribute names equal the reference state-dict keys (``conv1``, ``norm1``, ``att.mha``, ``c``,
``proj_emb`` ...), so released weights load with no key mapping. Layouts: 2-D feature maps
``[B, C, F, T]``, 1-D bottleneck features ``[B, C, T]``.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

__all__ = [
    "Attention",
    "DownsampleConv",
    "DownsampleFreqConv",
    "FreqGain",
    "PositionalEmbedding",
    "ResBlock",
    "UpsampleConv",
    "UpsampleFreqConv",
    "group_norm",
    "zero_init",
]


def group_norm(channels: int) -> nn.GroupNorm:
    """GroupNorm with min(C/4, 32) groups, as every norm of the reference U-Net."""
    return nn.GroupNorm(min(channels // 4, 32), channels)


def zero_init(module: nn.Module) -> nn.Module:
    """Zero a module's parameters in place (the reference ``init_as_zero``) and return it."""
    for p in module.parameters():
        p.detach().zero_()
    return module


class FreqGain(nn.Module):
    """Learnable per-frequency scale ``[1, 1, F, 1]``, initialised to one."""

    def __init__(self, freq_dim: int) -> None:
        super().__init__()
        self.scale = nn.Parameter(torch.ones(1, 1, freq_dim, 1))

    def forward(self, x: torch.Tensor) -> torch.Tensor:  # noqa: D102
        return x * self.scale


class Attention(nn.Module):
    """Self-attention along frequency, independently per time frame, with a residual."""

    def __init__(self, dim: int, heads: int) -> None:
        super().__init__()
        self.mha = nn.MultiheadAttention(dim, heads, dropout=0.0, batch_first=True)
        zero_init(self.mha.out_proj)
        self.norm = group_norm(dim)

    def forward(self, x: torch.Tensor) -> torch.Tensor:  # noqa: D102
        b, c, f, t = x.shape
        h = self.norm(x).permute(0, 3, 2, 1).reshape(b * t, f, c)  # (B*T, F, C)
        h = self.mha(h, h, h, need_weights=False)[0]
        return x + h.reshape(b, t, f, c).permute(0, 3, 2, 1)


class ResBlock(nn.Module):
    """GN-SiLU-conv, +noise embedding, GN-SiLU-conv(zero init), residual, optional attention."""

    def __init__(
        self,
        in_channels: int,
        out_channels: int,
        cond_channels: int | None = None,
        attention: bool = False,
        heads: int = 4,
        use_2d: bool = True,
    ) -> None:
        super().__init__()
        conv = nn.Conv2d if use_2d else nn.Conv1d
        self.use_2d = use_2d
        self.conv1 = conv(in_channels, out_channels, 3, padding="same")
        self.conv2 = zero_init(conv(out_channels, out_channels, 3, padding="same"))
        self.res_conv = conv(in_channels, out_channels, 1) if in_channels != out_channels else nn.Identity()
        self.norm1 = group_norm(in_channels)
        self.norm2 = group_norm(out_channels)
        if cond_channels is not None:
            self.proj_emb = zero_init(nn.Linear(cond_channels, out_channels))
        self.att = Attention(out_channels, heads) if attention else None

    def forward(self, x: torch.Tensor, t_emb: torch.Tensor | None = None) -> torch.Tensor:
        """Apply the block; ``t_emb`` is ``[B, cond]`` (only for conditioned blocks)."""
        h = self.conv1(F.silu(self.norm1(x)))
        if t_emb is not None:
            e = self.proj_emb(t_emb)
            h = h + (e[:, :, None, None] if self.use_2d else e[:, :, None])
        h = self.conv2(F.silu(self.norm2(h)))
        h = h + self.res_conv(x)
        return self.att(h) if self.att is not None else h


class DownsampleConv(nn.Module):
    """Optional GN, then conv k3 stride 2 (halves F and T, ceil)."""

    def __init__(self, in_channels: int, out_channels: int, normalize: bool = False) -> None:
        super().__init__()
        if normalize:
            self.norm = group_norm(in_channels)
        self.c = nn.Conv2d(in_channels, out_channels, 3, stride=2, padding=1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:  # noqa: D102
        return self.c(self.norm(x) if hasattr(self, "norm") else x)


class DownsampleFreqConv(nn.Module):
    """Optional GN, then conv k(5,1) stride (4,1): frequency-only downsampling by 4."""

    def __init__(self, in_channels: int, out_channels: int, normalize: bool = False) -> None:
        super().__init__()
        if normalize:
            self.norm = group_norm(in_channels)
        self.c = nn.Conv2d(in_channels, out_channels, (5, 1), stride=(4, 1), padding=(2, 0))

    def forward(self, x: torch.Tensor) -> torch.Tensor:  # noqa: D102
        return self.c(self.norm(x) if hasattr(self, "norm") else x)


class UpsampleConv(nn.Module):
    """Nearest x2 on (F, T), then conv k3 'same'."""

    def __init__(self, in_channels: int, out_channels: int) -> None:
        super().__init__()
        self.c = nn.Conv2d(in_channels, out_channels, 3, padding="same")

    def forward(self, x: torch.Tensor) -> torch.Tensor:  # noqa: D102
        return self.c(F.interpolate(x, scale_factor=2, mode="nearest"))


class UpsampleFreqConv(nn.Module):
    """Nearest x(4, 1), then conv k(5,1) 'same'."""

    def __init__(self, in_channels: int, out_channels: int) -> None:
        super().__init__()
        self.c = nn.Conv2d(in_channels, out_channels, (5, 1), padding="same")

    def forward(self, x: torch.Tensor) -> torch.Tensor:  # noqa: D102
        return self.c(F.interpolate(x, scale_factor=(4, 1), mode="nearest"))


class PositionalEmbedding(nn.Module):
    """Sinusoidal embedding [sin(s f_k), cos(s f_k)], f_k = 10000^(-k/(n/2-1)) (DDPM++ style)."""

    def __init__(self, size: int, max_positions: int = 10000) -> None:
        super().__init__()
        self.size = size
        self.max_positions = max_positions

    def forward(self, s: torch.Tensor) -> torch.Tensor:
        """Embed ``s`` ``[B]`` into ``[B, size]``."""
        half = self.size // 2
        freqs = torch.arange(half, dtype=torch.float32, device=s.device) / (half - 1)
        freqs = (1.0 / self.max_positions) ** freqs
        x = torch.outer(s, freqs.to(s.dtype))
        return torch.cat([torch.sin(x), torch.cos(x)], dim=-1)
