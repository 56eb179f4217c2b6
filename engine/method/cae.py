"""Cross-modal Anomaly Enhancement (CAE), docs/method.md §6.

For one query sample, the 2D patch-to-reference distances A (L, R) and the 3D group-to-reference
distances B (G, R) enhance each other through the organized pixel grid: every 3D group centre
lies in exactly one 2D patch ``pi(n)``. Values move between modalities by *rank transfer*
(histogram matching, :func:`rank_transfer`), so neither modality's scale leaks into the other.
"""

from __future__ import annotations

import torch


def rank_transfer(source: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """Tensor shaped like ``target`` whose p-th value is ``sort(source)[rank(target[p])]``.

    Keeps the ordering of ``target`` but takes the values from the distribution of ``source``
    (the reference's ``HM``). Both must hold the same number of elements; ties in ``target``
    are broken by a stable sort, so the result is deterministic.
    """
    if source.numel() != target.numel():
        sizes = f"{source.numel()} and {target.numel()}"
        raise ValueError(f"rank transfer needs equal sizes, got {sizes}")
    out = torch.empty(target.numel(), dtype=source.dtype, device=source.device)
    order = torch.sort(target.flatten(), stable=True).indices
    out[order] = torch.sort(source.flatten(), stable=True).values
    return out.view(target.shape)


def project_3d_to_2d(
    distances_3d: torch.Tensor, patch_of_group: torch.Tensor, num_patches: int
) -> tuple[torch.Tensor, torch.Tensor]:
    """Mean 3D distances of the groups whose centre falls in each 2D patch.

    Args:
        distances_3d: (G, R) group-to-reference distances B.
        patch_of_group: (G,) int64 patch index pi(n) of every group centre.
        num_patches: L.

    Returns:
        (A_P2I (L, R), has_groups (L,) bool); rows of patches without a group are 0.
    """
    sums = torch.zeros((num_patches, distances_3d.shape[1]), dtype=distances_3d.dtype,
                       device=distances_3d.device)  # fmt: skip
    sums.index_add_(0, patch_of_group, distances_3d)
    counts = torch.bincount(patch_of_group, minlength=num_patches).to(distances_3d.dtype)
    has_groups = counts > 0
    return sums / counts.clamp_min(1.0)[:, None], has_groups


def _confidence(own: torch.Tensor, other: torch.Tensor) -> torch.Tensor:
    """lambda = 1 - (std of own rows, re-ordered by the rank of the std of the projected rows)."""
    return 1.0 - rank_transfer(own.std(dim=1), other.std(dim=1))


def enhance(
    distances_2d: torch.Tensor, distances_3d: torch.Tensor, patch_of_group: torch.Tensor
) -> tuple[torch.Tensor, torch.Tensor]:
    """CAE of one query and one layer (reference behaviour, docs/method.md §6).

    Args:
        distances_2d: (L, R) patch-to-reference distances A.
        distances_3d: (G, R) group-to-reference distances B (same reference order).
        patch_of_group: (G,) int64 patch index of every group centre.

    Returns:
        (A', B'): the enhanced distances, same shapes; each is ½ (own + own values re-ranked
        by the enhanced term), so the values stay in their own modality's range.
    """
    a, b = distances_2d, distances_3d
    a_p2i, has_groups = project_3d_to_2d(b, patch_of_group, a.shape[0])
    b_i2p = a[patch_of_group]
    lambda_2d = _confidence(a, a_p2i)
    lambda_3d = _confidence(b, b_i2p)
    # 2D: rescale the projected 3D values into A's range, only where a projection exists
    a_tilde = torch.zeros_like(a)
    if has_groups.any():
        a_tilde[has_groups] = rank_transfer(a[has_groups], a_p2i[has_groups])
    b_tilde = rank_transfer(b, b_i2p)
    enhanced_2d = lambda_2d[:, None] * torch.maximum(a, a_tilde)
    enhanced_3d = lambda_3d[:, None] * torch.maximum(b, b_tilde)
    return 0.5 * (a + rank_transfer(a, enhanced_2d)), 0.5 * (b + rank_transfer(b, enhanced_3d))


def patch_of_pixel(
    pixel_index: torch.Tensor, pixel_grid: tuple[int, int], patch_grid: tuple[int, int]
) -> torch.Tensor:
    """2D patch index of pixels given as row-major indices on another grid of the same image."""
    rows, cols = pixel_index // pixel_grid[1], pixel_index % pixel_grid[1]
    patch_rows = rows * patch_grid[0] // pixel_grid[0]
    patch_cols = cols * patch_grid[1] // pixel_grid[1]
    return patch_rows * patch_grid[1] + patch_cols
