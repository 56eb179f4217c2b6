"""Point searches of the 3D branch: farthest point sampling and exact k nearest neighbours.

docs/method.md §4. Each search has a device path (torch kernels, the same code on CUDA and the
CPU) and a CPU path, chosen by the device of the input, that returns *identical* indices:

- FPS is a loop of one step per centre. On the CPU the step's few whole-cloud kernels cost more
  in dispatch than in arithmetic, so the CPU runs the very same float32 operations in numpy
  (IEEE ops without contraction, first maximum on ties): 3x faster at 8k points.
- KNN on the CPU takes candidates from a KD-tree (scipy, float64, O(log P) a neighbour instead of
  a scan of the cloud) and ranks them with the device path's float32 keys. A row whose candidates
  provably contain the k smallest keys is exact; any other row (near-ties across the whole
  margin, e.g. on a perfect grid) is recomputed by brute force.

Every distance is an exact float32 coordinate difference, squared and summed in one fixed order
(:func:`sq_dist`), and every "k smallest" breaks ties by the lower position (:func:`keys`), so
results do not depend on device, chunking or path.
"""

from __future__ import annotations

import numpy as np
import torch
from scipy.spatial import cKDTree
from torch import Tensor

from engine.errors import InvalidInputError

# Elements of one pairwise-distance block. With the float32 temporaries and the int64 sort keys
# (about 28 bytes an element) a block stays near 64 MB, whatever the cloud size.
BLOCK_ELEMS = 1 << 21
# Extra KD-tree candidates per row beyond k (at most; k + 4 for small k, where a wide margin
# would cost more than the rare brute-force row): the k-th key must lie strictly inside them.
KNN_MARGIN = 16


def knn_margin(k: int) -> int:
    """KD-tree candidates beyond ``k`` (3 nearest centres: 4, a 256-point search space: 16)."""
    return min(KNN_MARGIN, max(4, k))


# Bound on the relative error of a float32 squared distance against the exact one (a few ulps of
# 2^-24 from three differences, three products and two sums), with a wide safety factor.
_F32_SQ_DIST_RTOL = 1e-5


def check_points(points: object, name: str = "points") -> Tensor:
    """``points`` as a float32 (P, 3) tensor with P >= 1; raises InvalidInputError otherwise."""
    if not isinstance(points, Tensor) or points.ndim != 2 or points.shape[1] != 3:
        found = f"shape {tuple(points.shape)}" if isinstance(points, Tensor) else type(points)
        raise InvalidInputError(f"{name} must be a (P, 3) tensor, found {found}")
    if not points.is_floating_point():
        raise InvalidInputError(f"{name} must be floating point, found dtype {points.dtype}")
    if points.shape[0] < 1:
        raise InvalidInputError(f"{name} must hold at least one point, found 0")
    return points.to(torch.float32)  # the working precision of the whole 3D branch


def sq_dist(a: Tensor, b: Tensor) -> Tensor:
    """Squared distances (..., n, m) between a (..., n, 3) and b (..., m, 3).

    Each step is its own elementwise kernel, so every entry is the same IEEE result whatever the
    shape, chunking or device (no FMA contraction, no matmul blocking).
    """
    d = None
    for ac, bc in zip(a.unbind(-1), b.unbind(-1), strict=True):
        t = ac.unsqueeze(-1) - bc.contiguous().unsqueeze(-2)
        t.mul_(t)  # in place: a fresh block per product costs page faults on the CPU
        d = t if d is None else d.add_(t)
    return d


def keys(values: Tensor, positions: Tensor | int = 0) -> Tensor:
    """Unique int64 keys (value bits, position) of non-negative float32 values.

    ``positions`` is a tensor of positions broadcast against ``values``, or an offset added to
    the last dimension's index. Non-negative IEEE floats order like their bit patterns, so keys
    order by value, then position.
    """
    packed = values.view(torch.int32).to(torch.int64).bitwise_left_shift_(32)
    if isinstance(positions, int):
        positions = torch.arange(positions, positions + values.shape[-1], device=values.device)
    return packed.bitwise_or_(positions)


def smallest_keys(packed: Tensor, k: int) -> Tensor:
    """The k smallest keys of each row, ascending (unique keys: one answer on every kernel)."""
    return torch.topk(packed, k, dim=-1, largest=False, sorted=True).values


def unpack(packed: Tensor) -> tuple[Tensor, Tensor]:
    """(float32 values, int64 positions) of keys made by :func:`keys`."""
    values = packed.bitwise_right_shift(32).to(torch.int32).view(torch.float32)
    return values, packed.bitwise_and(0xFFFFFFFF)


# --- farthest point sampling --------------------------------------------------------------------


def farthest_point_sample(points: Tensor, num_samples: int) -> Tensor:
    """Standard farthest point sampling, starting at index 0 (docs/method.md §4).

    Each step picks the point with the largest squared distance to the selected set; ties go to
    the lowest index. Unlike the reference kernel, points near the centroid are not excluded.

    Args:
        points: (P, 3) points.
        num_samples: Number of centres wanted, >= 1.

    Returns:
        (min(P, num_samples),) int64 distinct indices in selection order. A cloud smaller than
        ``num_samples`` yields all its points, so the caller gets fewer groups (no crash).
    """
    xyz = check_points(points)
    if num_samples < 1:
        raise InvalidInputError(f"num_samples must be >= 1, found {num_samples}")
    count = min(num_samples, xyz.shape[0])
    if xyz.device.type == "cpu":
        return torch.from_numpy(fps_numpy(xyz.numpy(), count))
    return fps_torch(xyz, count)


