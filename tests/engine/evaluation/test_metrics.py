"""Tests of engine.evaluation.metrics: hand-checked values and slow reference implementations."""

from __future__ import annotations

import numpy as np
import pytest
from skimage import measure
from sklearn.metrics import auc, average_precision_score, precision_recall_curve, roc_auc_score

from engine.errors import InvalidInputError
from engine.evaluation.metrics import (
    compute_metrics,
    image_metrics,
    pixel_metrics,
    suggest_threshold,
)

# --------------------------------------------------------------------------- slow references


def slow_cflow_pro(masks: np.ndarray, amaps: np.ndarray) -> float:
    """The reference's cal_pro_score (docs/method.md §12), loop over thresholds and binary maps."""
    masks = masks.astype(np.int64)
    amaps = amaps.astype(np.float32)
    binary_amaps = np.zeros_like(amaps, dtype=bool)
    min_th, max_th = amaps.min(), amaps.max()
    delta = (max_th - min_th) / 200
    pros, fprs = [], []
    for th in np.arange(min_th, max_th, delta):
        binary_amaps[amaps <= th], binary_amaps[amaps > th] = 0, 1
        pro = []
        for binary_amap, mask in zip(binary_amaps, masks, strict=True):
            for region in measure.regionprops(measure.label(mask)):
                tp_pixels = binary_amap[region.coords[:, 0], region.coords[:, 1]].sum()
                pro.append(tp_pixels / region.area)
        inverse_masks = 1 - masks
        fp_pixels = np.logical_and(inverse_masks, binary_amaps).sum()
        pros.append(np.array(pro).mean())
        fprs.append(fp_pixels / inverse_masks.sum())
    pros, fprs = np.array(pros), np.array(fprs)
    keep = fprs < 0.3
    fprs = fprs[keep]
    fprs = (fprs - fprs.min()) / (fprs.max() - fprs.min())
    return auc(fprs, pros[keep])


def slow_aupro(masks: np.ndarray, maps: np.ndarray, max_fpr: float = 0.3) -> float:
    """AU-PRO by brute force: every distinct score as threshold, map >= t, regions per image."""
    maps = maps.astype(np.float32)
    regions = [
        (index, labelled == k)
        for index, mask in enumerate(masks)
        for labelled in [measure.label(mask, connectivity=2)]
        for k in range(1, labelled.max() + 1)
    ]
    fprs, pros = [0.0], [0.0]
    for t in np.unique(maps)[::-1]:
        flagged = maps >= t
        pros.append(np.mean([flagged[i][region].mean() for i, region in regions]))
        fprs.append(flagged[~masks].mean())
    x, y = np.array(fprs), np.array(pros)
    inside = x <= max_fpr
    xs, ys = list(x[inside]), list(y[inside])
    if xs[-1] < max_fpr:
        j = int(np.argmax(x > max_fpr))
        ys.append(y[j - 1] + (y[j] - y[j - 1]) * (max_fpr - x[j - 1]) / (x[j] - x[j - 1]))
        xs.append(max_fpr)
    return float(np.trapezoid(ys, xs)) / max_fpr


def random_case(
    seed: int,
    n: int = 4,
    h: int = 24,
    w: int = 20,
    levels: int | None = None,
    integer: bool = False,
    on_thresholds: bool = False,
):
    """Blobby masks (several regions, one all-normal image) and noisy maps, optionally tied."""
    rng = np.random.default_rng(seed)
    masks = rng.random((n, h, w)) < 0.08
    for _ in range(2):  # grow the seeds into regions of varied size
        masks[:, 1:] |= masks[:, :-1] & (rng.random((n, h - 1, w)) < 0.5)
        masks[:, :, 1:] |= masks[:, :, :-1] & (rng.random((n, h, w - 1)) < 0.5)
    masks[0] = False
    maps = (rng.random((n, h, w)) + 0.3 * masks).astype(np.float32)
    if levels is not None:  # quantise to create many ties across classes
        maps = (np.round(maps * levels) / levels).astype(np.float32)
    if integer:  # scores 0..200: the reference's thresholds 0, 1, ..., 199 all tie with scores
        maps = np.round((maps - maps.min()) / (maps.max() - maps.min()) * 200).astype(np.float32)
    if on_thresholds:  # scores equal to the reference's float32 thresholds (not 64-bit ones)
        low, high = np.float32(0.1), np.float32(0.9)
        grid = np.arange(low, high, (high - low) / 200)
        index = rng.integers(0, grid.size - 60, masks.shape) + 60 * masks
        maps = grid[index]
        maps[0, 0, :2] = low, high
    return masks, maps


# --------------------------------------------------------------------------- image level


