"""Image and pixel thresholds, each with its value and a one-line account of how it was chosen.

Without labels (the default; a production line has none) both cuts come from the parts most
likely normal (docs/method.md §13):

* image cut = ``median + 3 * 1.4826 * MAD`` of the scores of the **lower half** of the batch
  (at least 3 parts): "three robust standard deviations above a typical normal part", where the
  lower half stands for the normal parts, so that a batch with many defective parts does not
  drag the cut up (the old cut over all scores passed every part of cable_gland).
* pixel cut = the highest map peak among the **lowest-scoring quarter** of the batch (at least
  3 parts): no pixel of those parts is a defect. Measured on the dev data (bench/bench_decision.py)
  the pixel F1 at this cut is 0.76-0.90 of the best achievable F1, where the old all-pixel
  ``median + 3 MAD`` cut reached 0.07-0.28.

With known-good parts marked by the user, they are the reference instead: image cut = the
highest score among them (a new good part scores above the highest of ``n`` good parts with
probability ``1 / (n + 1)``, the expected false-reject rate shown to the user); pixel cut = the
median of their map peaks. With ground truth and only when asked, the image cut is the max-F1
threshold (``max-f1``).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from engine.errors import InvalidInputError
from engine.evaluation.metrics import suggest_threshold

IMAGE_SHARE = 0.5  # the lower half of a batch stands for its normal parts (image cut)
PIXEL_SHARE = 0.25  # the lowest-scoring quarter is surely normal (pixel cut)
MIN_REFERENCE = 3  # fewer parts than this cannot describe "normal"
ROBUST_K = 3.0  # robust standard deviations above the median
MAD_TO_SIGMA = 1.4826  # MAD of a normal distribution times this is its standard deviation
SOURCES = ("auto", "reference", "max-f1", "user")


@dataclass(frozen=True)
class Threshold:
    """A cut (``value``: at or above it = defective) and how it was chosen.

    Attributes:
        value: The cut, in the units of image scores or of the anomaly maps.
        how: One line for the user: the rule and the parts it came from.
        source: "auto" (lowest-scoring parts), "reference" (known-good parts), "max-f1"
            (ground truth, on request) or "user" (typed in).
        expected_false_reject: For a known-good reference, the chance that a new normal part
            fails (``1 / (n + 1)``); None otherwise.
    """

    value: float
    how: str
    source: str
    expected_false_reject: float | None = None

    def __post_init__(self) -> None:
        if not math.isfinite(self.value):
            raise InvalidInputError(f"a threshold must be a finite number; got {self.value}")
        if self.source not in SOURCES:
            raise ValueError(f"unknown threshold source {self.source!r}; one of {SOURCES}")


def _finite(values: object, what: str) -> np.ndarray:
    array = np.asarray(values, dtype=np.float64)
    if array.size == 0:
        raise InvalidInputError(f"a threshold needs at least one {what}; found none")
    if not np.isfinite(array).all():
        raise InvalidInputError(f"{what}s must be finite to choose a threshold; found NaN or inf")
    return array


def robust_cut(values: object, k: float = ROBUST_K) -> float:
    """``median + k * 1.4826 * MAD`` of ``values``.

    When the values have no spread (MAD = 0) the standard deviation is used, and when that is 0
    too the next float above the median, so that identical scores all pass.
    """
    array = _finite(values, "score").ravel()
    median = float(np.median(array))
    spread = MAD_TO_SIGMA * float(np.median(np.abs(array - median)))
    if not spread > 0:
        spread = float(array.std())
    if not spread > 0:
        return _just_above(median)
    return median + k * spread


def _just_above(value: float) -> float:
    """The next float32 above ``value``: scores are float32, and fail means ``score >= cut``."""
    return float(np.nextafter(np.float32(value), np.float32(np.inf)))


def lowest_scoring(scores: object, share: float) -> np.ndarray:
    """Indices of the lowest-scoring ``share`` of the parts (at least 3, at most all), low first.

    Ties keep dataset order, so the choice is reproducible.
    """
    array = _finite(scores, "score").ravel()
    count = min(array.size, max(MIN_REFERENCE, math.ceil(share * array.size)))
    return np.argsort(array, kind="stable")[:count]


def image_threshold_auto(scores: object) -> Threshold:
    """Image cut without labels: robust cut of the lower half's scores (module docstring)."""
    array = _finite(scores, "score").ravel()
    lower = array[lowest_scoring(array, IMAGE_SHARE)]
    how = (f"median + {ROBUST_K:g}\u00b71.4826\u00b7MAD of the {lower.size} lowest-scoring of "
           f"{array.size} parts (the lower half, taken as normal)")  # fmt: skip
    return Threshold(robust_cut(lower), how, "auto")


def image_threshold_known_good(scores: object, reference: object) -> Threshold:
    """Image cut = just above the highest score among the known-good parts.

    Args:
        scores: (N,) image scores of the batch.
        reference: Indices of the known-good parts.
    """
    array = _finite(scores, "score").ravel()
    ref = np.asarray(reference, dtype=np.int64).ravel()
    if ref.size == 0:
        raise InvalidInputError("the normal reference is empty; mark at least one known-good part")
    rate = 1.0 / (ref.size + 1)
    how = (f"above every one of the {ref.size} known-good parts; a new good part fails with "
           f"chance 1/{ref.size + 1} = {100 * rate:.0f} %")  # fmt: skip
    return Threshold(_just_above(array[ref].max()), how, "reference", rate)


def max_f1_threshold(scores: object, labels: object) -> Threshold:
    """The image cut with the best F1 on the ground truth (only when the user asks for it).

    Raises:
        InvalidInputError: The known labels do not hold both classes.
    """
    array = _finite(scores, "score").ravel()
    known = [(s, lab) for s, lab in zip(array, labels, strict=True) if lab is not None]  # type: ignore[call-overload]
    if {int(lab) for _, lab in known} != {0, 1}:
        raise InvalidInputError(
            "max-F1 needs ground truth with both good and defective parts; this batch has "
            "not got both. Use --threshold auto or a value."
        )
    y = np.array([lab for _, lab in known], dtype=int)
    s = np.array([s for s, _ in known])
    return Threshold(suggest_threshold(y, s), f"max-F1 on {len(known)} labelled parts", "max-f1")


def pixel_threshold_auto(scores: object, map_peaks: object) -> Threshold:
    """Pixel cut without labels: the highest map peak of the lowest-scoring quarter.

    Args:
        scores: (N,) image scores (they choose the quarter).
        map_peaks: (N,) maximum of each part's anomaly map.
    """
    peaks = _finite(map_peaks, "map value").ravel()
    quarter = lowest_scoring(scores, PIXEL_SHARE)
    how = (f"highest map peak of the {quarter.size} lowest-scoring of {peaks.size} parts "
           "(taken as normal)")  # fmt: skip
    return Threshold(_just_above(peaks[quarter].max()), how, "auto")


def pixel_threshold_known_good(map_peaks: object, reference: object) -> Threshold:
    """Pixel cut = median of the known-good parts' map peaks (their highest outliers ignored)."""
    peaks = _finite(map_peaks, "map value").ravel()
    ref = np.asarray(reference, dtype=np.int64).ravel()
    if ref.size == 0:
        raise InvalidInputError("the normal reference is empty; mark at least one known-good part")
    how = f"median map peak of the {ref.size} known-good parts"
    return Threshold(float(np.median(peaks[ref])), how, "reference")


def user_threshold(value: float, what: str) -> Threshold:
    """A cut typed in by the user."""
    return Threshold(float(value), f"{what} set by the user", "user")
