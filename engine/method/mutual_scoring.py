"""Mutual scoring (MSM): every patch of every sample is scored against all other samples.

For query sample i, patch m and reference sample j the patch-to-sample distance is
``a[i, m, j] = min_n ||F_i(m) - F_j(n)||`` (docs/method.md §5). The interval average keeps the
lowest X% of the N-1 values per patch.

Speed: the distance of a pair of patches serves both directions, so each unordered pair of
samples is computed once. Samples are processed in square tiles: one GEMM of (T*L, C) x (C, T*L)
per tile pair, then a max over rows gives the queries of tile I against the references of tile J,
and a max over columns gives the reverse. Tiles are sized from a memory budget, which bounds peak
memory independently of N; the distance table itself is O(N^2 * L).
"""

from __future__ import annotations

import math
from collections.abc import Generator

import torch

from engine.progress import Progress


def tile_size(num_patches: int, chunk_mib: int, num_samples: int) -> int:
    """Samples per tile so that one (T*L) x (T*L) float32 similarity block fits ``chunk_mib``."""
    budget_floats = chunk_mib * 2**20 / 4
    tile = int(math.sqrt(budget_floats) // max(1, num_patches))
    return max(1, min(num_samples, tile))


def patch_to_sample_distances(
    features: torch.Tensor,
    chunk_mib: int = 64,
    stage: str = "mutual scoring",
    *,
    unit_norm: bool = True,
) -> Generator[Progress, None, torch.Tensor]:
    """Distances from every patch to every other sample.

    Args:
        features: (N, L, C) features of one layer.
        chunk_mib: Memory budget of one similarity block.
        stage: Name used in the progress events.
        unit_norm: The features are L2-normalised (2D), so ``||x-y||^2 = 2 - 2 x.y`` and the
            nearest patch is the most similar one; otherwise (3D, docs/method.md §4) the norms
            are used.

    Yields:
        Progress after each tile pair (a cancellation point).

    Returns:
        (N, L, N) distances; the diagonal entries [i, :, i] are 0 and must be ignored.
    """
    n, num_patches, _ = features.shape
    tile = tile_size(num_patches, chunk_mib, n)
    starts = list(range(0, n, tile))
    pairs = [(a, b) for ai, a in enumerate(starts) for b in starts[ai:]]
    squared = (features * features).sum(-1)  # (N, L)
    nearest = torch.zeros((n, num_patches, n), dtype=features.dtype, device=features.device)
    for done, (a, b) in enumerate(pairs, start=1):
        qa, qb = features[a : a + tile], features[b : b + tile]
        ta, tb = qa.shape[0], qb.shape[0]
        sims = qa.reshape(-1, qa.shape[-1]) @ qb.reshape(-1, qb.shape[-1]).T
        if unit_norm:
            # max similarity = min distance; 2 - 2 s is applied once at the end
            rows = sims.view(ta * num_patches, tb, num_patches).amax(dim=2)
            cols = sims.view(ta, num_patches, tb * num_patches).amax(dim=1) if a != b else None
        else:
            # min_n ||y_n||^2 - 2 x.y_n, plus ||x||^2 afterwards (and the same for columns)
            sims.mul_(-2.0)
            rows = (sims + squared[b : b + tb].reshape(1, -1)).view(ta * num_patches, tb, -1)
            rows = rows.amin(dim=2) + squared[a : a + ta].reshape(-1, 1)
            cols = None
            if a != b:
                cols = (sims + squared[a : a + ta].reshape(-1, 1)).view(ta, num_patches, -1)
                cols = cols.amin(dim=1) + squared[b : b + tb].reshape(1, -1)
        nearest[a : a + ta, :, b : b + tb] = rows.view(ta, num_patches, tb)
        if cols is not None:
            nearest[b : b + tb, :, a : a + ta] = cols.view(ta, tb, num_patches).permute(1, 2, 0)
        yield Progress(stage, done, len(pairs))
    squared_distance = 2.0 - 2.0 * nearest if unit_norm else nearest
    return torch.sqrt(torch.clamp(squared_distance, min=0.0))


def drop_self(distances: torch.Tensor) -> torch.Tensor:
    """Remove the self-reference column: (N, L, N) -> (N, L, N-1)."""
    n = distances.shape[0]
    keep = ~torch.eye(n, dtype=torch.bool, device=distances.device)
    return distances.permute(0, 2, 1)[keep].view(n, n - 1, -1).permute(0, 2, 1)


def sorted_cumsum(distances: torch.Tensor) -> torch.Tensor:
    """Cumulative sums of the ascending reference distances, so any interval average is O(1).

    Args:
        distances: (N, L, R) patch-to-reference distances.

    Returns:
        (N, L, R) float32 where [..., k-1] is the sum of the k smallest values.
    """
    return torch.sort(distances, dim=-1).values.cumsum(dim=-1)


def interval_count(x_percent: float, num_references: int) -> int:
    """Number of lowest reference scores kept: ``max(1, floor(X * R))`` (docs/method.md §5)."""
    return max(1, math.floor(x_percent / 100.0 * num_references + 1e-9))


def interval_average(cumsum: torch.Tensor, x_percent: float) -> torch.Tensor:
    """Mean of the lowest X% of the reference distances per patch.

    Args:
        cumsum: (..., R) output of :func:`sorted_cumsum` (may be summed over layers).
        x_percent: Share of the references kept, in (0, 100].

    Returns:
        (...) interval averages.
    """
    k = interval_count(x_percent, cumsum.shape[-1])
    return cumsum[..., k - 1] / k
