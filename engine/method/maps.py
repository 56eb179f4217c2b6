"""Anomaly maps: from patch scores on the token grid to pixels (docs/method.md §7)."""

from __future__ import annotations

import torch
import torch.nn.functional as F

from engine.method.point_search import knn


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


def interpolation_weights(
    points: torch.Tensor, centers: torch.Tensor, neighbours: int = 3
) -> tuple[torch.Tensor, torch.Tensor]:
    """Inverse *squared*-distance weights of each point's nearest group centres (docs/method.md §7).

    Args:
        points: (P, 3) foreground points.
        centers: (G, 3) group centres.
        neighbours: Number of centres per point (3, as the reference).

    Returns:
        (indices (P, k) into the centres, ascending distance, weights (P, k) summing to 1 per
        point). The centres are found by the exact KNN of the 3D branch (a KD-tree on the CPU).
    """
    k = min(neighbours, centers.shape[0])
    indices, squared = knn(points, centers, k, squared=True)
    inverse = 1.0 / (squared + 1e-8)
    return indices, inverse / inverse.sum(dim=1, keepdim=True)


def gaussian_blur(maps: torch.Tensor, sigma: float) -> torch.Tensor:
    """Separable Gaussian blur of (N, H, W) maps in float, replicate padding, radius 4 sigma.

    The reference blurs an 8-bit copy with PIL; here it stays float (docs/method.md §7, §11).
    """
    if sigma <= 0:
        return maps
    radius = max(1, int(4.0 * sigma + 0.5))
    offsets = torch.arange(-radius, radius + 1, dtype=maps.dtype, device=maps.device)
    kernel = torch.exp(-0.5 * (offsets / sigma) ** 2)
    kernel = kernel / kernel.sum()
    x = maps[:, None]
    x = F.conv2d(F.pad(x, (radius, radius, 0, 0), mode="replicate"), kernel.view(1, 1, 1, -1))
    x = F.conv2d(F.pad(x, (0, 0, radius, radius), mode="replicate"), kernel.view(1, 1, -1, 1))
    return x[:, 0]


def points_to_map(
    group_scores: torch.Tensor,
    indices: torch.Tensor,
    weights: torch.Tensor,
    pixel_index: torch.Tensor,
    size: tuple[int, int],
) -> tuple[torch.Tensor, torch.Tensor]:
    """Scatter interpolated group scores to the pixels of the foreground points.

    Args:
        group_scores: (G,) scores of the groups.
        indices: (P, k) nearest groups of every point (from :func:`interpolation_weights`).
        weights: (P, k) their weights.
        pixel_index: (P,) row-major pixel index of every point on a grid of ``size``.
        size: (H, W) of the pixel grid.

    Returns:
        (map (H, W) with 0 on the background, point_scores (P,)).
    """
    point_scores = (group_scores[indices] * weights).sum(dim=1)
    flat = torch.zeros(size[0] * size[1], dtype=point_scores.dtype, device=point_scores.device)
    flat[pixel_index] = point_scores
    return flat.view(size), point_scores
