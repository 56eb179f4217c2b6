"""Anomaly maps: from patch scores on the token grid to pixels (spec Part B §6.1)."""

from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F


def upsample_maps(patch_maps: torch.Tensor, size: int | tuple[int, int]) -> torch.Tensor:
    """Bilinear (align_corners=True, as the reference) upsampling of grid maps.

    Args:
        patch_maps: (N, h, w) scores on the token grid.
        size: Output side, or (height, width).

    Returns:
        (N, H, W) float32 maps.
    """
    out_size = (size, size) if isinstance(size, int) else size
    grid = patch_maps.to(torch.float32).unsqueeze(1)
    return F.interpolate(grid, size=out_size, mode="bilinear", align_corners=True).squeeze(1)


def map_at_size(patch_map: np.ndarray, height: int, width: int) -> np.ndarray:
    """One sample's grid map at its original image size (the input was squashed to a square).

    Args:
        patch_map: (h, w) scores on the token grid.
        height: Original image height.
        width: Original image width.

    Returns:
        (height, width) float32 map.
    """
    tensor = torch.from_numpy(np.array(patch_map, dtype=np.float32))[None]
    return upsample_maps(tensor, (height, width))[0].numpy()


def image_scores_from_maps(patch_maps: torch.Tensor, size: int) -> torch.Tensor:
    """Image score = max of the anomaly map upsampled to ``size`` (the reference uses 224).

    The grid points of an align_corners=True upsampling generally fall between output pixels,
    so this max can be slightly below the grid max; computing it on the upsampled map keeps the
    reference's numbers.
    """
    return upsample_maps(patch_maps, size).flatten(1).amax(dim=1)
