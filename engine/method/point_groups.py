"""Point-cloud grouping for the 3D branch: unit-ball normalisation, FPS, KNN, curvature and IPG.

docs/method.md §2, §4. Every function runs on the device of its inputs (FPS and KNN live in
:mod:`engine.method.point_search`, with a faster CPU path of identical results). Results are
deterministic and independent of chunk sizes: distances are exact coordinate differences in
float32 (a matmul expansion rounds differently with the blocking), and every "k smallest"
selection breaks ties by the lower position (:func:`engine.method.point_search.keys`).

Differences to the reference (docs/method.md §11): FPS is standard (the reference kernel never
picks a point with ``||p||^2 <= 1e-3``); KNN is exact in float32 (sklearn: float64, so equal up to
near-ties); curvature uses a float32 covariance, ``eigvalsh`` and the paper's ε (reference: fp16,
``eig``, no ε); IPG follows the paper by default (docs/method.md §4). Groups list the initial
members first, then additions in the order chosen, so ``groups[:, 0] == search_idx[:, 0]`` (the
centre); the reference prepends additions, which the permutation-invariant encoder ignores.
"""

from __future__ import annotations

from dataclasses import dataclass, fields

import torch
from torch import Tensor

from engine.errors import InvalidInputError
from engine.method.point_search import (  # FPS and KNN are re-exported: the grouping's API
    BLOCK_ELEMS,
    check_points,
    farthest_point_sample,
    keys,
    knn,
    smallest_keys,
    sq_dist,
    unpack,
)

__all__ = [
    "GroupingBasis",
    "PointGroups",
    "curvature",
    "farthest_point_sample",
    "ipg_groups",
    "knn",
    "normalize_unit_ball",
    "prepare_groups",
    "regroup",
]

# The paper's ε: negligible next to a unit-scaled group's trace (~0.1); degenerate groups get 0.
_CURVATURE_EPS = 1e-8
_VARIANTS = ("paper", "reference")


@dataclass(frozen=True)
class GroupingBasis:
    """What IPG needs and does not depend on ``k_iter``/``c_thr`` (computed once per cloud).

    Attributes:
        center_idx: (G,) int64 FPS indices into the points.
        centers: (G, 3) float32 centre coordinates.
        search_idx: (G, S) int64 the S nearest points of each centre, ascending, centre first.
        curvatures: (G,) float32 curvature of each centre's ``group_size``-NN.
        group_size: Points per group, possibly clipped to the cloud size.
    """

    center_idx: Tensor
    centers: Tensor
    search_idx: Tensor
    curvatures: Tensor
    group_size: int


@dataclass(frozen=True)
class PointGroups(GroupingBasis):
    """Groups of one cloud: :class:`GroupingBasis` plus ``groups`` (G, group_size) int64."""

    groups: Tensor


def _check_index(idx: object, name: str, num_points: int, ndim: int) -> Tensor:
    if not isinstance(idx, Tensor) or idx.ndim != ndim or idx.dtype != torch.int64:
        found = f"{idx.dtype} {tuple(idx.shape)}" if isinstance(idx, Tensor) else type(idx)
        raise InvalidInputError(f"{name} must be an int64 tensor with {ndim} dims, found {found}")
    if idx.numel() and bool((idx.min() < 0) | (idx.max() >= num_points)):
        raise InvalidInputError(f"{name} must index into {num_points} points, found out of range")
    return idx


def normalize_unit_ball(points: Tensor) -> tuple[Tensor, Tensor, Tensor]:
    """Centre a cloud at its mean and scale it into the unit ball (docs/method.md §2).

    Args:
        points: (P, 3) foreground points (no background zeros), P >= 1.

    Returns:
        ``(normalised, centroid (3,), scale ())`` with ``normalised = (points - centroid) / scale``
        and ``scale`` the largest norm of the centred points. A cloud of identical points gets
        ``scale = 1`` instead of a division by zero.
    """
    xyz = check_points(points)
    centroid = xyz.mean(dim=0)
    centred = xyz - centroid
    scale = torch.linalg.vector_norm(centred, dim=1).amax()
    scale = torch.where(scale > 0, scale, torch.ones_like(scale))
    return centred / scale, centroid, scale


