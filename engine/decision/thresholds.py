"""Image and pixel thresholds, each with its value and a one-line account of how it was chosen.

Without labels (the default; a production line has none) both cuts come from a **normal
reference**: the parts the user marked as known-good, or else the lowest-scoring quarter of
the batch (at least 3 parts), the parts most likely normal (docs/method.md §11):

* image cut = the highest image score in the reference: a part fails when it scores above every
  reference part. With ``n`` known-good parts, a new normal part exceeds the highest of them with
  probability ``1 / (n + 1)`` (order statistics), the expected false-reject rate shown to the user.
* pixel cut = the median, over the reference, of each part's map maximum: the peak a typical
  normal part reaches. Measured on the dev data (MVTec 3D-AD cable_gland 2D and 2D+3D, tire 2D),
  the pixel F1 at this cut is 0.98-0.99 of the best achievable F1, where the old all-pixel
  ``median + 3 MAD`` cut reached 0.07-0.28.

With ground truth and only when asked, the image cut is the max-F1 threshold (``max-f1``).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from engine.errors import InvalidInputError
from engine.evaluation.metrics import suggest_threshold

REFERENCE_SHARE = 0.25  # the lowest-scoring share of a batch taken as normal without labels
MIN_REFERENCE = 3  # fewer parts than this cannot describe "normal"
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


def lowest_scoring(scores: object, share: float = REFERENCE_SHARE) -> np.ndarray:
    """Indices of the lowest-scoring ``share`` of the parts (at least 3, at most all), low first.

    Ties keep dataset order, so the choice is reproducible.
    """
    array = _finite(scores, "score").ravel()
    count = min(array.size, max(MIN_REFERENCE, math.ceil(share * array.size)))
    return np.argsort(array, kind="stable")[:count]


def _reference_words(reference: np.ndarray, known_good: bool, total: int) -> str:
    if known_good:
        return f"the {reference.size} known-good parts"
    return f"the {reference.size} lowest-scoring of {total} parts (taken as normal)"


def image_threshold_from_reference(
    scores: object, reference: object, *, known_good: bool
) -> Threshold:
    """Image cut = highest score among the reference parts (see the module docstring).

    Args:
        scores: (N,) image scores of the batch.
        reference: Indices of the normal reference parts.
        known_good: Whether the reference was marked by the user (enables the expected
            false-reject rate) or picked as the lowest-scoring parts.
    """
    array = _finite(scores, "score").ravel()
    ref = np.asarray(reference, dtype=np.int64).ravel()
    if ref.size == 0:
        raise InvalidInputError("the normal reference is empty; mark at least one known-good part")
    # nextafter: the highest reference part itself passes (fail means score >= cut)
    value = float(np.nextafter(array[ref].max(), np.inf))
    words = _reference_words(ref, known_good, array.size)
    if known_good:
        rate = 1.0 / (ref.size + 1)
        how = (f"above every one of {words}; a new good part fails with chance "
               f"1/{ref.size + 1} = {100 * rate:.0f} %")  # fmt: skip
        return Threshold(value, how, "reference", rate)
    return Threshold(value, f"above every one of {words}", "auto")


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


def pixel_threshold_from_reference(
    map_maxima: object, reference: object, *, known_good: bool, total: int
) -> Threshold:
    """Pixel cut = median over the reference parts of each part's map maximum.

    Args:
        map_maxima: (N,) maximum of each part's anomaly map.
        reference: Indices of the normal reference parts.
        known_good: Whether the reference was marked by the user.
        total: Number of parts in the batch (for the account).
    """
    maxima = _finite(map_maxima, "map value").ravel()
    ref = np.asarray(reference, dtype=np.int64).ravel()
    if ref.size == 0:
        raise InvalidInputError("the normal reference is empty; mark at least one known-good part")
    value = float(np.median(maxima[ref]))
    words = _reference_words(ref, known_good, total)
    source = "reference" if known_good else "auto"
    return Threshold(value, f"median peak of the maps of {words}", source)


def user_threshold(value: float, what: str) -> Threshold:
    """A cut typed in by the user."""
    return Threshold(float(value), f"{what} set by the user", "user")
