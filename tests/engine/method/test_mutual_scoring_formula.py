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
