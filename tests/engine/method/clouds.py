"""Synthetic point clouds shared by the 3D grouping and point-search tests."""

from __future__ import annotations

import torch

from engine.method.point_groups import normalize_unit_ball


def sheet_and_blob(n: int, seed: int = 0) -> torch.Tensor:
    """A random cloud in the unit ball: a noisy bumpy sheet plus a blob, so curvatures vary.

    Its coordinates are random floats, so it has no exact distance ties, like a real part.
    """
    g = torch.Generator().manual_seed(seed)
    uv = torch.rand(n, 2, generator=g)
    z = 0.2 * torch.sin(5 * uv[:, :1]) + 0.02 * torch.randn(n, 1, generator=g)
    sheet = torch.cat([uv, z], 1)
    sheet[: n // 4] = 0.3 * torch.randn(n // 4, 3, generator=g) + 0.5
    return normalize_unit_ball(sheet)[0]