def test_image_metrics_hand_example():
    # Descending: 0.8 (+), 0.4 (-), 0.35 (+), 0.1 (-). Pairs (+,-): 3 of 4 ordered -> 0.75.
    # AP = 0.5 * 1 + 0.5 * 2/3; F1 at 0.35: P = 2/3, R = 1 -> 0.8.
    result = image_metrics([0, 0, 1, 1], [0.1, 0.4, 0.35, 0.8])
    assert result["image_auroc"] == pytest.approx(0.75)
    assert result["image_ap"] == pytest.approx(5 / 6)
    assert result["image_f1_max"] == pytest.approx(0.8)


def test_image_metrics_worst_ranking_skips_nan_f1():
    # The negative ranks first: that point has P = R = 0 (NaN F1); then P = 1/2, R = 1.
    result = image_metrics(np.array([True, False]), np.array([0.2, 0.9]))
    assert result == pytest.approx({"image_auroc": 0.0, "image_ap": 0.5, "image_f1_max": 2 / 3})


@pytest.mark.parametrize("labels", [[0, 0, 0], [1, 1, 1]])
def test_image_metrics_one_class_is_omitted(labels):
    assert image_metrics(labels, [0.1, 0.2, 0.3]) == {}


def test_image_metrics_bad_shapes_name_both():
    with pytest.raises(InvalidInputError, match=r"\(3,\).*\(4,\)"):
        image_metrics([0, 1, 1], [0.1, 0.2, 0.3, 0.4])


def test_image_labels_must_be_binary():
    with pytest.raises(InvalidInputError, match="0/1"):
        image_metrics([0, 2], [0.1, 0.2])


def test_suggest_threshold_is_max_f1_threshold():
    assert suggest_threshold([0, 0, 1, 1], [0.1, 0.4, 0.35, 0.8]) == pytest.approx(0.35)
    with pytest.raises(InvalidInputError, match="both classes"):
        suggest_threshold([1, 1], [0.1, 0.4])


# --------------------------------------------------------------------------- AU-PRO by hand


def test_aupro_interpolates_at_fpr_03():
    # Row [neg .5, def .9, def .5, neg .1]: curve (0,0) (0,.5) (.5,1) (1,1). At FPR .3 the
    # segment (0,.5)-(.5,1) gives PRO .8, so the area is .3 * (.5 + .8) / 2 and AUPRO = .65.
    masks = np.array([[[0, 1, 1, 0]]], dtype=bool)
    maps = np.array([[[0.5, 0.9, 0.5, 0.1]]], dtype=np.float32)
    assert pixel_metrics(masks, maps)["aupro"] == pytest.approx(0.65)


def test_aupro_averages_regions_not_pixels():
    # Regions A (3 px: .8 .2 .2) and B (1 px: .9); negatives .5 and .1. Before any negative is
    # flagged PRO reaches mean(1/3, 1) = 2/3 (pixel share would be 2/4), flat up to FPR .3.
    masks = np.array([[[1, 1, 1, 0, 1, 0]]], dtype=bool)
    maps = np.array([[[0.8, 0.2, 0.2, 0.5, 0.9, 0.1]]], dtype=np.float32)
    assert pixel_metrics(masks, maps)["aupro"] == pytest.approx(2 / 3)


def test_aupro_uses_8_connectivity():
    # (0,0)-(0,1) and (1,2) touch diagonally: one region of 3 px with 8-connectivity, only the
    # diagonal pixel is found before FPR jumps to 1 -> 1/3 (4-connectivity would give 1/2).
    masks = np.zeros((1, 3, 3), dtype=bool)
    masks[0, 0, 0] = masks[0, 0, 1] = masks[0, 1, 2] = True
    maps = np.full((1, 3, 3), 0.5, dtype=np.float32)
    maps[0, 1, 2], maps[0, 0, 0], maps[0, 0, 1] = 0.9, 0.1, 0.1
    assert pixel_metrics(masks, maps)["aupro"] == pytest.approx(1 / 3)


def test_perfect_map_scores_one():
    masks, _ = random_case(0)
    rng = np.random.default_rng(1)
    maps = (masks + 0.4 * rng.random(masks.shape)).astype(np.float32)
    result = pixel_metrics(masks, maps)
    for key in ("pixel_auroc", "pixel_ap", "pixel_f1_max", "aupro"):
        assert result[key] == pytest.approx(1.0), key


def test_pro_cflow_hand_example():
    # Scores are integers 0..200, so the reference's thresholds are exactly 0, 1, ..., 199.
    # Negatives 0..9: FPR(t) = (9 - t) / 10, so only t >= 7 has FPR < .3 (t = 6 gives exactly .3).
    # Region scores 3, 7, 8, 200 (map > t): PRO(7) = 2/4, PRO(8) = PRO(t >= 9) = 1/4.
    # Kept FPRs .2, .1, 0 rescale to 1, .5, 0: area = .5 * (.5 + .25) / 2 + .5 * .25 = .3125.
    maps = np.array([[list(range(10)) + [3, 7, 8, 200]]], dtype=np.float32)
    masks = np.array([[[0] * 10 + [1] * 4]], dtype=bool)
    assert pixel_metrics(masks, maps)["pro_cflow"] == pytest.approx(0.3125)
    assert slow_cflow_pro(masks, maps) == pytest.approx(0.3125)


