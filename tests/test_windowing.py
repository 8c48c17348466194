"""Window plans and cross-fade weights (lincae_core.windowing)."""

from __future__ import annotations

import numpy as np
import pytest

from lincae_core import windowing


@pytest.mark.parametrize(
    ("frames", "window", "overlap"), [(1, 8, 2), (8, 8, 2), (9, 8, 2), (50, 8, 3), (77, 10, 1)]
)
def test_plan_windows_cover_everything(frames: int, window: int, overlap: int) -> None:
    plan = windowing.plan_windows(frames, window, overlap)
    assert plan[0][0] == 0
    assert plan[-1][1] == frames
    for (s0, e0), (s1, e1) in zip(plan, plan[1:], strict=False):
        assert e1 - s1 == window
        assert e0 - s0 == window
        assert e0 - s1 >= overlap  # consecutive windows overlap by at least `overlap`
    regions = windowing.crossfade_regions(plan, overlap)
    weights = np.zeros(frames)
    for i, (s, e) in enumerate(plan):
        weights[s:e] += windowing.ramp_weights(regions, i, s, e - s)
    assert np.allclose(weights, 1.0, atol=1e-6)  # the cross-fade is a partition of unity
