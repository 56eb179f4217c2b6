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


def tile_pairs(num_samples: int, tile: int) -> list[tuple[int, int]]:
    """Start indices (a, b), a <= b, of every unordered pair of tiles: the unit of work."""
    starts = list(range(0, num_samples, tile))
    return [(a, b) for ai, a in enumerate(starts) for b in starts[ai:]]


def block_nearest(
    block_a: torch.Tensor, block_b: torch.Tensor, *, same: bool, unit_norm: bool
) -> tuple[torch.Tensor, torch.Tensor | None]:
    """Nearest-patch values of one tile pair, both directions from one GEMM.

    Args:
        block_a: (Ta, L, C) features of tile I.
        block_b: (Tb, L, C) features of tile J.
        same: I and J are the same tile, so the reverse direction is not needed.
        unit_norm: As in :func:`patch_to_sample_distances`.

    Returns:
        (Ta, L, Tb) values of I's patches against J's samples, and (Tb, L, Ta) the reverse
        (None when ``same``). With ``unit_norm`` they are maximal similarities, otherwise
        squared distances; :func:`finish_distances` turns them into distances.
    """
    ta, num_patches, channels = block_a.shape
    tb = block_b.shape[0]
    sims = block_a.reshape(-1, channels) @ block_b.reshape(-1, channels).T
    if unit_norm:
        # max similarity = min distance; 2 - 2 s is applied once at the end
        rows = sims.view(ta * num_patches, tb, num_patches).amax(dim=2)
        cols = None if same else sims.view(ta, num_patches, tb * num_patches).amax(dim=1)
    else:
        # min_n ||y_n||^2 - 2 x.y_n, plus ||x||^2 afterwards (and the same for columns)
        squared_a = (block_a * block_a).sum(-1)
        squared_b = (block_b * block_b).sum(-1)
        sims.mul_(-2.0)
        rows = (sims + squared_b.reshape(1, -1)).view(ta * num_patches, tb, -1)
        rows = rows.amin(dim=2) + squared_a.reshape(-1, 1)
        cols = None
        if not same:
            cols = (sims + squared_a.reshape(-1, 1)).view(ta, num_patches, -1)
            cols = cols.amin(dim=1) + squared_b.reshape(1, -1)
    rows = rows.view(ta, num_patches, tb)
    if cols is not None:
        cols = cols.view(ta, tb, num_patches).permute(1, 2, 0)
    return rows, cols


def place_block(
    nearest: torch.Tensor,
    a: int,
    b: int,
    rows: torch.Tensor,
    cols: torch.Tensor | None,
) -> None:
    """Write one tile pair's values into the (N, L, N) table (every entry has one writer)."""
    nearest[a : a + rows.shape[0], :, b : b + rows.shape[2]] = rows
    if cols is not None:
        nearest[b : b + cols.shape[0], :, a : a + cols.shape[2]] = cols


def finish_distances(nearest: torch.Tensor, unit_norm: bool) -> torch.Tensor:
    """Distances from the merged table of :func:`block_nearest` values."""
    squared_distance = 2.0 - 2.0 * nearest if unit_norm else nearest
    return torch.sqrt(torch.clamp(squared_distance, min=0.0))


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
    pairs = tile_pairs(n, tile)
    nearest = torch.zeros((n, num_patches, n), dtype=features.dtype, device=features.device)
    for done, (a, b) in enumerate(pairs, start=1):
        rows, cols = block_nearest(
            features[a : a + tile], features[b : b + tile], same=a == b, unit_norm=unit_norm
        )
        place_block(nearest, a, b, rows, cols)
        yield Progress(stage, done, len(pairs))
    return finish_distances(nearest, unit_norm)


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
