"""Tests of engine.method.point_groups: normalisation, FPS, KNN, curvature and IPG."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from engine.errors import InvalidInputError
from engine.method.point_groups import (
    curvature,
    farthest_point_sample,
    ipg_groups,
    knn,
    normalize_unit_ball,
    prepare_groups,
    regroup,
)
from tests.engine.method.clouds import sheet_and_blob

DEVICES = ["cpu"] + (["cuda"] if torch.cuda.is_available() else [])


def _sq_dist_np(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    # Same float32 arithmetic and order as the module, so distances are bit-identical.
    d = [a[:, None, c] - b[None, :, c] for c in range(3)]
    return d[0] * d[0] + d[1] * d[1] + d[2] * d[2]


# --- normalisation ------------------------------------------------------------------------------


def test_normalize_unit_ball_knownsheet_and_blob() -> None:
    pts = torch.tensor([[1.0, 2.0, 3.0], [3.0, 2.0, 3.0], [2.0, 4.0, 3.0], [2.0, 0.0, 3.0]])
    out, centroid, scale = normalize_unit_ball(pts)
    assert torch.equal(centroid, torch.tensor([2.0, 2.0, 3.0]))
    assert scale.item() == 2.0  # farthest points are (2, 4, 3) and (2, 0, 3)
    assert torch.allclose(out, (pts - centroid) / 2.0)
    assert torch.linalg.vector_norm(out, dim=1).max().item() == pytest.approx(1.0)


def test_normalize_unit_ball_degenerate_and_invalid() -> None:
    out, _, scale = normalize_unit_ball(torch.ones(3, 3))
    assert scale.item() == 1.0 and torch.equal(out, torch.zeros(3, 3))
    with pytest.raises(InvalidInputError, match="at least one point"):
        normalize_unit_ball(torch.empty(0, 3))
    with pytest.raises(InvalidInputError, match=r"\(P, 3\)"):
        normalize_unit_ball(torch.zeros(4, 2))


# --- FPS ----------------------------------------------------------------------------------------


def test_fps_points_on_a_line() -> None:
    pts = torch.tensor([[float(x), 0.0, 0.0] for x in range(5)])
    # 0 first; 4 is farthest; then 2 (distance 2); 1 and 3 tie at 1 -> lower index first.
    assert farthest_point_sample(pts, 5).tolist() == [0, 4, 2, 1, 3]
    assert farthest_point_sample(pts, 3).tolist() == [0, 4, 2]


def test_fps_matches_naive_and_is_deterministic() -> None:
    pts = sheet_and_blob(2000)
    got = farthest_point_sample(pts, 64)
    a = pts.numpy()
    min_d = np.full(len(a), np.inf, dtype=np.float32)
    want = [0]
    for _ in range(63):
        min_d = np.minimum(min_d, _sq_dist_np(a[want[-1] : want[-1] + 1], a)[0])
        want.append(int(np.argmax(min_d)))
    assert got.tolist() == want
    assert torch.equal(got, farthest_point_sample(pts.clone(), 64))


def test_fps_fewer_points_than_asked_and_duplicates() -> None:
    pts = torch.tensor([[0.0, 0, 0], [1.0, 0, 0], [1.0, 0, 0], [0.0, 0, 0]])
    got = farthest_point_sample(pts, 10)
    # All 4 points, each once, even though they only have 2 distinct positions.
    assert got.tolist() == [0, 1, 2, 3]
    with pytest.raises(InvalidInputError, match="num_samples"):
        farthest_point_sample(pts, 0)


# --- KNN ----------------------------------------------------------------------------------------


def test_knn_matches_brute_force_and_sklearn() -> None:
    from sklearn.neighbors import NearestNeighbors

    pts = sheet_and_blob(700, seed=1)
    idx, dist = knn(pts, pts, 32)
    d2 = _sq_dist_np(pts.numpy(), pts.numpy())
    cols = np.arange(len(pts))
    for row in range(len(pts)):
        order = np.lexsort((cols, d2[row]))[:32]  # by distance, then by index
        assert idx[row].tolist() == order.tolist()
        assert torch.equal(dist[row], torch.from_numpy(d2[row, order]).sqrt())
    assert torch.equal(idx[:, 0], torch.arange(len(pts)))  # self first
    assert torch.all(dist[:, 0] == 0) and torch.all(dist[:, 1:] >= dist[:, :-1])
    sk_dist, sk_idx = NearestNeighbors(n_neighbors=32).fit(pts.double()).kneighbors(pts.double())
    assert np.array_equal(idx.numpy(), sk_idx)  # no near-ties in this seeded cloud
    assert np.allclose(dist.numpy(), sk_dist, rtol=1e-5, atol=1e-6)


def test_knn_chunking_does_not_change_results() -> None:
    pts, query = sheet_and_blob(500, seed=2), sheet_and_blob(37, seed=3)
    ref = knn(query, pts, 20)
    for chunk in (1, 5, 100):
        got = knn(query, pts, 20, chunk=chunk)
        assert torch.equal(got[0], ref[0]) and torch.equal(got[1], ref[1])


def test_knn_ties_go_to_lower_index_and_bad_k() -> None:
    pts = torch.tensor([[1.0, 0, 0], [-1.0, 0, 0], [0.0, 1, 0], [0.0, -1, 0], [0.0, 0, 2]])
    idx, dist = knn(torch.zeros(1, 3), pts, 5)
    assert idx.tolist() == [[0, 1, 2, 3, 4]] and dist.tolist() == [[1, 1, 1, 1, 2]]
    with pytest.raises(InvalidInputError, match="k must be in"):
        knn(pts, pts, 6)


# --- curvature ----------------------------------------------------------------------------------


def test_curvature_hand_examples() -> None:
    h = 0.5
    # Centre at the origin with neighbours (±1,0,0), (0,±1,0), (0,0,±h): covariance
    # diag(2, 2, 2h²)/6, so curvature = h² / (2 + h²) = 1/9; h = 1 is isotropic: 1/3.
    octa = [[0, 0, 0], [1, 0, 0], [-1, 0, 0], [0, 1, 0], [0, -1, 0], [0, 0, h], [0, 0, -h]]
    pts = torch.tensor(octa, dtype=torch.float32)
    idx = torch.arange(7).unsqueeze(0)
    assert curvature(pts, idx).item() == pytest.approx(1 / 9, rel=1e-5)
    pts[5:, 2] = torch.tensor([1.0, -1.0])
    assert curvature(pts, idx).item() == pytest.approx(1 / 3, rel=1e-5)
    # Scale-invariant, and the centre (column 0) is not one of the neighbours.
    assert curvature(pts * 7, idx).item() == pytest.approx(1 / 3, rel=1e-5)
    pts[0] = torch.tensor([0.0, 0.0, 5.0])  # far off the centre: irrelevant to the covariance
    assert curvature(pts, idx).item() == pytest.approx(1 / 3, rel=1e-5)
    # Degenerate groups are 0, not NaN.
    assert curvature(torch.zeros(3, 3), torch.tensor([[0, 1, 2]])).item() == 0.0
    assert curvature(torch.zeros(3, 3), torch.tensor([[0]])).tolist() == [0.0]


def test_curvature_plane_is_flat_and_blob_is_not() -> None:
    g = torch.Generator().manual_seed(4)
    plane = torch.rand(300, 3, generator=g) @ torch.tensor([[1.0, 0.2, 0.3], [0.1, 1.0, -0.4]]).T
    plane = torch.cat([plane, torch.zeros(300, 1)], 1)
    plane = plane @ torch.linalg.qr(torch.randn(3, 3, generator=g))[0]  # tilted plane
    blob = torch.randn(300, 3, generator=g)
    for pts, low, high in ((plane, 0.0, 1e-5), (blob, 0.2, 1 / 3 + 1e-6)):
        idx, _ = knn(pts[:10], pts, 128)
        c = curvature(pts, idx)
        assert torch.all((c >= low) & (c <= high)), c


# --- IPG ----------------------------------------------------------------------------------------


def _two_planes() -> tuple[torch.Tensor, int]:
    """Two 40x40 grids, 1 mm pitch, 2 mm apart (metres), normalised; index of a central A point."""
    xs = torch.arange(40, dtype=torch.float32) * 1e-3
    gx, gy = torch.meshgrid(xs, xs, indexing="ij")
    a = torch.stack([gx.flatten(), gy.flatten(), torch.zeros(1600)], 1)
    b = a + torch.tensor([0.0, 0.0, 2e-3])
    return normalize_unit_ball(torch.cat([a, b]))[0], 20 * 40 + 20


def test_ipg_keeps_group_on_one_of_two_parallel_planes() -> None:
    pts, centre = _two_planes()
    center_idx = torch.tensor([centre])
    search_idx, _ = knn(pts[center_idx], pts, 256)
    curv = torch.ones(1)  # force IPG
    plain = search_idx[0, :128]
    assert (plain >= 1600).sum() > 30  # the plain 128-NN mixes both planes
    # k_iter = 8: the initial 8-NN (centre, 4 points at 1 mm, 4 at 1.41 mm) lies on plane A,
    # because plane B starts at 2 mm; the default k_iter = 80 would already include ~33 B points.
    # Each step then adds A points 1 mm from the group before any B point (>= 2 mm away).
    assert (search_idx[0] < 1600).sum() >= 128  # enough A points in the search space
    got = ipg_groups(pts, center_idx, search_idx, curv, k_iter=8)
    assert got.shape == (1, 128) and torch.all(got < 1600)
    assert len(set(got[0].tolist())) == 128
    assert got[0, 0].item() == centre
    mixed = ipg_groups(pts, center_idx, search_idx, curv, k_iter=80)
    assert (mixed >= 1600).any()


def test_reference_variant_adds_duplicates_on_hand_case() -> None:
    # Centre A=0, B at 0.1 on x; C equidistant (~0.304) from A and B; D at 0.35 from A only.
    pts = torch.tensor([[0.0, 0, 0], [0.1, 0, 0], [0.05, 0.3, 0], [-0.35, 0, 0]])
    search_idx, _ = knn(pts[:1], pts, 4)
    assert search_idx.tolist() == [[0, 1, 2, 3]]
    args = (pts, torch.tensor([0]), search_idx, torch.ones(1))
    # Reference: the 2 smallest pairwise distances are A-C and B-C -> C twice (docs/method.md §4).
    ref = ipg_groups(*args, group_size=4, k_iter=2, variant="reference")
    assert ref.tolist() == [[0, 1, 2, 2]]
    # Paper: min-distance to the group: C (0.304) then D (0.35), no duplicates.
    assert ipg_groups(*args, group_size=4, k_iter=2).tolist() == [[0, 1, 2, 3]]


def _paper_loop(pts: torch.Tensor, search: list[int], size: int, k_iter: int) -> list[int]:
    """The paper's rule, one group at a time, ties to the candidate nearer the centre."""
    a = pts.numpy()
    group = search[:k_iter]
    while len(group) < size:
        cands = [c for c in search if c not in group]
        d = _sq_dist_np(a[cands], a[group]).min(axis=1)
        order = sorted(range(len(cands)), key=lambda i: (d[i], i))
        group += [cands[i] for i in order[: min(k_iter, size - len(group))]]
    return group


