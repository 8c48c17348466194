"""Which form a latent operation takes, and how far the store's model can be trusted with it.

:func:`default_origin`: the linear or affine form the model measured closer to the audio
operation (docs/linearity.md); :func:`operation_warnings`: the model card's linearity compared
with documented thresholds (:func:`lincae_core.linearity.linearity_warnings`); :func:`check_gain`:
a gain is a finite number.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

from lincae_core.errors import ConfigError
from lincae_core.store import LatentStore, StoreLike, open_store

__all__ = ["check_gain", "default_origin", "operation_warnings"]


def operation_warnings(srcs: Sequence[StoreLike], op: str, gains: Sequence[float] = ()) -> list[str]:
    """Warnings for a latent operation on these stores, from the linearity their model measured.

    ``gain`` relies on homogeneity, ``mix`` and ``extract`` on additivity: each store records its
    model's measured figures and trained gain range at encode time (``model.card`` attribute), and
    :func:`lincae_core.linearity.linearity_warnings` compares them with documented thresholds.
    """
    from lincae_core.linearity import linearity_warnings

    first = open_store(srcs[0])
    return linearity_warnings({"model_id": first.model_id, **first.model_card}, op, gains)


def default_origin(store: LatentStore) -> str:
    """The origin form an operation uses by default: the one the store's model measured closer to
    the audio-domain operation (``origin_default`` in its card, docs/linearity.md), else linear."""
    choice = store.model_card.get("origin_default")
    return choice if choice in ("linear", "affine") else "linear"


def check_gain(name: str, a: float) -> float:
    """``a`` as a float; a gain that is not a finite number is refused."""
    if not isinstance(a, (int, float)) or not math.isfinite(a):
        raise ConfigError(f"{name}: expected a finite number, got {a!r}")
    return float(a)
