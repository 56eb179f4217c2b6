"""SNAMD: similarity-weighted pooling of patch tokens over several neighbourhood degrees.

docs/method.md §3 (2D): for every patch m and every degree r, the normalised weighted average
``sum_q w_q f_q / sum_q w_q`` over the centred r x r window, with ``w_q = exp(-||f_q - f_m||)``
computed on the *raw* tokens and zero padding at the border (padded positions contribute
``f = 0`` with weight ``exp(-||f_m||)``, as the reference's ``nn.Unfold`` does). The degrees are
compressed by a per-channel mean, then every token is L2-normalised.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F


def _check_degrees(r_list: tuple[int, ...]) -> None:
    if not r_list or any(r < 1 or r % 2 == 0 for r in r_list):
        raise ValueError(f"degrees r must be odd and >= 1, got {r_list}")


def sw_pool_2d(tokens: torch.Tensor, r_list: tuple[int, ...] = (1, 3, 5)) -> torch.Tensor:
    """Similarity-weighted pooling of a token grid for each degree r.

    Args:
        tokens: (N, H, W, C) raw patch tokens of one layer.
        r_list: Odd window sides.

    Returns:
        (len(r_list), N, H, W, C) pooled tokens; the r=1 entry equals ``tokens``.
    """
    _check_degrees(r_list)
    n, h, w, c = tokens.shape
    half = max(r_list) // 2
    x = tokens.permute(0, 3, 1, 2)  # (N, C, H, W): shifts are cheap slices of the padded map
    padded = F.pad(x, (half, half, half, half))
    numerators = {r: x.clone() for r in r_list if r > 1}
    denominators = {r: torch.ones((n, 1, h, w), dtype=x.dtype, device=x.device) for r in numerators}
    for dy in range(-half, half + 1):
        for dx in range(-half, half + 1):
            if dy == 0 and dx == 0:
                continue  # the centre has weight exp(0) = 1, already in the accumulators
            ring = max(abs(dy), abs(dx))
            degrees = [r for r in numerators if ring <= r // 2]
            if not degrees:
                continue
            shifted = padded[:, :, half + dy : half + dy + h, half + dx : half + dx + w]
            weight = torch.exp(-torch.linalg.vector_norm(shifted - x, dim=1, keepdim=True))
            weighted = weight * shifted
            for r in degrees:
                numerators[r] += weighted
                denominators[r] += weight
    pooled = [x if r == 1 else numerators[r] / denominators[r] for r in r_list]
    return torch.stack(pooled).permute(0, 1, 3, 4, 2)


def snamd_2d(tokens: torch.Tensor, r_list: tuple[int, ...] = (1, 3, 5)) -> torch.Tensor:
    """Aggregated, L2-normalised 2D features of one layer (mean over degrees, docs/method.md §3).

    Args:
        tokens: (N, H, W, C) raw patch tokens.
        r_list: Odd window sides.

    Returns:
        (N, H*W, C) unit-norm features in row-major patch order.
    """
    pooled = sw_pool_2d(tokens, r_list).mean(dim=0)
    features = pooled.reshape(tokens.shape[0], -1, tokens.shape[-1])
    return F.normalize(features, dim=-1)


def snamd_3d(
    tokens: torch.Tensor,
    centers: torch.Tensor,
    curvatures: torch.Tensor,
    c_thr: float,
    r_list: tuple[int, ...] = (1, 3, 5),
) -> torch.Tensor:
    """Aggregated 3D features of one sample and layer, as in the reference (docs/method.md §4).

    Degree r means the r nearest group centres, the group itself included. The pooled degrees
    are concatenated and compressed to C channels by ``adaptive_avg_pool1d`` (for three degrees
    that averages consecutive channel triplets), as the reference does so that published
    numbers stay comparable (docs/method.md §4). Groups with curvature >= ``c_thr`` keep their
    own token uncompressed (surface-consistent selection). Nothing is renormalised afterwards.

    Args:
        tokens: (G, C) group tokens; they are L2-normalised here first, as the caller in the
            reference does.
        centers: (G, 3) group centres.
        curvatures: (G,) curvature of each group.
        c_thr: Curvature threshold.
        r_list: Degrees (numbers of nearest groups).

    Returns:
        (G, C) features.
    """
    if not r_list or min(r_list) < 1:
        raise ValueError(f"degrees r must be >= 1, got {r_list}")
    unit = F.normalize(tokens, dim=-1)
    depth = min(max(r_list), unit.shape[0])
    neighbours = torch.cdist(centers, centers).topk(depth, dim=1, largest=False).indices
    gathered = unit[neighbours]  # (G, depth, C), position 0 is the group itself
    weights = torch.exp(-torch.linalg.vector_norm(gathered - unit[:, None], dim=-1))
    pooled = []
    for r in r_list:
        w = weights[:, : min(r, depth)]
        pooled.append((w[..., None] * gathered[:, : min(r, depth)]).sum(1) / w.sum(1, keepdim=True))
    compressed = F.adaptive_avg_pool1d(torch.cat(pooled, dim=-1)[:, None], unit.shape[-1])[:, 0]
    high_curvature = (curvatures >= c_thr)[:, None]
    return torch.where(high_curvature, unit, compressed)
