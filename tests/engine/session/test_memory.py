"""The memory estimate against measured tensors, and the automatic subsets g it drives."""

from __future__ import annotations

from pathlib import Path

import pytest

from engine.config import MuscConfig
from engine.data.discover import discover_dataset
from engine.data.synthetic import write_synthetic_dataset
from engine.method import mutual_scoring
from engine.progress import run_to_completion
from engine.session import memory
from engine.session.memory import FeatureSizes, auto_subsets, estimate, tensor_bytes
from engine.session.session import InspectionSession
from engine.session.stages import Stage
from tests.engine.fakes import PixelPatchBackbone

SIZES = FeatureSizes(patches_2d=784, channels_2d=(40, 112, 320))


def _line(tmp_path: Path, n_good: int = 10):
    return discover_dataset(write_synthetic_dataset(tmp_path / "line", n_good=n_good))


def test_estimate_matches_the_measured_tensors_of_a_small_run(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    largest: list[int] = []
    distances = mutual_scoring.drop_self

    def spied(table):
        largest.append(table.numel() * table.element_size())
        return distances(table)

    monkeypatch.setattr(mutual_scoring, "drop_self", spied)
    session = InspectionSession(_line(tmp_path), backbone=PixelPatchBackbone())
    result = run_to_completion(session.run())
    n = len(session.samples)
    cache = session._cache
    sizes = FeatureSizes.of_run(session.config, "2d", cache)
    assert sizes.patches_2d == 64 and sizes.channels_2d == (16, 16)
    guess = estimate(n, sizes)
    kept = tensor_bytes([cache[Stage.EXTRACT_2D].layers, cache[Stage.AGGREGATE_2D]])
    tables = tensor_bytes(cache[Stage.SCORE_2D])
    assert kept / 1.5 <= guess.features <= kept * 1.5
    assert tables / 1.5 <= guess.tables <= tables * 1.5
    # the transient term covers the live copies of the largest distance table
    assert max(largest) <= guess.scoring <= 10 * max(largest)
    assert guess.total == memory.estimate_bytes(n, session.config, sizes)
    # the read-out's maps and one transient copy (2D: the fused maps only)
    assert guess.maps == 2 * result.maps.nbytes and guess.runtime == memory.RUNTIME_BYTES


def test_more_subsets_need_less_memory() -> None:
    totals = [estimate(5000, SIZES, g).total for g in (1, 2, 4, 8)]
    assert totals == sorted(totals, reverse=True)
    assert estimate(5000, SIZES).tables > 40 * 10**9


def test_auto_subsets_raises_g_exactly_when_needed() -> None:
    config = MuscConfig()
    n = 1000
    assert auto_subsets(n, config, SIZES, estimate(n, SIZES).total) == (1, None)
    budget = estimate(n, SIZES, 4).total
    assert estimate(n, SIZES, 3).total > budget  # so 4 is the least g that fits
    groups, reason = auto_subsets(n, config, SIZES, budget)
    assert groups == 4
    assert reason.startswith("1000 parts need ~") and "4 subsets of ~250" in reason
    # an explicit g is the user's choice
    assert auto_subsets(n, config.replace(subsets=2), SIZES, 1) == (2, None)
    # never finer than MIN_SUBSET parts per subset; the line says the budget is still exceeded
    groups, reason = auto_subsets(n, config, SIZES, 1)
    assert groups == n // memory.MIN_SUBSET and "over the" in reason
    # too few parts to split at all
    assert auto_subsets(150, config, SIZES, 1) == (1, None)


def test_budget_comes_from_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv(memory.BUDGET_ENV, raising=False)
    assert memory.memory_budget() == 6 * 10**9
    monkeypatch.setenv(memory.BUDGET_ENV, "1500000")
    assert memory.memory_budget() == 1_500_000


def test_a_session_over_budget_scores_in_subsets_and_says_why(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(memory, "MIN_SUBSET", 2)
    monkeypatch.setenv(memory.BUDGET_ENV, "1")
    session = InspectionSession(_line(tmp_path), backbone=PixelPatchBackbone())
    result = run_to_completion(session.run())
    tables = session._cache[Stage.SCORE_2D]
    n = len(session.samples)
    assert len(tables) == n // 2 and sorted(sum((t.indices for t in tables), [])) == list(range(n))
    said = [w for w in session.warnings if "parts need ~" in w]
    assert len(said) == 1 and f"{n // 2} subsets" in said[0]
    assert len(result.image_scores) == n
    # a second run keeps the g its cached tables were scored with and says it once
    run_to_completion(session.run())
    assert sum("parts need ~" in w for w in session.warnings) == 1


def test_a_session_within_budget_keeps_one_subset(tmp_path: Path) -> None:
    session = InspectionSession(_line(tmp_path), backbone=PixelPatchBackbone())
    run_to_completion(session.run())
    assert len(session._cache[Stage.SCORE_2D]) == 1
    assert not any("parts need" in w for w in session.warnings)


def test_3d_runs_count_the_fpfh_point_descriptors_up_to_their_cap() -> None:
    from engine.backbones.fpfh import FPFH_DIM, POINT_MEMO_BYTES

    sizes_3d = FeatureSizes(groups_3d=1024, channels_3d=(33,), points_3d=224**2, group_size=128)
    without = FeatureSizes(groups_3d=1024, channels_3d=(33,), points_3d=0, group_size=128)
    few, many = estimate(10, sizes_3d), estimate(5000, sizes_3d)
    assert (
        few.clouds - estimate(10, without).clouds
        == 10 * 224**2 * 4 * (2 * 3 + 2 + 2 * 3 + 3) + 10 * 224**2 * FPFH_DIM * 4
    )  # the clouds themselves, then the descriptors
    assert (
        many.clouds - estimate(5000, without).clouds
        == 5000 * 224**2 * 4 * (2 * 3 + 2 + 2 * 3 + 3) + POINT_MEMO_BYTES
    )  # capped
    assert estimate(10, SIZES).clouds == 0  # 2D only
