"""Evaluation metrics: image / pixel AUROC, AP, F1-max, and two PRO flavours (docs/method.md §12).

Every metric is a fraction in [0, 1]. A metric that is undefined for the given data (all labels
of one class, all pixels of one class, no defect region) is **omitted** from the returned dict:
neither 0 nor NaN, so that a missing value can never be mistaken for a poor one.

Two PRO values are reported because they differ by design:

* ``aupro`` -- the standard MVTec AU-PRO@0.3, exact over every distinct score: PRO(t) is the mean,
  over all connected defect regions (8-connectivity, per image), of the share of the region's
  pixels with ``map >= t``; FPR(t) is the share of defect-free pixels with ``map >= t``. PRO is
  integrated over FPR in [0, 0.3] with the trapezoid rule (the curve is interpolated linearly at
  FPR = 0.3) and divided by 0.3.
* ``pro_cflow`` -- the reference's cflow-AD style value that the published PRO numbers use:
  about 200 equally spaced thresholds, ``map > t``, only FPR < 0.3 kept, the kept FPRs rescaled
  to [0, 1] by their observed range, then ``sklearn.metrics.auc``. It is *not* comparable with
  ``aupro``.

Pixel metrics share a single sort of all pixel scores, so a category of 54 maps of 800x600
(26 M pixels) costs a few seconds and well under 2 GB.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from skimage.measure import label as label_regions
from sklearn.metrics import auc, average_precision_score, precision_recall_curve, roc_auc_score

from engine.errors import InvalidInputError

MAX_FPR = 0.3  # upper FPR bound of both PRO integrals
CFLOW_STEPS = 200  # number of threshold steps of the reference's PRO


# --------------------------------------------------------------------------- validation


def _binary(values: np.ndarray, name: str) -> np.ndarray:
    """``values`` as bool; only booleans or 0/1 are accepted (a 0/255 mask is a caller bug)."""
    if values.dtype == bool:
        return values
    if not np.issubdtype(values.dtype, np.number) or not ((values == 0) | (values == 1)).all():
        raise InvalidInputError(
            f"{name} must hold only 0/1 or booleans; found dtype {values.dtype} with other values"
        )
    return values != 0


def _image_inputs(labels: object, scores: object) -> tuple[np.ndarray, np.ndarray]:
    labels_arr, scores_arr = np.asarray(labels), np.asarray(scores)
    if labels_arr.ndim != 1 or labels_arr.shape != scores_arr.shape or labels_arr.size == 0:
        raise InvalidInputError(
            "image labels and scores must be non-empty 1-D arrays of the same shape (N,); "
            f"found labels {labels_arr.shape} and scores {scores_arr.shape}"
        )
    scores_arr = scores_arr.astype(np.float64)  # float32 -> float64 keeps every ordering
    if not np.isfinite(scores_arr).all():
        raise InvalidInputError("image scores must be finite; found NaN or infinity")
    return _binary(labels_arr, "image labels"), scores_arr


def _pixel_inputs(masks: object, maps: object) -> tuple[np.ndarray, np.ndarray]:
    masks_arr = np.asarray(masks)
    # The reference evaluates float32 maps; casting here keeps every pixel metric on one ordering.
    maps_arr = np.asarray(maps, dtype=np.float32)
    if masks_arr.ndim != 3 or masks_arr.shape != maps_arr.shape or masks_arr.size == 0:
        raise InvalidInputError(
            "masks and maps must be non-empty (N, H, W) arrays of the same shape; "
            f"found masks {masks_arr.shape} and maps {maps_arr.shape}"
        )
    if not np.isfinite(maps_arr).all():
        raise InvalidInputError("anomaly maps must be finite; found NaN or infinity")
    return _binary(masks_arr, "masks"), maps_arr


# --------------------------------------------------------------------------- image level


def _f1_max(precision: np.ndarray, recall: np.ndarray) -> float:
    """Max of 2PR/(P+R) over the finite values (P = R = 0 gives NaN and is skipped)."""
    with np.errstate(divide="ignore", invalid="ignore"):
        f1 = 2.0 * precision * recall / (precision + recall)
    return float(np.max(f1[np.isfinite(f1)]))


def image_metrics(labels: object, scores: object) -> dict[str, float]:
    """Image-level AUROC, average precision and F1-max.

    Args:
        labels: (N,) ground truth, 1/True = defective.
        scores: (N,) anomaly scores, higher = more anomalous.

    Returns:
        ``image_auroc``, ``image_ap``, ``image_f1_max``; empty when all labels are one class.

    Raises:
        InvalidInputError: shapes differ, labels are not 0/1, or scores are not finite.
    """
    y, s = _image_inputs(labels, scores)
    if y.all() or not y.any():
        return {}
    precision, recall, _ = precision_recall_curve(y, s)
    return {
        "image_auroc": float(roc_auc_score(y, s)),
        "image_ap": float(average_precision_score(y, s)),
        "image_f1_max": _f1_max(precision, recall),
    }


def suggest_threshold(labels: object, scores: object) -> float:
    """The image-score threshold with the best F1 (classify as defective when ``score >= t``).

    Among equally good thresholds the lowest is returned.

    Raises:
        InvalidInputError: bad shapes, or labels that do not contain both classes.
    """
    y, s = _image_inputs(labels, scores)
    if y.all() or not y.any():
        raise InvalidInputError("a threshold needs labels of both classes (normal and defective)")
    precision, recall, thresholds = precision_recall_curve(y, s)
    # The last (P=1, R=0) point has no threshold; NaN F1 (P = R = 0) must never win.
    with np.errstate(divide="ignore", invalid="ignore"):
        f1 = 2.0 * precision[:-1] * recall[:-1] / (precision[:-1] + recall[:-1])
    return float(thresholds[int(np.argmax(np.where(np.isfinite(f1), f1, -1.0)))])


# --------------------------------------------------------------------------- pixel level


@dataclass(frozen=True)
class _SortedPixels:
    """All pixels sorted by score once; every pixel metric is read off this."""

    scores: np.ndarray  # (P,) float32, ascending
    region: np.ndarray  # (P,) int32 global region id of each sorted pixel, 0 = defect-free
    areas: np.ndarray  # (R,) int64 pixel count of region r + 1
    n_negative: int  # defect-free pixels

    @property
    def n_positive(self) -> int:
        return int(self.areas.sum())


def _sort_pixels(masks: np.ndarray, maps: np.ndarray) -> _SortedPixels:
    region_ids = np.empty(masks.shape, dtype=np.int32)
    offset = 0
    for index, mask in enumerate(masks):
        # connectivity=2 is 8-connectivity, skimage's default in 2-D and the reference's choice.
        labelled, count = label_regions(mask, connectivity=2, return_num=True)
        region_ids[index] = np.where(labelled > 0, labelled + offset, 0)
        offset += count
    counts = np.bincount(region_ids.ravel(), minlength=offset + 1)
    flat = maps.reshape(-1)
    # The only O(P log P) step; AUROC, AP, F1, AU-PRO and the cflow PRO all reuse this order.
    order = np.argsort(flat)
    return _SortedPixels(flat[order], region_ids.reshape(-1)[order], counts[1:], int(counts[0]))


def _exact_curve(data: _SortedPixels) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(tps, fps, pro) at every distinct score, from the highest score down (``map >= t``)."""
    scores = data.scores[::-1]
    region = data.region[::-1]
    # Ties must move together: only the last pixel of each run of equal scores is a threshold.
    ends = np.append(np.flatnonzero(scores[1:] != scores[:-1]), scores.size - 1)
    tps = np.cumsum(region > 0, dtype=np.int64)[ends]
    fps = ends + 1 - tps
    # Each region contributes 1/area per detected pixel, so the cumulative sum / R is the mean
    # per-region overlap: no per-threshold relabelling or per-region loop.
    weights = np.concatenate(([0.0], 1.0 / data.areas))[region]
    np.cumsum(weights, out=weights)
    pro = np.minimum(weights[ends] / data.areas.size, 1.0)  # clip float drift above 1
    return tps, fps, pro