def test_binary_perfect_map_leaves_pro_cflow_undefined():
    # Every threshold flags exactly the mask: all kept FPRs are 0, so the reference's min-max
    # rescaling divides by zero (NaN); we omit the key instead.
    masks, _ = random_case(2)
    result = pixel_metrics(masks, masks.astype(np.float32))
    assert result["aupro"] == pytest.approx(1.0)
    assert "pro_cflow" not in result


def test_inverted_map_scores_zero():
    # Negatives all at the top score: FPR is 1 at every threshold, so no cflow threshold is kept
    # (the reference returns 0) and the exact curve stays at PRO 0 up to FPR 1.
    masks, _ = random_case(3)
    result = pixel_metrics(masks, (~masks).astype(np.float32))
    assert result["aupro"] == 0.0
    assert result["pro_cflow"] == 0.0
    assert result["pixel_auroc"] == 0.0


# --------------------------------------------------------------------------- against references


@pytest.mark.parametrize("seed, levels", [(10, None), (11, 20), (12, 7)])
def test_aupro_equals_brute_force(seed, levels):
    masks, maps = random_case(seed, levels=levels)
    assert pixel_metrics(masks, maps)["aupro"] == pytest.approx(slow_aupro(masks, maps), abs=1e-9)


@pytest.mark.parametrize(
    "seed, options",
    [(20, {}), (21, {"levels": 15}), (22, {"integer": True}), (23, {"on_thresholds": True})],
)
def test_pro_cflow_equals_reference_loop(seed, options):
    masks, maps = random_case(seed, **options)
    expected = slow_cflow_pro(masks, maps)
    assert pixel_metrics(masks, maps)["pro_cflow"] == pytest.approx(expected, abs=1e-9)


@pytest.mark.parametrize("seed, levels", [(30, None), (31, 10)])
def test_pixel_scores_equal_sklearn(seed, levels):
    masks, maps = random_case(seed, levels=levels)
    y, s = masks.ravel(), maps.ravel()
    precision, recall, _ = precision_recall_curve(y, s)
    with np.errstate(divide="ignore", invalid="ignore"):
        f1 = 2 * precision * recall / (precision + recall)
    result = pixel_metrics(masks, maps)
    assert result["pixel_auroc"] == pytest.approx(roc_auc_score(y, s), abs=1e-9)
    assert result["pixel_ap"] == pytest.approx(average_precision_score(y, s), abs=1e-9)
    assert result["pixel_f1_max"] == pytest.approx(np.max(f1[np.isfinite(f1)]), abs=1e-9)


# --------------------------------------------------------------------------- edges


def test_pixel_metrics_one_class_is_omitted():
    maps = np.random.default_rng(0).random((2, 4, 4)).astype(np.float32)
    assert pixel_metrics(np.zeros((2, 4, 4), dtype=bool), maps) == {}
    assert pixel_metrics(np.ones((2, 4, 4), dtype=bool), maps) == {}


def test_pixel_shape_mismatch_names_both_shapes():
    with pytest.raises(InvalidInputError, match=r"\(2, 4, 4\).*\(2, 4, 5\)"):
        pixel_metrics(np.zeros((2, 4, 4), dtype=bool), np.zeros((2, 4, 5), dtype=np.float32))
    with pytest.raises(InvalidInputError, match=r"\(4, 4\)"):
        pixel_metrics(np.zeros((4, 4), dtype=bool), np.zeros((4, 4), dtype=np.float32))


def test_masks_must_be_binary_and_maps_finite():
    maps = np.zeros((1, 2, 2), dtype=np.float32)
    with pytest.raises(InvalidInputError, match="0/1"):
        pixel_metrics(np.array([[[0, 255], [0, 0]]], dtype=np.uint8), maps)
    maps[0, 0, 0] = np.nan
    with pytest.raises(InvalidInputError, match="finite"):
        pixel_metrics(np.zeros((1, 2, 2), dtype=bool), maps)


def test_compute_metrics_combines_parts():
    labels, scores = [0, 0, 1, 1], [0.1, 0.4, 0.35, 0.8]
    assert set(compute_metrics(labels, scores)) == {"image_auroc", "image_ap", "image_f1_max"}
    masks, maps = random_case(40)  # pixel part may cover a different number of images
    combined = compute_metrics(labels, scores, masks, maps)
    assert combined == {**image_metrics(labels, scores), **pixel_metrics(masks, maps)}
    assert {"pixel_auroc", "aupro", "pro_cflow"} <= set(combined)
    with pytest.raises(InvalidInputError, match="maps"):
        compute_metrics(labels, scores, masks, None)
