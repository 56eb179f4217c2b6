"""Ground truth in evaluation: a bad mask costs its sample's pixel metrics, never the run."""

from __future__ import annotations

import logging
import re
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from engine.config import MuscConfig
from engine.data.samples import Sample, SkippedFile
from engine.evaluation.evaluate import evaluate_all, ground_truth_masks
from engine.evaluation.metrics import compute_metrics
from engine.session.results import ScoreResult

SIZE = (12, 16)  # (H, W) of every image
GRID = 8


def write_mask(path: Path, mask: np.ndarray) -> Path:
    Image.fromarray(mask.astype(np.uint8) * 255).save(path)
    return path


def defect_mask(row: int) -> np.ndarray:
    mask = np.zeros(SIZE, dtype=bool)
    mask[row : row + 4, 4:10] = True
    return mask


def make_result(tmp_path: Path) -> ScoreResult:
    """2 good parts (one with an all-zero mask file), 3 defective parts with masks."""
    samples = [
        Sample("good_0", tmp_path / "g0.png", label=0, defect_type="good"),
        Sample(
            "good_1",
            tmp_path / "g1.png",
            mask_path=write_mask(tmp_path / "g1_mask.png", np.zeros(SIZE, bool)),
            label=0,
            defect_type="good",
        ),
    ]
    for i in range(3):
        mask = write_mask(tmp_path / f"d{i}_mask.png", defect_mask(2 + 2 * i))
        samples.append(Sample(f"bad_{i}", tmp_path / f"d{i}.png", mask_path=mask, label=1))
    rng = np.random.default_rng(0)
    maps = rng.random((len(samples), GRID, GRID)).astype(np.float32)
    maps[2:, 2:5, 2:6] += 1.0  # defects roughly where the masks are
    scores = maps.max(axis=(1, 2))
    return ScoreResult(
        samples=samples,
        image_sizes=[SIZE] * len(samples),
        modality="2d",
        image_scores=scores,
        max_scores=scores,
        maps=maps,
        config=MuscConfig(),
        backbone=None,
    )


def test_good_masks_are_used_and_nothing_is_reported(tmp_path: Path) -> None:
    result = make_result(tmp_path)
    skipped: list[SkippedFile] = []
    warnings: list[str] = []
    indices, masks = ground_truth_masks(result, GRID, skipped=skipped, warnings=warnings)
    assert indices.tolist() == [0, 1, 2, 3, 4] and masks.shape == (5, GRID, GRID)
    assert skipped == [] and warnings == []


@pytest.mark.parametrize(
    "fault, reason",
    [
        ("wrong_size", r"size \(H, W\) = \(6, 8\) does not match the image size \(12, 16\)"),
        ("truncated", r"cannot read image"),
        ("garbage", r"cannot read image"),
        ("missing", r"file not found"),
    ],
)
def test_bad_mask_leaves_only_its_sample_out(tmp_path: Path, fault: str, reason: str) -> None:
    result = make_result(tmp_path)
    clean = evaluate_all(result)["metrics"]
    bad = result.samples[3].mask_path
    assert bad is not None
    if fault == "wrong_size":
        write_mask(bad, np.ones((6, 8), bool))
    elif fault == "truncated":
        bad.write_bytes(bad.read_bytes()[:40])
    elif fault == "garbage":
        bad.write_bytes(b"\x89PNG not really")
    else:
        bad.unlink()
    skipped: list[SkippedFile] = []
    metrics = evaluate_all(result, skipped=skipped)["metrics"]
    assert len(skipped) == 1 and skipped[0].path == bad
    assert re.search(reason, skipped[0].reason), skipped[0].reason
    assert "bad_1 is left out of the pixel metrics" in skipped[0].reason
    assert not skipped[0].reason.startswith(str(bad))  # the path is the SkippedFile field
    # Image metrics still use all 5 labels; pixel metrics use the 4 remaining masks.
    labels = np.array([s.label for s in result.samples])
    assert metrics["image_auroc"] == pytest.approx(clean["image_auroc"])
    keep = [0, 1, 2, 4]
    truth = ground_truth_masks(result, GRID, skipped=[])
    expected = compute_metrics(labels, result.image_scores, truth[1], result.maps[keep])
    assert truth[0].tolist() == keep
    assert metrics == pytest.approx(expected)


def test_bad_mask_is_logged_when_no_list_is_given(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    result = make_result(tmp_path)
    bad = result.samples[2].mask_path
    write_mask(bad, np.ones((3, 3), bool))  # type: ignore[arg-type]
    with caplog.at_level(logging.WARNING, logger="engine.evaluation.evaluate"):
        metrics = evaluate_all(result)
    assert metrics["metrics"]  # the run's metrics are not lost
    assert any(
        str(bad) in r.getMessage() and "does not match" in r.getMessage() for r in caplog.records
    )


def test_good_part_with_mostly_defect_mask_is_warned(tmp_path: Path) -> None:
    result = make_result(tmp_path)
    good_mask = result.samples[1].mask_path
    write_mask(good_mask, np.ones(SIZE, bool))  # type: ignore[arg-type]
    warnings: list[str] = []
    evaluate_all(result, skipped=[], warnings=warnings)
    assert len(warnings) == 1
    assert str(good_mask) in warnings[0] and "100%" in warnings[0]
    assert "labelled good" in warnings[0] and "good_1" in warnings[0]


def test_good_part_with_small_mask_is_not_warned(tmp_path: Path) -> None:
    result = make_result(tmp_path)
    half = np.zeros(SIZE, bool)
    half[: SIZE[0] // 2] = True  # exactly half: the limit is "more than half"
    write_mask(result.samples[1].mask_path, half)  # type: ignore[arg-type]
    warnings: list[str] = []
    evaluate_all(result, skipped=[], warnings=warnings)
    assert warnings == []


def test_defective_part_with_full_mask_is_not_a_good_mask_warning(tmp_path: Path) -> None:
    result = make_result(tmp_path)
    write_mask(result.samples[2].mask_path, np.ones(SIZE, bool))  # type: ignore[arg-type]
    warnings: list[str] = []
    evaluate_all(result, skipped=[], warnings=warnings)
    assert warnings == []