def _trapezoid(x: np.ndarray, y: np.ndarray) -> float:
    return float(np.sum(np.diff(x) * (y[1:] + y[:-1])) / 2.0)


def _truncate(fpr: np.ndarray, pro: np.ndarray, max_fpr: float) -> tuple[np.ndarray, np.ndarray]:
    """The curve up to ``max_fpr``, ending exactly there by linear interpolation."""
    stop = int(np.searchsorted(fpr, max_fpr, side="right"))
    x, y = fpr[:stop], pro[:stop]
    if x[-1] < max_fpr < fpr[-1]:
        x0, x1, y0, y1 = fpr[stop - 1], fpr[stop], pro[stop - 1], pro[stop]
        x = np.append(x, max_fpr)
        y = np.append(y, y0 + (y1 - y0) * (max_fpr - x0) / (x1 - x0))
    return x, y


def _curve_points(
    data: _SortedPixels, pro_sums: np.ndarray, fps: np.ndarray
) -> tuple[np.ndarray, np.ndarray]:
    """The curve with its origin prepended (no pixel is flagged above the highest score)."""
    fpr = np.concatenate(([0.0], fps / data.n_negative))
    pro = np.concatenate(([0.0], pro_sums))
    return fpr, pro


def _cflow_pro(
    data: _SortedPixels, steps: int = CFLOW_STEPS, expect_fpr: float = MAX_FPR
) -> float | None:
    """The reference's ``cal_pro_score`` (docs/method.md §12), with counts, not 200 binary maps.

    Returns None where the reference yields NaN or fails (constant maps, a zero kept FPR range,
    fewer than two kept thresholds), and 0.0 where no threshold has FPR < ``expect_fpr``, as the
    reference does.
    """
    low, high = data.scores[0], data.scores[-1]  # float32 scalars, exactly as the reference
    delta = (high - low) / steps
    if not delta > 0:
        return None
    thresholds = np.arange(low, high, delta)
    n_th = thresholds.size
    # Pixels strictly above each threshold, from the sorted scores (float32 comparisons).
    above = data.scores.size - np.searchsorted(data.scores, thresholds, side="right")
    positive = data.region > 0
    # Bin each defect pixel by how many thresholds lie strictly below its score; a pixel counts
    # as detected at threshold j exactly when its bin is > j.
    bins = np.searchsorted(thresholds, data.scores[positive], side="left")
    cells = (data.region[positive].astype(np.int64) - 1) * (n_th + 1) + bins
    hist = np.bincount(cells, minlength=data.areas.size * (n_th + 1)).reshape(-1, n_th + 1)
    tp = data.areas[:, None] - np.cumsum(hist, axis=1)[:, :n_th]
    pro = (tp / data.areas[:, None]).mean(axis=0)
    fpr = (above - tp.sum(axis=0)) / data.n_negative
    keep = fpr < expect_fpr
    if not keep.any():
        return 0.0
    kept = fpr[keep]
    span = kept.max() - kept.min()
    if kept.size < 2 or not span > 0:
        return None
    return float(auc((kept - kept.min()) / span, pro[keep]))