def _reference_loop(pts: torch.Tensor, search: list[int], size: int, k_iter: int) -> list[int]:
    """The reference's ``iter_group``/``closed_k`` loop (docs/method.md §4), exact distances."""
    a = pts.numpy()
    group = search[:k_iter]
    while len(group) < size:
        cands = sorted(c for c in search if c not in group)  # torch.unique sorts
        d = _sq_dist_np(a[group], a[cands]).reshape(-1)
        order = np.argsort(d, kind="stable")[: min(k_iter, size - len(group))]
        group = [cands[i % len(cands)] for i in order] + group
    return group


# k_iter = 1 (size-1 steps) and 7 (a short last step) exercise many steps; 80 is the default.
@pytest.mark.parametrize(("k_iter", "size", "count"), [(1, 40, 12), (7, 128, 12), (80, 128, 40)])
def test_vectorised_ipg_equals_per_group_loop(k_iter: int, size: int, count: int) -> None:
    pts = sheet_and_blob(3000, seed=5)
    basis = prepare_groups(pts, num_groups=count, group_size=size)
    search = basis.search_idx
    high = torch.ones(count)
    got = ipg_groups(pts, basis.center_idx, search, high, group_size=size, k_iter=k_iter)
    ref = ipg_groups(
        pts, basis.center_idx, search, high, group_size=size, k_iter=k_iter, variant="reference"
    )
    for g in range(count):
        assert got[g].tolist() == _paper_loop(pts, search[g].tolist(), size, k_iter)
        want = _reference_loop(pts, search[g].tolist(), size, k_iter)
        assert sorted(ref[g].tolist()) == sorted(want)  # members incl. multiplicity; order differs
        assert len(set(got[g].tolist())) == size


