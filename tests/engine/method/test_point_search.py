"""The CPU paths of engine.method.point_search return exactly what the device paths return."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from engine.method import point_search
from engine.method.point_search import (
    farthest_point_sample,
    fps_numpy,
    fps_torch,
    knn,
    knn_brute_keys,
    knn_tree_keys,
)
from tests.engine.method.clouds import sheet_and_blob


def _grid(side: int) -> torch.Tensor:
    """A perfect planar grid: whole shells of exactly equal distances around every point."""
    axis = torch.arange(side, dtype=torch.float32) / side
    u, v = torch.meshgrid(axis, axis, indexing="ij")
    return torch.stack([u.flatten(), v.flatten(), torch.zeros(side * side)], 1)


CLOUDS = {
    "sheet": lambda: sheet_and_blob(3000, 0),
    "grid": lambda: _grid(40),
    "duplicates": lambda: torch.cat([sheet_and_blob(500, 1), sheet_and_blob(500, 1)[:200]]),
}


@pytest.mark.parametrize("name", sorted(CLOUDS))
def test_fps_numpy_equals_the_device_loop(name: str) -> None:
    points = CLOUDS[name]()
    for count in (1, 2, 100, 300):
        want = fps_torch(points, count)
        assert fps_numpy(points.numpy(), count).tolist() == want.tolist()
    assert torch.equal(farthest_point_sample(points, 300), fps_torch(points, 300))


def test_fps_ties_and_nan_agree() -> None:
    points = _grid(12)  # every step has ties: the lowest index must win in both
    assert fps_numpy(points.numpy(), 144).tolist() == fps_torch(points, 144).tolist()
    points[7] = float("nan")
    assert fps_numpy(points.numpy(), 20).tolist() == fps_torch(points, 20).tolist()


@pytest.mark.parametrize("name", sorted(CLOUDS))
@pytest.mark.parametrize("k", [1, 3, 50, 256])
def test_knn_tree_equals_brute_force(name: str, k: int) -> None:
    points = CLOUDS[name]()
    # members of the cloud and other points
    query = torch.cat([points[::37], sheet_and_blob(60, 9)])
    want = knn_brute_keys(query, points, k)
    assert torch.equal(knn_tree_keys(query, points, k), want)
    idx, dist = knn(query, points, k)  # the public entry takes the tree on the CPU
    assert torch.equal(idx, want & 0xFFFFFFFF)
    assert torch.equal(dist, (want >> 32).to(torch.int32).view(torch.float32).sqrt())
    _, squared = knn(query, points, k, squared=True)  # the very values ranked, no sqrt round trip
    assert torch.equal(squared, (want >> 32).to(torch.int32).view(torch.float32))


def test_knn_tree_hands_unprovable_rows_to_brute_force(monkeypatch) -> None:
    calls: list[int] = []
    brute = point_search.knn_brute_keys

    def counting(query, points, k, chunk=None):
        calls.append(len(query))
        return brute(query, points, k, chunk)

    monkeypatch.setattr(point_search, "knn_brute_keys", counting)
    sheet = sheet_and_blob(3000, 2)
    point_search.knn_tree_keys(sheet[:200], sheet, 32)
    assert calls == []  # no near-ties: every row is proven by its candidates
    # An integer lattice (exact float arithmetic): around the origin, the 34th to the 57th
    # neighbours are all at squared distance 5, so the margin cannot prove which 34 to keep.
    axis = torch.arange(-3, 4, dtype=torch.float32) * 0.125
    lattice = torch.cartesian_prod(axis, axis, axis)
    # shuffled so that the tree's own order of equal distances is not the index order
    lattice = lattice[torch.randperm(len(lattice), generator=torch.Generator().manual_seed(0))]
    origin = int(torch.nonzero(lattice.abs().sum(1) == 0))
    query = lattice[[origin, 0, 100]]
    got = point_search.knn_tree_keys(query, lattice, 34)
    assert calls and 0 < calls[0] < len(query)  # only the unprovable rows
    assert torch.equal(got, brute(query, lattice, 34))


def test_knn_tree_falls_back_on_nan() -> None:
    points = sheet_and_blob(500, 3)
    points[4] = float("nan")
    query = sheet_and_blob(20, 4)
    assert torch.equal(knn_tree_keys(query, points, 8), knn_brute_keys(query, points, 8))


def test_small_clouds_use_brute_force_without_a_tree(monkeypatch) -> None:
    def no_tree(*args, **kwargs):
        raise AssertionError("a cloud of k + margin points or fewer needs no tree")

    monkeypatch.setattr(point_search, "knn_tree_keys", no_tree)
    points = sheet_and_blob(40, 5)
    idx, dist = knn(points, points, 40 - point_search.KNN_MARGIN)
    assert torch.equal(idx[:, 0], torch.arange(40))
    assert np.all(np.diff(dist.numpy(), axis=1) >= 0)
