"""Mutual scoring (MSM): every patch of every sample is scored against all other samples.

For query sample i, patch m and reference sample j the patch-to-sample distance is
``a[i, m, j] = min_n ||F_i(m) - F_j(n)||`` (docs/method.md §5). The interval average keeps the
lowest X% of the N-1 values per patch.

Speed: the distance of a pair of patches serves both directions, so each unordered pair of
samples is computed once. Samples are processed in square tiles, sized from a memory budget
(the unit of work, also of a Ray cluster); within a tile pair the similarities are computed in
cache-sized blocks, each reduced at once both ways: a max over a block's columns gives the
queries of tile I against the references of tile J, a max over its rows the reverse. Peak memory
is bounded independently of N; the distance table itself is O(N^2 * L).
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


# One (references, rows, L) similarity block of ``block_nearest``: 16 MiB, small enough to be
# reduced while still in cache (this CPU's L3 holds it; the L2 does not)
BLOCK_FLOATS = 4 * 2**20


def block_nearest(
    block_a: torch.Tensor, block_b: torch.Tensor, *, same: bool, unit_norm: bool
) -> tuple[torch.Tensor, torch.Tensor | None]:
    """Nearest-patch values of one tile pair, both directions from the same similarities.

    Each part i of tile I is multiplied with the parts of tile J at once (a batched GEMM on a
    transposed view, no copy), a few of its rows at a time, and every block is reduced in both
    directions while it is still in cache. Memory traffic, not arithmetic, bounds this step at
    33-112 channels: it ran 2.2-6.2x faster there than one (T*L) x (T*L) GEMM per tile pair on
    a 2-core CPU, 1.1x at ViT's 768 (``bench/bench_mutual_scoring.py``). Within a tile
    (``same``) each unordered pair of parts is computed once.

    Args:
        block_a: (Ta, L, C) features of tile I.
        block_b: (Tb, L', C) features of tile J.
        same: I and J are the same tile, so the reverse direction is not needed.
        unit_norm: As in :func:`patch_to_sample_distances`.

    Returns:
        (Ta, L, Tb) values of I's patches against J's samples, and (Tb, L', Ta) the reverse
        (None when ``same``). With ``unit_norm`` they are maximal similarities, otherwise
        squared distances; :func:`finish_distances` turns them into distances. A part against
        itself gets the value of distance 0.
    """
    ta, num_patches, _ = block_a.shape
    tb, ref_patches, _ = block_b.shape
    rows = block_a.new_empty((ta, num_patches, tb))
    cols = None if same else block_b.new_empty((tb, ref_patches, ta))
    transposed = block_b.transpose(1, 2)  # (Tb, C, L') view
    squared_b = None if unit_norm else (block_b * block_b).sum(-1)[:, None, :]  # (Tb, 1, L')
    for i in range(ta):
        first = i + 1 if same else 0  # within a tile, part j < i was done as j's reverse
        if first >= tb:
            continue
        rows[i, :, first:], reverse = part_against(
            block_a[i], transposed[first:], None if unit_norm else squared_b[first:]
        )
        if same:
            rows[first:, :, i] = reverse
        else:
            cols[:, :, i] = reverse
    if same:
        diagonal = torch.arange(ta, device=block_a.device)
        rows[diagonal, :, diagonal] = 1.0 if unit_norm else 0.0
    return rows, cols


def part_against(
    part: torch.Tensor,
    transposed: torch.Tensor,
    squared_refs: torch.Tensor | None,
    *,
    reverse: bool = True,
    block_floats: int | None = None,
) -> tuple[torch.Tensor, torch.Tensor | None]:
    """One part's (L, M) nearest values against M parts, and the M parts' (M, L') reverse.

    The part's rows are taken a few at a time, so that one (M, rows, L') similarity block holds
    at most ``block_floats`` floats and is reduced while in cache. Also the kernel of a new part
    against a bank on a running line (:mod:`engine.stream.query`), which needs no reverse.

    Args:
        part: (L, C) features of the part.
        transposed: (M, C, L') features of the M parts, transposed (a view is fine).
        squared_refs: None for unit-norm features (values are maximal similarities), else the
            (M, 1, L') squared norms of the M parts (values are minimal squared distances).
        reverse: Also compute the M parts' values against this part (else None).
        block_floats: Size bound of one similarity block (default :data:`BLOCK_FLOATS`).
    """
    num_refs, _, ref_patches = transposed.shape
    budget = BLOCK_FLOATS if block_floats is None else block_floats
    step = max(1, min(part.shape[0], budget // max(1, num_refs * ref_patches)))
    out = part.new_empty((part.shape[0], num_refs))
    back = None
    squared_part = None if squared_refs is None else (part * part).sum(-1)
    for start in range(0, part.shape[0], step):
        chunk = part[start : start + step]
        if squared_refs is None:
            sims = torch.matmul(chunk, transposed)  # (M, rows, L')
            out[start : start + step] = sims.amax(dim=2).T
            if reverse:
                best = sims.amax(dim=1)
                back = best if back is None else torch.maximum(back, best)
            continue
        # ||y||^2 - 2 x.y in one call; ||x||^2 is added after the min over y (rounding is
        # monotone, so that is exact), or before it where the reverse needs full distances
        sims = torch.baddbmm(squared_refs, chunk.expand(num_refs, -1, -1), transposed, alpha=-2)
        squared_rows = squared_part[start : start + step]
        if not reverse:
            out[start : start + step] = (sims.amin(dim=2) + squared_rows).T
            continue
        sims.add_(squared_rows.view(1, -1, 1))
        out[start : start + step] = sims.amin(dim=2).T
        best = sims.amin(dim=1)
        back = best if back is None else torch.minimum(back, best)
    return out, back


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
