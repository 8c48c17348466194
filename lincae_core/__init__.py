"""lincae: latent audio datasets with a linear consistency autoencoder (Lin-CAE, arXiv:2510.23530)."""

from __future__ import annotations

__version__ = "0.1.0"
