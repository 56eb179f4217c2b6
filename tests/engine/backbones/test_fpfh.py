"""FPFH backbone: shapes, determinism, orientation, and geometric sanity on synthetic surfaces."""

from __future__ import annotations

import math

import pytest
import torch

from engine.backbones import create_point_backbone
from engine.backbones.fpfh import FPFHBackbone
from engine.errors import InvalidInputError

pytest.importorskip("open3d")

# Interior centres on a 5x5 lattice, at least 0.3 from the border of the [-0.7, 0.7]^2 patch:
# further than the FPFH radius plus a group's extent, so border effects cannot reach them.
LATTICE = (-0.4, -0.2, 0.0, 0.2, 0.4)


def grid_surface(bump: float = 0.0, n: int = 81) -> torch.Tensor:
    """A regular grid on [-0.7, 0.7]^2 (spacing 0.0175), with an optional Gaussian bump at 0."""
    t = torch.linspace(-0.7, 0.7, n, dtype=torch.float64)
    x, y = torch.meshgrid(t, t, indexing="ij")
    z = bump * torch.exp(-(x**2 + y**2) / (2 * 0.06**2))
    return torch.stack([x.flatten(), y.flatten(), z.flatten()], dim=1).float()


def lattice_groups(points: torch.Tensor, k: int = 48) -> tuple[torch.Tensor, torch.Tensor]:
    """Centres at the grid points nearest the lattice (the middle one is the bump's top)."""
    xy = torch.tensor([[x, y, 0.0] for x in LATTICE for y in LATTICE])
    idx = torch.cdist(xy[:, :2], points[:, :2]).argmin(dim=1)
    groups = torch.cdist(points[idx], points).topk(k, largest=False).indices
    return idx, groups


def wavy_cloud(seed: int = 0, n: int = 4000) -> torch.Tensor:
    gen = torch.Generator().manual_seed(seed)
    uv = torch.rand(n, 2, generator=gen) * 1.4 - 0.7
    z = 0.1 * torch.sin(6 * uv[:, 0]) * torch.cos(5 * uv[:, 1])
    return torch.cat([uv, z[:, None]], dim=1)


def random_groups(points: torch.Tensor, g: int = 40, k: int = 32) -> tuple[torch.Tensor, ...]:
    idx = torch.randperm(points.shape[0], generator=torch.Generator().manual_seed(1))[:g]
    groups = torch.cdist(points[idx], points).topk(k, largest=False).indices
    return points, points[idx], groups


def test_shapes_finite_and_pooling_variants() -> None:
    backbone = create_point_backbone("fpfh", layers=("mean", "max", "mean+max"))
    assert backbone.info.weights_source == "weight-free"
    assert backbone.info.layers == ("fpfh.mean", "fpfh.max", "fpfh.mean+max")
    points, centers, groups = random_groups(wavy_cloud())
    mean, mx, both = backbone.extract(points, centers, groups)
    assert mean.shape == (40, 33) and mx.shape == (40, 33) and both.shape == (40, 66)
    for f in (mean, mx, both):
        assert f.dtype == torch.float32 and f.device == torch.device("cpu")
        assert torch.isfinite(f).all()
    assert torch.equal(both, torch.cat([mean, mx], dim=1))
    assert (mx >= mean - 1e-4).all() and (mx > mean + 1).any()
    # open3d scales each 11-bin histogram of a point to 200: so does their mean.
    torch.testing.assert_close(mean.reshape(40, 3, 11).sum(-1), torch.full((40, 3), 200.0))
    # The default is the mean alone.
    (default,) = create_point_backbone("fpfh").extract(points, centers, groups)
    torch.testing.assert_close(default, mean)


def test_tensor_pipeline_equals_open3d_legacy_fpfh() -> None:
    """point_features runs open3d's faster tensor pipeline; the legacy one is the yardstick."""
    import numpy as np
    import open3d as o3d

    backbone = FPFHBackbone()
    points = wavy_cloud(seed=3)
    legacy = o3d.geometry.PointCloud(o3d.utility.Vector3dVector(points.double().numpy()))
    legacy.normals = o3d.utility.Vector3dVector(backbone.normals(points))
    search = o3d.geometry.KDTreeSearchParamHybrid(backbone.fpfh_radius, backbone.fpfh_max_nn)
    want = np.asarray(o3d.pipelines.registration.compute_fpfh_feature(legacy, search).data).T
    got = backbone.point_features(points)
    assert got.shape == want.shape and got.dtype == np.float32
    # the same histograms up to float32 and the order of summation (values up to 200)
    np.testing.assert_allclose(got, want, atol=5e-3, rtol=0)


def test_pooling_is_the_mean_and_max_over_members_duplicates_included() -> None:
    backbone = create_point_backbone("fpfh", layers=("max", "mean+max", "mean"))
    points, centers, groups = random_groups(wavy_cloud(seed=4))
    groups[:, -5:] = groups[:, :1]  # the centre five more times: it counts six times
    per_point = torch.from_numpy(backbone.point_features(points))
    members = per_point[groups]
    mx, both, mean = backbone.extract(points, centers, groups)
    torch.testing.assert_close(mean, members.mean(dim=1), rtol=1e-6, atol=1e-5)
    assert torch.equal(mx, members.amax(dim=1))
    assert torch.equal(both, torch.cat([mean, mx], dim=1))


