"""The read-out (spec B §6–§7) on hand-made distance tables: interval average, map max, fusion.

``read_out`` only needs the cached tables, the features of the salient patch and, for 3D, the
clouds' pixel positions and interpolation weights, so every expected value below is written out
by hand. One test runs the whole 2D session on 10 tiny images and recomputes its scores by brute
force.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from engine.config import MuscConfig
from engine.data.samples import DatasetIndex, Sample
from engine.method.mutual_scoring import sorted_cumsum
from engine.progress import run_to_completion
from engine.session.branch_3d import Cloud
from engine.session.readout import read_out
from engine.session.session import InspectionSession
from engine.session.stages import Stage
from engine.session.tables import SubsetTable
from tests.engine.fakes import PixelPatchBackbone


def _samples(n: int) -> list[Sample]:
    return [Sample(name=f"s{i}", rgb_path=None) for i in range(n)]


def _one_hot(n: int, per_sample: int) -> torch.Tensor:
    """(n, per_sample, n): sample i's patches all equal e_i, so RsCon's W is the identity."""
    return torch.eye(n)[:, None, :].expand(n, per_sample, n).contiguous()


def _read_2d(cumsum: torch.Tensor, config: MuscConfig, grid: tuple[int, int]):
    n = cumsum.shape[0]
    return read_out(
        [SubsetTable(list(range(n)), [], cumsum, None)],
        samples=_samples(n),
        image_sizes=[(8, 8)] * n,
        modality="2d",
        config=config,
        grid_2d=grid,
        features_2d=[_one_hot(n, grid[0] * grid[1])],
        features_3d=None,
        clouds=[None] * n,
        backbone=None,
        backbone_3d=None,
        timings={},
    )


# -- interval average and image score -------------------------------------------------------------


def _ten_sample_table() -> torch.Tensor:
    """(10, 4, 9): sample i, patch m: references (9, 1, 8, 2, 7, 3, 6, 4, 5) * (i+1)(m+1)/100."""
    scramble = torch.tensor([9.0, 1.0, 8.0, 2.0, 7.0, 3.0, 6.0, 4.0, 5.0])
    scale = torch.tensor([[(i + 1) * (m + 1) / 100 for m in range(4)] for i in range(10)])
    return sorted_cumsum(scale[:, :, None] * scramble)


def test_readout_keeps_the_lowest_x_percent_of_the_n_minus_1_references() -> None:
    # N = 10 samples, R = 9 references: X = 30 % keeps k = floor(2.7) = 2 (3 if counted from N)
    result = _read_2d(_ten_sample_table(), MuscConfig(x_percent=30, eval_size=8), (2, 2))
    for i in range(10):
        grid = [(i + 1) * (m + 1) / 100 * 1.5 for m in range(4)]  # mean of the 2 lowest
        # align_corners=True: the four corners of the 8 x 8 map are the 2 x 2 grid values
        corners = result.maps[i][[0, 0, -1, -1], [0, -1, 0, -1]]
        assert corners.tolist() == pytest.approx(grid, abs=1e-6)
        assert result.max_scores[i] == pytest.approx((i + 1) * 4 / 100 * 1.5, abs=1e-6)
    # X = 50 %: k = floor(4.5) = 4 -> mean of 1..4 = 2.5 (3 if counted from N)
    half = _read_2d(_ten_sample_table(), MuscConfig(x_percent=50, eval_size=8), (2, 2))
    assert half.max_scores.tolist() == pytest.approx([(i + 1) * 0.04 * 2.5 for i in range(10)])


def test_image_score_is_the_max_of_the_map_not_its_mean() -> None:
    # one hot patch per sample on a 3 x 3 grid, in a different place for each sample
    n = 4
    scores = torch.full((n, 9), 0.1)
    for i, hot in enumerate((0, 4, 8, 5)):
        scores[i, hot] = 0.2 + 0.1 * i
    cumsum = sorted_cumsum(scores[:, :, None].expand(n, 9, n - 1))  # every reference equal
    result = _read_2d(cumsum, MuscConfig(x_percent=30, eval_size=9, rscon_window=1), (3, 3))
    # 3 x 3 -> 9 x 9 with align_corners: grid points land on pixels 0, 4, 8 of each axis
    assert result.max_scores.tolist() == pytest.approx([0.2, 0.3, 0.4, 0.5], abs=1e-6)
    assert np.allclose(result.max_scores, result.maps.reshape(n, -1).max(axis=1))
    assert (result.maps.reshape(n, -1).mean(axis=1) < result.max_scores - 0.05).all()
    # W = identity: RsCon with window 1 returns the min-max normalised map maxima
    assert result.image_scores.tolist() == pytest.approx([0.0, 1 / 3, 2 / 3, 1.0], abs=1e-6)


def _noise_line(root: Path, n: int) -> DatasetIndex:
    rng = np.random.default_rng(5)
    samples = []
    for index in range(n):
        image = np.full((64, 64, 3), 90, np.uint8) + rng.integers(0, 60, (64, 64, 3), np.uint8)
        path = root / f"{index:02d}.png"
        Image.fromarray(image).save(path)
        samples.append(Sample(name=f"s{index:02d}", rgb_path=path))
    return DatasetIndex(root=root, layout="folder", category="noise", samples=samples)


def test_session_scores_equal_a_brute_force_interval_average(tmp_path: Path) -> None:
    # 10 samples: R = 9, X = 30 % -> k = 2 references per patch (3 if counted from N)
    config = MuscConfig(x_percent=30, eval_size=64, device="cpu")
    session = InspectionSession(_noise_line(tmp_path, 10), config, backbone=PixelPatchBackbone())
    result = run_to_completion(session.run())
    layers = [layer.double() for layer in session._cache[Stage.AGGREGATE_2D]]
    for query in range(10):
        per_layer = []
        for features in layers:
            nearest = torch.stack(
                [
                    torch.cdist(features[query], features[j]).amin(1)
                    for j in range(10)
                    if j != query
                ],
                dim=1,
            )  # (L, 9)
            per_layer.append(nearest.sort(dim=1).values[:, :2].mean(dim=1))
        patch = torch.stack(per_layer).mean(dim=0)
        # the 8 x 8 grid upsampled to 64 x 64 with align_corners: the grid points are pixels
        assert result.max_scores[query] == pytest.approx(patch.max().item(), abs=1e-5)


# -- fusion of 2D and 3D --------------------------------------------------------------------------

# Six parts; part 5 has a 3D-only dent. The 2D distances are ~0.5 and vary between normal parts by
# more than the dent's whole 3D score (0.03): this is how real 2D and 3D distances compare on the
# synthetic line (the dent is a fraction of a millimetre; test_session_3d runs it end to end).
SCORES_2D = [0.50, 0.58, 0.54, 0.53, 0.56, 0.50]  # every patch of part i
GROUPS_3D = [[0.010, 0.010]] * 5 + [[0.030, 0.010]]  # two groups per part; the dent in part 5


def _cloud() -> Cloud:
    """Two points, each on its own group (weight 1), at pixels 5 and 10 of a 4 x 4 map."""
    points = torch.tensor([[0.0, 0.0, 0.0], [1.0, 0.0, 0.0]])
    interpolation = (torch.tensor([[0], [1]]), torch.tensor([[1.0], [1.0]]))
    return Cloud(points, points.numpy(), torch.tensor([5, 10]), None, interpolation, None)


def _read_fused(fusion: str, modality: str = "2d+3d", groups_3d: list[list[float]] = GROUPS_3D):
    n = len(SCORES_2D)
    scores_2d = torch.tensor(SCORES_2D)[:, None, None].expand(n, 4, n - 1)
    scores_3d = torch.tensor(groups_3d)[:, :, None].expand(n, 2, n - 1)
    table = SubsetTable(
        list(range(n)), list(range(n)), sorted_cumsum(scores_2d), sorted_cumsum(scores_3d)
    )
    config = MuscConfig(fusion=fusion, eval_size=4, blur_sigma=0.0, rscon_window=1)
    return read_out(
        [table],
        samples=_samples(n),
        image_sizes=[(4, 4)] * n,
        modality=modality,
        config=config,
        grid_2d=(2, 2),
        features_2d=[_one_hot(n, 4)],
        features_3d=[_one_hot(n, 2)],
        clouds=[_cloud() for _ in range(n)],
        backbone=None,
        backbone_3d=None,
        timings={},
    )


def test_sum_fusion_adds_the_maps_unscaled_and_misses_the_3d_only_dent() -> None:
    # Current design (B §6.3, the default): map = map2D + map3D. The dent adds 0.03 - 0.01 = 0.02
    # to part 5, less than the 2D spread between normal parts, so it does not rank first.
    result = _read_fused("sum")
    expected = [a + max(b) for a, b in zip(SCORES_2D, GROUPS_3D, strict=True)]
    assert result.max_scores.tolist() == pytest.approx(expected, abs=1e-6)
    assert result.maps[5, 1, 1] == pytest.approx(0.50 + 0.030)  # pixel 5 = row 1, col 1
    assert result.maps[5, 2, 2] == pytest.approx(0.50 + 0.010)  # pixel 10 = row 2, col 2
    assert result.maps[5, 0, 0] == pytest.approx(0.50)  # background: 2D only
    assert int(np.argmax(result.image_scores)) == 1  # the 2D-noisiest normal part
    assert sorted(result.image_scores)[1] == pytest.approx(result.image_scores[5])  # 2nd lowest
    assert result.modality_maps["3d"][5, 1, 1] == pytest.approx(0.030)
    assert result.points[5].scores.tolist() == pytest.approx([0.030, 0.010])


def test_scaled_fusion_puts_each_modality_in_its_own_units_and_finds_the_dent() -> None:
    # "scaled" divides each modality by its batch median: 2D by the median of the 24 patch
    # scores (torch.median takes the lower middle value: 0.53), 3D by the median of the 12
    # group scores (0.01). The dent is then 3 "typical 3D units" against 1 for normal parts.
    result = _read_fused("scaled")
    expected = [a / 0.53 + max(b) / 0.010 for a, b in zip(SCORES_2D, GROUPS_3D, strict=True)]
    assert result.max_scores.tolist() == pytest.approx(expected, rel=1e-5)
    assert int(np.argmax(result.image_scores)) == 5
    assert result.image_scores[5] == pytest.approx(1.0)
    assert result.modality_maps["2d"][5, 0, 0] == pytest.approx(0.50 / 0.53, rel=1e-6)
    assert result.points[5].scores.tolist() == pytest.approx([3.0, 1.0], rel=1e-5)
    # each modality's own image score is ranked on its own maps
    assert int(np.argmax(result.modality_scores["3d"])) == 5
    assert int(np.argmax(result.modality_scores["2d"])) == 1


def test_3d_only_readout_is_the_group_score_map() -> None:
    result = _read_fused("sum", modality="3d")
    assert result.max_scores.tolist() == pytest.approx([max(b) for b in GROUPS_3D], abs=1e-7)
    assert result.modality_maps == {} and result.modality_scores == {}
    assert int(np.argmax(result.image_scores)) == 5


def test_fusion_scale_ignores_the_choice_of_units_when_scaled() -> None:
    # multiplying the 3D distances by 100 changes "sum" (now 3D dominates) but not "scaled"
    larger = [[100 * v for v in g] for g in GROUPS_3D]
    base = _read_fused("scaled").max_scores
    assert np.allclose(_read_fused("scaled", groups_3d=larger).max_scores, base, rtol=1e-5)
    assert int(np.argmax(_read_fused("sum", groups_3d=larger).image_scores)) == 5
