"""The synthetic product line: deterministic, with exact masks, readable by discovery."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from engine.data import (
    DEFECT_TYPES,
    discover_dataset,
    read_mask,
    read_rgb,
    render_part,
    render_part_with_geometry,
    write_synthetic_dataset,
)
from engine.errors import InvalidInputError


@pytest.mark.parametrize("defect", [None, *DEFECT_TYPES])
def test_same_seed_same_pixels(defect: str | None) -> None:
    first = render_part(np.random.default_rng(7), 128, defect)
    second = render_part(np.random.default_rng(7), 128, defect)
    assert np.array_equal(first[0], second[0]) and np.array_equal(first[1], second[1])


def test_different_seeds_differ() -> None:
    a, _ = render_part(np.random.default_rng(1))
    b, _ = render_part(np.random.default_rng(2))
    assert a.shape == b.shape == (256, 256, 3) and a.dtype == np.uint8
    assert np.abs(a.astype(int) - b.astype(int)).mean() > 3


def test_normal_part_has_empty_mask() -> None:
    image, mask = render_part(np.random.default_rng(0), 96)
    assert image.shape == (96, 96, 3) and mask.shape == (96, 96) and not mask.any()


def _dilate(mask: np.ndarray, steps: int) -> np.ndarray:
    """Grow a mask by ``steps`` pixels (3x3 square per step); defects never touch the border."""
    for _ in range(steps):
        mask = mask | np.roll(mask, 1, 0) | np.roll(mask, -1, 0)
        mask = mask | np.roll(mask, 1, 1) | np.roll(mask, -1, 1)
    return mask


@pytest.mark.parametrize("defect", DEFECT_TYPES)
@pytest.mark.parametrize("seed", [0, 1, 2])
def test_defect_mask_is_exact_and_on_the_part(defect: str, seed: int) -> None:
    image, mask, geom = render_part_with_geometry(np.random.default_rng(seed), 256, defect)
    assert mask.dtype == bool and 0.0005 < mask.mean() < 0.03
    assert not (mask & ~geom.surface()).any()
    # The same seed without a defect draws the same part; only the noise and the background
    # (drawn after the defect) differ, so pixels change a lot inside the mask and barely
    # outside it (the blended edge is left out).
    normal, _, same_geom = render_part_with_geometry(np.random.default_rng(seed), 256, None)
    assert same_geom == geom
    diff = np.abs(image.astype(int) - normal.astype(int)).mean(axis=2)
    edge = _dilate(mask, 2)
    assert diff[mask].mean() > 25 and np.percentile(diff[mask], 5) > 15
    assert diff[geom.surface() & ~edge].mean() < 5


def test_unknown_defect_and_tiny_size_are_rejected() -> None:
    with pytest.raises(InvalidInputError, match="dent"):
        render_part(np.random.default_rng(0), defect="dent")
    with pytest.raises(InvalidInputError, match="too small"):
        render_part(np.random.default_rng(0), size=16)


def test_dataset_is_deterministic(tmp_path: Path) -> None:
    first = write_synthetic_dataset(tmp_path / "a", n_good=2, n_per_defect=1, size=64, seed=3)
    second = write_synthetic_dataset(tmp_path / "b", n_good=2, n_per_defect=1, size=64, seed=3)
    files = sorted(p.relative_to(first) for p in first.rglob("*.png"))
    assert len(files) == 2 + 2 * len(DEFECT_TYPES)
    assert files == sorted(p.relative_to(second) for p in second.rglob("*.png"))
    assert all((first / f).read_bytes() == (second / f).read_bytes() for f in files)
    other = write_synthetic_dataset(tmp_path / "c", n_good=2, n_per_defect=1, size=64, seed=4)
    assert (first / files[0]).read_bytes() != (other / files[0]).read_bytes()


def test_dataset_round_trip_through_discovery(tmp_path: Path) -> None:
    out = write_synthetic_dataset(tmp_path / "line", n_good=4, n_per_defect=2, size=96, seed=5)
    assert out == tmp_path / "line"
    index = discover_dataset(out)
    assert (index.layout, index.category, len(index.samples)) == ("mvtec_ad", "line", 10)
    assert [s.name for s in index.samples][:3] == ["good_000", "good_001", "good_002"]
    assert {s.defect_type for s in index.samples} == {"good", *DEFECT_TYPES}
    assert sum(s.label == 0 for s in index.samples) == 4
    assert all(s.label is not None for s in index.samples)
    assert index.warnings == [] and index.skipped == []
    for sample in index.samples:
        assert read_rgb(sample.rgb_path).shape == (96, 96, 3)
        if sample.label == 1:
            assert read_mask(sample.mask_path, (96, 96)).any()
        else:
            assert sample.mask_path is None