def fps_torch(xyz: Tensor, count: int) -> Tensor:
    """FPS on the device of ``xyz`` (float32 (P, 3)), without a host sync per step."""
    out = torch.zeros(count, dtype=torch.int64, device=xyz.device)
    min_d = torch.full((xyz.shape[0],), float("inf"), device=xyz.device)
    # (3, P) coordinates and preallocated buffers, with the same IEEE operations in the same
    # order as sq_dist: ((dx*dx + dy*dy) + dz*dz)
    columns = xyz.T.contiguous()
    diff, d = torch.empty_like(columns), torch.empty_like(min_d)
    last = out[:1]
    for i in range(1, count):
        torch.sub(columns, columns.index_select(1, last), out=diff)
        diff.mul_(diff)
        torch.add(diff[0], diff[1], out=d).add_(diff[2])
        torch.minimum(min_d, d, out=min_d)
        # Selected points are never picked twice, even when all that is left coincides with them.
        min_d.index_fill_(0, last, -1.0)
        last = torch.argmax(min_d).reshape(1)  # first maximum = lowest index
        out[i : i + 1] = last
    return out


def fps_numpy(xyz: np.ndarray, count: int) -> np.ndarray:
    """:func:`fps_torch` step for step in numpy (float32 (P, 3)): the same indices."""
    columns = np.ascontiguousarray(xyz.T, dtype=np.float32)
    out = np.zeros(count, dtype=np.int64)
    min_d = np.full(columns.shape[1], np.inf, dtype=np.float32)
    diff, d = np.empty_like(columns), np.empty_like(min_d)
    # the loop runs ~10 us a step, most of it call overhead: ufuncs bound once, argmax as a method
    subtract, multiply, add, minimum = np.subtract, np.multiply, np.add, np.minimum
    last = 0
    for i in range(1, count):
        subtract(columns, columns[:, last, None], out=diff)
        multiply(diff, diff, out=diff)
        add(add(diff[0], diff[1], out=d), diff[2], out=d)
        minimum(min_d, d, out=min_d)
        min_d[last] = -1.0
        last = int(min_d.argmax())  # first maximum = lowest index, as torch.argmax
        out[i] = last
    return out


# --- k nearest neighbours -----------------------------------------------------------------------


def knn(
    query: Tensor, points: Tensor, k: int, chunk: int | None = None, *, squared: bool = False
) -> tuple[Tensor, Tensor]:
    """Exact k nearest neighbours of each query point.

    Args:
        query: (Q, 3) query points.
        points: (P, 3) searched points; a query that is one of them finds itself first.
        k: Neighbours per query, 1 <= k <= P.
        chunk: Queries per brute-force chunk; default keeps a chunk near 64 MB. Results do not
            depend on it.
        squared: Return the squared distances (exactly those the neighbours were ranked by).

    Returns:
        ``(indices (Q, k) int64, distances (Q, k) float32)``, ascending distance, equal distances
        by lower index.
    """
    q_xyz = check_points(query, "query")
    xyz = check_points(points)
    num = xyz.shape[0]
    if not 1 <= k <= num:
        raise InvalidInputError(f"k must be in [1, {num}] (the number of points), found {k}")
    if chunk is not None and chunk < 1:
        raise InvalidInputError(f"chunk must be >= 1, found {chunk}")
    if xyz.device.type == "cpu" and k + knn_margin(k) < num:
        found = knn_tree_keys(q_xyz, xyz, k, chunk)
    else:
        found = knn_brute_keys(q_xyz, xyz, k, chunk)
    d2, idx = unpack(found)
    return idx, d2 if squared else d2.sqrt()


def knn_brute_keys(query: Tensor, points: Tensor, k: int, chunk: int | None = None) -> Tensor:
    """(Q, k) smallest keys of every query against every point, in chunks of queries."""
    rows = chunk or max(1, BLOCK_ELEMS // points.shape[0])
    return torch.cat([smallest_keys(keys(sq_dist(q, points)), k) for q in query.split(rows)])


def knn_tree_keys(query: Tensor, points: Tensor, k: int, chunk: int | None = None) -> Tensor:
    """:func:`knn_brute_keys` from KD-tree candidates (CPU tensors): the same keys.

    The tree returns each query's ``k + knn_margin(k)`` nearest points in float64; every other point
    is at least as far as the last of them. A row is exact when its k-th float32 key lies below
    that distance by more than float32's rounding; the others are searched by brute force.
    """
    wanted = min(points.shape[0], k + knn_margin(k))
    coords = points.numpy().astype(np.float64)
    if not np.isfinite(coords).all() or not torch.isfinite(query).all():
        return knn_brute_keys(query, points, k, chunk)  # a KD-tree cannot order NaN
    tree = cKDTree(coords)
    farthest, candidates = tree.query(query.numpy().astype(np.float64), k=wanted, workers=-1)
    candidates = torch.from_numpy(candidates.reshape(len(query), wanted))
    d2 = sq_dist(query.unsqueeze(1), points[candidates]).squeeze(1)  # (Q, wanted), as brute
    found = smallest_keys(keys(d2, candidates), k)
    bound = torch.from_numpy(np.square(farthest.reshape(len(query), wanted)[:, -1]))
    kth, _ = unpack(found[:, -1])
    unproven = torch.nonzero(kth.double() >= bound * (1.0 - _F32_SQ_DIST_RTOL)).squeeze(1)
    if unproven.numel():
        found[unproven] = knn_brute_keys(query[unproven], points, k, chunk)
    return found