def test_deterministic_and_independent_of_point_order() -> None:
    points, centers, groups = random_groups(wavy_cloud())
    backbone = FPFHBackbone()
    a = backbone.extract(points, centers, groups)[0]
    assert torch.equal(a, backbone.extract(points, centers, groups)[0])
    assert torch.equal(a, FPFHBackbone().extract(points, centers, groups)[0])
    # Storing the cloud in another order (groups remapped) describes the same surface.
    perm = torch.randperm(points.shape[0], generator=torch.Generator().manual_seed(5))
    inverse = torch.argsort(perm)
    b = backbone.extract(points[perm], centers, inverse[groups])[0]
    torch.testing.assert_close(a, b, rtol=0, atol=1e-3)


def test_normals_face_the_view_direction() -> None:
    points = wavy_cloud()
    normals = FPFHBackbone().normals(points)
    assert normals.shape == (points.shape[0], 3)
    assert (normals[:, 2] <= 0).all()  # default view (0, 0, -1): towards a +z-looking sensor
    flipped = FPFHBackbone(view_direction=(0.0, 0.0, 1.0)).normals(points)
    assert (flipped[:, 2] >= 0).all()


def test_flat_plane_is_uniform_and_a_bump_stands_out() -> None:
    # radii small against the test grid, so the lattice groups never see its border
    backbone = FPFHBackbone(layers=("mean", "max"), normal_radius=0.03, fpfh_radius=0.075)
    plane = grid_surface()
    idx, groups = lattice_groups(plane)
    mean, mx = backbone.extract(plane, plane[idx], groups)
    assert (mean - mean[0]).abs().max() < 1e-3 and (mx - mx[0]).abs().max() < 1e-3
    bumpy = grid_surface(bump=0.1)
    idx, groups = lattice_groups(bumpy)
    (bump_mean, _) = backbone.extract(bumpy, bumpy[idx], groups)
    dist = (bump_mean - mean[0]).norm(dim=1).reshape(5, 5)
    assert dist[2, 2] > 100  # the group on the bump's top
    assert dist[0].max() < 1e-3 and dist[:, 0].max() < 1e-3  # far from the bump: still flat


def test_rotation_leaves_features_unchanged() -> None:
    backbone = FPFHBackbone(normal_radius=0.03, fpfh_radius=0.075)  # local against the grid
    bumpy = grid_surface(bump=0.1)
    idx, groups = lattice_groups(bumpy)
    (before,) = backbone.extract(bumpy, bumpy[idx], groups)
    a = math.radians(20)  # a tilt small enough that all normals still face the sensor
    rot = torch.tensor(
        [[1.0, 0.0, 0.0], [0.0, math.cos(a), -math.sin(a)], [0.0, math.sin(a), math.cos(a)]]
    )
    tilted = bumpy @ rot.T
    (after,) = backbone.extract(tilted, tilted[idx], groups)
    assert before.norm(dim=1).min() > 100
    torch.testing.assert_close(after, before, rtol=0, atol=1e-2)


def test_bad_arguments() -> None:
    with pytest.raises(InvalidInputError, match="pooling"):
        create_point_backbone("fpfh", layers=("median",))
    with pytest.raises(InvalidInputError, match="pooling"):
        create_point_backbone("fpfh", layers=(0,))
    with pytest.raises(InvalidInputError, match="weight-free"):
        create_point_backbone("fpfh", "/some/file.pth")
    assert create_point_backbone("fpfh", "random").info.weights_source == "weight-free"
    assert create_point_backbone("fpfh", layers="max").info.layers == ("fpfh.max",)
    with pytest.raises(InvalidInputError, match="view_direction"):
        FPFHBackbone(view_direction=(0.0, 0.0, 0.0))
    points, centers, groups = random_groups(wavy_cloud())
    with pytest.raises(InvalidInputError, match="groups"):
        FPFHBackbone().extract(points, centers, groups[:5])


def test_a_regroup_re_pools_the_memo_and_equals_a_fresh_backbone(monkeypatch) -> None:
    backbone = FPFHBackbone(layers=("mean", "max"))
    points, centers, groups = random_groups(wavy_cloud())
    backbone.extract(points, centers, groups)
    calls = []
    original = FPFHBackbone.point_features
    monkeypatch.setattr(
        FPFHBackbone, "point_features", lambda self, p: calls.append(1) or original(self, p)
    )
    _, centers2, groups2 = random_groups(points, g=25, k=20)  # another grouping, same cloud
    again = backbone.extract(points, centers2, groups2)
    assert calls == []  # re-pooled from the memo
    fresh = FPFHBackbone(layers=("mean", "max")).extract(points, centers2, groups2)
    assert calls == [1]
    for a, b in zip(again, fresh, strict=True):
        assert torch.equal(a, b)


def test_the_memo_is_keyed_by_the_cloud_and_dies_with_it() -> None:
    backbone = FPFHBackbone()
    points, centers, groups = random_groups(wavy_cloud())
    first = backbone.extract(points, centers, groups)[0]
    # equal values in a new tensor are another cloud (a re-read), described anew
    bumped = points.clone()
    bumped[:, 2] += 0.05 * torch.exp(-(bumped[:, :2] ** 2).sum(1) / 0.01)
    assert not torch.allclose(backbone.extract(bumped, centers, groups)[0], first)
    assert len(backbone._memo) == 2
    del bumped
    assert len(backbone._memo) == 1  # the finalizer dropped the dead cloud's entry
    assert backbone._memo.bytes == points.shape[0] * 33 * 4
    assert FPFHBackbone(memo_bytes=0).cloud_features(points) is not None
    small = FPFHBackbone(memo_bytes=points.shape[0] * 33 * 4)  # room for one cloud
    other = wavy_cloud(seed=2)
    small.cloud_features(points)
    small.cloud_features(other)
    assert list(small._memo.entries) == [id(other)]  # the older one was evicted
    assert small._memo.bytes == other.shape[0] * 33 * 4