def pixel_metrics(masks: object, maps: object) -> dict[str, float]:
    """Pixel-level AUROC, AP, F1-max, ``aupro`` and ``pro_cflow`` over all pixels of all maps.

    AUROC, AP and F1-max equal sklearn's ``roc_auc_score``, ``average_precision_score`` and the
    F1-max along ``precision_recall_curve`` (to float rounding), from one shared sort.

    Args:
        masks: (N, H, W) ground truth, True/1 = defect pixel. Normal images (all False) count.
        maps: (N, H, W) anomaly maps at the same resolution; cast to float32 like the reference.

    Returns:
        ``pixel_auroc``, ``pixel_ap``, ``pixel_f1_max``, ``aupro``, ``pro_cflow``. Empty when
        all pixels are one class; ``pro_cflow`` alone is omitted where the reference's formula
        is undefined (constant maps, or fewer than two distinct kept FPR values).

    Raises:
        InvalidInputError: shapes differ or are not 3-D, masks are not 0/1, maps not finite.
    """
    masks_arr, maps_arr = _pixel_inputs(masks, maps)
    if not masks_arr.any() or masks_arr.all():
        return {}
    data = _sort_pixels(masks_arr, maps_arr)
    tps, fps, pro_sums = _exact_curve(data)

    tpr = tps / data.n_positive
    precision = tps / (tps + fps)  # tps + fps >= 1 at every threshold
    fpr, pro = _curve_points(data, pro_sums, fps)
    fpr_trunc, pro_trunc = _truncate(fpr, pro, MAX_FPR)
    result = {
        "pixel_auroc": _trapezoid(fpr, np.concatenate(([0.0], tpr))),
        # sklearn's step integral: sum of recall increments times the precision reached there.
        "pixel_ap": float(np.sum(np.diff(tpr, prepend=0.0) * precision)),
        # sklearn's curve also ends at (P=1, R=0), whose F1 is 0: max(..., 0) covers it.
        "pixel_f1_max": max(_f1_max(precision, tpr), 0.0),
        "aupro": _trapezoid(fpr_trunc, pro_trunc) / MAX_FPR,
    }
    cflow = _cflow_pro(data)
    if cflow is not None:
        result["pro_cflow"] = cflow
    return result


def compute_metrics(
    labels: object, scores: object, masks: object | None = None, maps: object | None = None
) -> dict[str, float]:
    """Image metrics, plus pixel metrics when ground-truth masks are given.

    The masks and maps may cover a subset of the images (e.g. only those with known pixel
    ground truth), so their N need not match ``labels``.

    Args:
        labels: (N,) image labels, 1 = defective.
        scores: (N,) image scores.
        masks: optional (M, H, W) bool masks; needs ``maps``.
        maps: (M, H, W) anomaly maps matching ``masks``; ignored without masks.

    Returns:
        The union of :func:`image_metrics` and :func:`pixel_metrics`, undefined keys omitted.

    Raises:
        InvalidInputError: masks without maps, or any validation error of the parts.
    """
    result = image_metrics(labels, scores)
    if masks is not None:
        if maps is None:
            raise InvalidInputError("pixel metrics need anomaly maps next to the masks; got none")
        result.update(pixel_metrics(masks, maps))
    return result
