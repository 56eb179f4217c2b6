"""Pass/fail thresholds on image scores and the pixel cut used for defect masks and areas.

With ground truth, the image threshold is the one with the best F1 (``score >= t`` = defective).
Without it, a robust outlier cut on the score distribution is used:

    t = median + K * 1.4826 * MAD,   K = 3

1.4826 * MAD estimates the standard deviation of the normal parts without being pulled by the
(few, high-scoring) defective ones, so ``t`` is "three sigmas above a typical part". When the
scores have no spread (MAD = 0, e.g. most parts score exactly the same), the cut falls back to
the standard deviation, and to the next float above the median when that is zero too, so that
identical scores all pass.
"""

from __future__ import annotations

import numpy as np

from engine.errors import InvalidInputError
from engine.evaluation.metrics import suggest_threshold

ROBUST_K = 3.0  # how many robust standard deviations above the median count as defective
MAD_TO_SIGMA = 1.4826  # MAD of a normal distribution times this is its standard deviation


def robust_cut(values: object, k: float = ROBUST_K) -> float:
    """``median + k * 1.4826 * MAD`` of ``values`` (see the module docstring for MAD = 0).

    Raises:
        InvalidInputError: no values, or non-finite values.
    """
    array = np.asarray(values, dtype=np.float64).ravel()
    if array.size == 0:
        raise InvalidInputError("a threshold needs at least one score; found none")
    if not np.isfinite(array).all():
        raise InvalidInputError("scores must be finite to suggest a threshold; found NaN or inf")
    median = float(np.median(array))
    spread = MAD_TO_SIGMA * float(np.median(np.abs(array - median)))
    if not spread > 0:
        spread = float(array.std())
    if not spread > 0:
        return float(np.nextafter(median, np.inf))
    return median + k * spread


def suggested_threshold(scores: object, labels: object | None = None) -> tuple[float, str]:
    """The image-score threshold to suggest, and a one-line account of how it was chosen.

    Args:
        scores: (N,) image scores, higher = more anomalous.
        labels: (N,) 0/1/None ground truth; samples with None are ignored for the F1 rule.
            Used only when both classes are present among the known labels.

    Returns:
        (threshold, how): classify as defective when ``score >= threshold``.
    """
    score_arr = np.asarray(scores, dtype=np.float64).ravel()
    if labels is not None:
        known = [(s, lab) for s, lab in zip(score_arr, labels, strict=True) if lab is not None]
        values = {int(lab) for _, lab in known}
        if values == {0, 1}:
            y = np.array([lab for _, lab in known], dtype=int)
            s = np.array([s for s, _ in known])
            value = suggest_threshold(y, s)
            return value, f"max-F1 threshold on {len(known)} labelled parts"
    value = robust_cut(score_arr)
    return value, (
        f"robust cut: median + {ROBUST_K:g}\u00b71.4826\u00b7MAD of {score_arr.size} scores "
        "(no labels of both classes)"
    )


def pixel_threshold(maps: object, value: float | None = None) -> tuple[float, str]:
    """The anomaly-map cut that turns maps into defect masks (``map >= t``) and areas.

    Args:
        maps: (N, S, S) anomaly maps of all parts (the same values the masks are cut from).
        value: a user-chosen cut; returned as is when given.

    Returns:
        (threshold, how). Without ``value``, the robust cut over all map pixels: defect pixels
        are rare, so the median and MAD describe the defect-free surface.
    """
    if value is not None:
        return float(value), "pixel cut chosen by the user"
    cut = robust_cut(np.asarray(maps, dtype=np.float32))
    return cut, f"robust cut: median + {ROBUST_K:g}\u00b71.4826\u00b7MAD of all map pixels"
