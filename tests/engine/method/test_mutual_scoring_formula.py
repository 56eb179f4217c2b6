"""Mutual scoring's tiling, progress and precision, with hand-computed tile sizes."""

from __future__ import annotations

import math

import pytest
import torch

from engine.method import mutual_scoring
from engine.progress import run_to_completion


@pytest.mark.parametrize(
    ("num_patches", "chunk_mib", "num_samples", "tile"),
    [
        (100, 4, 1000, 10),  # sqrt(4 MiB / 4 bytes) = 1024 rows -> 1024 // 100 = 10 samples
        (100, 4, 6, 6),  # never more than N
        (1, 4, 5000, 1024),  # one patch per sample: 1024 samples
        (300, 1, 9, 1),  # sqrt(2^18) = 512 < 600: at least one sample
        (784, 64, 200, 5),  # sqrt(2^24) = 4096 // 784 = 5
        (0, 1, 3, 3),  # no patches: the budget is not divided by zero
    ],
)
def test_tile_size_by_hand(num_patches: int, chunk_mib: int, num_samples: int, tile: int) -> None:
    assert mutual_scoring.tile_size(num_patches, chunk_mib, num_samples) == tile


def _circle(angles: list[list[float]]) -> torch.Tensor:
    radians = torch.tensor(angles, dtype=torch.float64)
    return torch.stack([radians.cos(), radians.sin()], dim=-1)


def test_progress_counts_every_tile_pair_once() -> None:
    # 300 patches, 1 MiB: tiles of one sample, so 4 samples give 4 * 5 / 2 = 10 tile pairs
    generator = torch.Generator().manual_seed(0)
    features = torch.nn.functional.normalize(torch.randn(4, 300, 3, generator=generator), dim=-1)
    events = []
    run_to_completion(mutual_scoring.patch_to_sample_distances(features, 1), on_event=events.append)
    assert [(e.stage, e.done, e.total) for e in events] == [
        ("mutual scoring", done, 10) for done in range(1, 11)
    ]
    # a budget that holds all samples: one tile pair
    one = []
    steps = mutual_scoring.patch_to_sample_distances(features, 64, "named", unit_norm=True)
    run_to_completion(steps, on_event=one.append)
    assert [(e.stage, e.done, e.total) for e in one] == [("named", 1, 1)]


def test_double_precision_is_kept() -> None:
    # chords between unit vectors at angles 0, 0.05, 0.2; float64 in, float64 out, exact to 1e-12
    features = _circle([[0.0], [0.05], [0.2]]).view(3, 1, 2)
    for unit_norm in (True, False):
        table = mutual_scoring.patch_to_sample_distances(features, 64, unit_norm=unit_norm)
        distances = mutual_scoring.drop_self(run_to_completion(table))
        assert distances.dtype == torch.float64
        expected = [[0.05, 0.2], [0.05, 0.15], [0.2, 0.15]]
        for i in range(3):
            for j in range(2):
                chord = 2 * math.sin(expected[i][j] / 2)
                assert distances[i, 0, j].item() == pytest.approx(chord, abs=1e-9)


@pytest.mark.parametrize("unit_norm", [True, False])
@pytest.mark.parametrize("block_floats", [1, 7 * 9, 10**9])
def test_cache_blocks_merge_to_the_brute_force_table(
    monkeypatch: pytest.MonkeyPatch, unit_norm: bool, block_floats: int
) -> None:
    """Row blocks of one row, of a few rows, or of the whole part: the same table, both ways."""
    monkeypatch.setattr(mutual_scoring, "BLOCK_FLOATS", block_floats)
    generator = torch.Generator().manual_seed(3)
    features = torch.randn(5, 9, 4, generator=generator, dtype=torch.float64)
    if unit_norm:
        features = torch.nn.functional.normalize(features, dim=-1)
    # tiles of 2 samples: pairs within a tile (same) and across tiles, with a last tile of 1
    monkeypatch.setattr(mutual_scoring, "tile_size", lambda *_: 2)
    table = run_to_completion(
        mutual_scoring.patch_to_sample_distances(features, 4, unit_norm=unit_norm)
    )
    expected = torch.cdist(features.reshape(-1, 4), features.reshape(-1, 4))
    expected = expected.view(5, 9, 5, 9).amin(dim=3)  # (i, m, j): nearest patch of j
    off_diagonal = ~torch.eye(5, dtype=torch.bool)
    got, want = table.permute(0, 2, 1)[off_diagonal], expected.permute(0, 2, 1)[off_diagonal]
    assert torch.allclose(got, want, atol=1e-6)
    assert torch.all(table[torch.arange(5), :, torch.arange(5)] == 0)  # self distance