def curvature(points: Tensor, neighbour_idx: Tensor) -> Tensor:
    """Surface variation ``λ_min / (λ1 + λ2 + λ3 + ε)`` of each group (docs/method.md §4).

    Column 0 of ``neighbour_idx`` is the centre; the other columns (self excluded, as the
    reference) are taken relative to it, scaled into the unit ball, and their float32 covariance
    is decomposed with ``eigvalsh``. ε (paper; the reference has none) makes degenerate groups 0.

    Args:
        points: (P, 3) points.
        neighbour_idx: (G, K) int64, centre first, e.g. ``search_idx[:, :group_size]``.

    Returns:
        (G,) float32 curvatures in [0, 1/3]; 0 for K < 2 (a group without neighbours is flat).
    """
    xyz = check_points(points)
    idx = _check_index(neighbour_idx, "neighbour_idx", xyz.shape[0], ndim=2)
    if idx.shape[1] < 2:
        return torch.zeros(idx.shape[0], device=xyz.device)
    groups = xyz[idx]
    rel = groups[:, 1:] - groups[:, :1]
    scale = torch.linalg.vector_norm(rel, dim=-1).amax(dim=1)
    rel = rel / torch.where(scale > 0, scale, torch.ones_like(scale))[:, None, None]
    dev = rel - rel.mean(dim=1, keepdim=True)
    # 1/n instead of the reference's 1/(K-2): the ratio does not depend on the scale.
    cov = (dev.unsqueeze(-1) * dev.unsqueeze(-2)).mean(dim=1)
    eig = torch.linalg.eigvalsh(cov)  # ascending
    return eig[:, 0].clamp_min(0) / (eig.sum(dim=-1) + _CURVATURE_EPS)


def _gather_xyz(search_xyz: Tensor, cols: Tensor) -> Tensor:
    return search_xyz.gather(1, cols.unsqueeze(-1).expand(-1, -1, 3))