@pytest.mark.parametrize("variant", ["paper", "reference"])
def test_memory_blocks_do_not_change_results(variant: str, monkeypatch) -> None:
    pts = _two_planes()[0]  # a grid: many exactly equal distances, so tie order is tested too
    basis = prepare_groups(pts, num_groups=30, group_size=64)
    want = regroup(basis, pts, k_iter=10, c_thr=0.0, variant=variant).groups
    want_knn = knn(basis.centers, pts, 50)
    # 1000 elements: one member per distance block and a few queries per KNN chunk.
    monkeypatch.setattr("engine.method.point_groups.BLOCK_ELEMS", 1000)
    monkeypatch.setattr("engine.method.point_search.BLOCK_ELEMS", 1000)
    assert torch.equal(regroup(basis, pts, k_iter=10, c_thr=0.0, variant=variant).groups, want)
    got_knn = knn(basis.centers, pts, 50)
    assert torch.equal(got_knn[0], want_knn[0]) and torch.equal(got_knn[1], want_knn[1])


def test_low_curvature_groups_are_plain_knn() -> None:
    pts = sheet_and_blob(4000, seed=6)
    out = regroup(prepare_groups(pts, 200, 64), pts, k_iter=16, c_thr=0.05)
    low = out.curvatures < 0.05
    assert 0 < low.sum() < 200  # the cloud has both kinds
    assert torch.equal(out.groups[low], out.search_idx[low, :64])
    assert not torch.equal(out.groups[~low], out.search_idx[~low, :64])
    for row in out.groups:
        assert len(set(row.tolist())) == 64
    flat = regroup(prepare_groups(pts, 200, 64), pts, k_iter=16, c_thr=math.inf)
    assert torch.equal(flat.groups, flat.search_idx[:, :64])
    assert torch.equal(regroup(flat, pts, k_iter=16, c_thr=0.05).groups, out.groups)
    assert torch.equal(out.groups[:, 0], out.center_idx)