def _member_blocks(num_groups: int, search: int, members: int) -> list[tuple[int, int]]:
    step = max(1, BLOCK_ELEMS // max(1, num_groups * search))
    return [(j, min(members, j + step)) for j in range(0, members, step)]


def _min_sq_dist(search_xyz: Tensor, cols: Tensor) -> Tensor:
    """(H, S) squared distance of every search point to its nearest point among ``cols``."""
    h, s, _ = search_xyz.shape
    best = None
    for j0, j1 in _member_blocks(h, s, cols.shape[1]):
        d = sq_dist(_gather_xyz(search_xyz, cols[:, j0:j1]), search_xyz).amin(dim=1)
        best = d if best is None else torch.minimum(best, d)
    return best


def _expand(search_xyz: Tensor, group_size: int, k_iter: int, variant: str) -> Tensor:
    """Grow all groups from ``k_iter`` to ``group_size`` members; returns search-space columns.

    Each step adds ``min(k_iter, group_size - filled)`` non-members (there are enough, as S >=
    group_size); "paper" ties go to the column nearer the centre.
    """
    h, s, _ = search_xyz.shape
    dev = search_xyz.device
    cols = torch.empty((h, group_size), dtype=torch.int64, device=dev)
    cols[:, :k_iter] = torch.arange(k_iter, device=dev)
    member = torch.zeros((h, s), dtype=torch.bool, device=dev)
    member[:, :k_iter] = True
    min_d = _min_sq_dist(search_xyz, cols[:, :k_iter]) if variant == "paper" else None
    filled = k_iter
    while filled < group_size:
        take = min(k_iter, group_size - filled)
        if variant == "paper":
            new = unpack(smallest_keys(keys(min_d.masked_fill(member, float("inf"))), take))[1]
        else:
            # Top-k per member block, then of the block winners: exact, as the keys are unique.
            best = []
            for j0, j1 in _member_blocks(h, s, filled):
                d = sq_dist(_gather_xyz(search_xyz, cols[:, j0:j1]), search_xyz)
                d = d.masked_fill_(member.unsqueeze(1), float("inf")).flatten(1)
                best.append(smallest_keys(keys(d, j0 * s), min(take, d.shape[1])))
            new = unpack(smallest_keys(torch.cat(best, dim=1), take))[1] % s
        cols[:, filled : filled + take] = new
        member.scatter_(1, new, True)
        filled += take
        if variant == "paper" and filled < group_size:
            min_d = torch.minimum(min_d, _min_sq_dist(search_xyz, new))
    return cols


def ipg_groups(
    points: Tensor,
    center_idx: Tensor,
    search_idx: Tensor,
    curvatures: Tensor,
    *,
    group_size: int = 128,
    k_iter: int = 80,
    c_thr: float = 0.01,
    variant: str = "paper",
) -> Tensor:
    """Iterative point grouping (IPG, docs/method.md §4), vectorised over all groups.

    Curvature < ``c_thr``: the plain ``group_size``-NN. Otherwise the ``k_iter``-NN (centre
    included) grows by up to ``k_iter`` points a step from the rest of the search space, until
    ``group_size``: "paper" adds the candidates nearest to the group (smallest min-distance, no
    duplicates); "reference" those of the smallest pairwise distances (duplicates possible, as
    the reference code). The defaults make one step of 48.

    Args:
        points: (P, 3) points.
        center_idx: (G,) int64 centre indices (checked against ``search_idx`` shapes).
        search_idx: (G, S) int64, S >= group_size distinct nearest points of each centre,
            ascending distance, centre first (as :func:`knn` returns).
        curvatures: (G,) curvature of each centre.
        group_size: Points per group, K_P.
        k_iter: Points of the initial group and of each step, in [1, group_size].
        c_thr: Curvature threshold, >= 0; ``inf`` gives plain KNN groups.
        variant: "paper" or "reference".

    Returns:
        (G, group_size) int64 indices into ``points``.
    """
    xyz = check_points(points)
    center_idx = _check_index(center_idx, "center_idx", xyz.shape[0], ndim=1)
    search_idx = _check_index(search_idx, "search_idx", xyz.shape[0], ndim=2)
    g, s = search_idx.shape
    if center_idx.shape[0] != g or tuple(curvatures.shape) != (g,):
        found = f"{tuple(center_idx.shape)} and {tuple(curvatures.shape)}"
        raise InvalidInputError(
            f"center_idx, curvatures must be ({g},) like search_idx, found {found}"
        )
    if not 1 <= group_size <= s:
        raise InvalidInputError(f"group_size must be in [1, {s}] (search size), found {group_size}")
    if not 1 <= k_iter <= group_size:
        raise InvalidInputError(f"k_iter must be in [1, group_size={group_size}], found {k_iter}")
    if not c_thr >= 0:  # also rejects NaN
        raise InvalidInputError(f"c_thr must be >= 0, found {c_thr}")
    if variant not in _VARIANTS:
        raise InvalidInputError(f"variant must be one of {_VARIANTS}, found {variant!r}")
    groups = search_idx[:, :group_size].clone()
    # One host sync: the number of high-curvature groups sizes the batch.
    high = torch.nonzero(curvatures.to(xyz.device) >= c_thr).squeeze(1)
    if high.numel() == 0 or k_iter == group_size:
        return groups
    search_high = search_idx.index_select(0, high)
    cols = _expand(xyz[search_high], group_size, k_iter, variant)
    groups[high] = search_high.gather(1, cols)
    return groups


def prepare_groups(points: Tensor, num_groups: int = 1024, group_size: int = 128) -> GroupingBasis:
    """FPS, KNN and curvature: the part of grouping that ``k_iter``/``c_thr`` do not change.

    A cloud smaller than requested is clipped, not refused: ``min(P, num_groups)`` centres,
    groups of ``min(P, group_size)`` points and a search space of ``min(P, 2 * group_size)``.

    Args:
        points: (P, 3) points, normally normalised to the unit ball.
        num_groups: Centres wanted (G).
        group_size: Points per group (K_P); the search space is its double (docs/method.md §4).

    Returns:
        The :class:`GroupingBasis` for :func:`regroup`.
    """
    xyz = check_points(points)
    if group_size < 1:
        raise InvalidInputError(f"group_size must be >= 1, found {group_size}")
    num = xyz.shape[0]
    center_idx = farthest_point_sample(xyz, num_groups)
    centers = xyz.index_select(0, center_idx)
    search_idx, _ = knn(centers, xyz, min(num, 2 * group_size))
    size = min(num, group_size)
    curv = curvature(xyz, search_idx[:, :size])
    return GroupingBasis(center_idx, centers, search_idx, curv, size)


def regroup(
    basis: GroupingBasis,
    points: Tensor,
    k_iter: int = 80,
    c_thr: float = 0.01,
    variant: str = "paper",
) -> PointGroups:
    """IPG groups from a precomputed basis of the same ``points`` (docs/method.md §10: a new
    ``k_iter``/``c_thr`` redoes only this step). ``k_iter`` above the group size is clipped to it.
    """
    if k_iter < 1:
        raise InvalidInputError(f"k_iter must be >= 1, found {k_iter}")
    size = basis.group_size
    args = (points, basis.center_idx, basis.search_idx, basis.curvatures)
    groups = ipg_groups(
        *args, group_size=size, k_iter=min(k_iter, size), c_thr=c_thr, variant=variant
    )
    same = {f.name: getattr(basis, f.name) for f in fields(GroupingBasis)}  # basis may be groups
    return PointGroups(**same, groups=groups)