@pytest.mark.parametrize("device", DEVICES)
def test_grouping_shapes_and_determinism(device: str) -> None:
    pts = sheet_and_blob(3000, seed=7).to(device)
    a = regroup(prepare_groups(pts, 128, 32), pts, k_iter=8, c_thr=0.0)
    b = regroup(prepare_groups(pts.clone(), 128, 32), pts.clone(), k_iter=8, c_thr=0.0)
    assert a.groups.shape == (128, 32) and a.search_idx.shape == (128, 64)
    assert a.centers.shape == (128, 3) and a.curvatures.shape == (128,)
    assert a.groups.device == pts.device
    assert torch.equal(a.centers, pts[a.center_idx])
    for field in ("center_idx", "search_idx", "curvatures", "groups"):
        assert torch.equal(getattr(a, field), getattr(b, field))


def test_small_cloud_is_clipped_not_refused() -> None:
    pts = sheet_and_blob(50, seed=8)
    out = regroup(prepare_groups(pts, num_groups=1024, group_size=128), pts)
    assert out.groups.shape == (50, 50) and out.search_idx.shape == (50, 50)
    single = regroup(prepare_groups(torch.zeros(1, 3)), torch.zeros(1, 3))
    assert single.groups.tolist() == [[0]] and single.curvatures.tolist() == [0.0]


def test_ipg_validation() -> None:
    pts = sheet_and_blob(300)
    basis = prepare_groups(pts, 4, 16)
    args = (pts, basis.center_idx, basis.search_idx, basis.curvatures)
    with pytest.raises(InvalidInputError, match="k_iter"):
        ipg_groups(*args, group_size=16, k_iter=0)
    with pytest.raises(InvalidInputError, match="k_iter"):
        ipg_groups(*args, group_size=16, k_iter=17)
    with pytest.raises(InvalidInputError, match="c_thr"):
        ipg_groups(*args, group_size=16, k_iter=4, c_thr=-0.1)
    with pytest.raises(InvalidInputError, match="group_size"):
        ipg_groups(*args, group_size=33, k_iter=4)
    with pytest.raises(InvalidInputError, match="variant"):
        ipg_groups(*args, group_size=16, k_iter=4, variant="fast")
    with pytest.raises(InvalidInputError, match="out of range"):
        ipg_groups(
            pts, basis.center_idx, basis.search_idx + 300, basis.curvatures, group_size=16, k_iter=4
        )
