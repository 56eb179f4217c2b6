"""The decision model: a policy (what the user asked for) becomes thresholds and verdicts.

:class:`DecisionPolicy` is what the user chose: ``auto`` / ``max-f1`` / a value for the image
cut, ``auto`` / a value for the pixel cut, the minimum defect area, and the known-good parts.
:func:`decide` turns it into a :class:`Decision` for one scored run; the app's list, 2D contour,
3D grey-out, exported masks and areas, the CLI and the report all read that one object.
Ground truth is used only for ``max-f1`` (on request) and for :func:`outcome` (counts of false
rejects and escapes, shown next to the verdicts), never for the default cuts.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import cv2
import numpy as np

from engine.decision import thresholds as cuts
from engine.decision.regions import PartDefects, part_defects
from engine.decision.thresholds import Threshold
from engine.errors import InvalidInputError
from engine.session.results import ScoreResult

MIN_AREA_SHARE = 1e-4  # default minimum defect area: 0.01 % of the image (16 px at 400 x 400)
IMAGE_MODES = ("auto", "max-f1")
PIXEL_MODES = ("auto",)


@dataclass(frozen=True)
class DecisionPolicy:
    """How the cuts are chosen.

    Attributes:
        image: "auto" (normal reference), "max-f1" (ground truth, on request) or a value.
        pixel: "auto" (normal reference) or a value in the units of the anomaly maps.
        min_area_px: Regions with fewer pixels are specks; None = 0.01 % of each image.
        min_area_mm2: With XYZ, regions with a smaller surface area are specks too.
        reference: Names of known-good parts; when given they define "normal".
    """

    image: str | float = "auto"
    pixel: str | float = "auto"
    min_area_px: int | None = None
    min_area_mm2: float | None = None
    reference: tuple[str, ...] = ()

    def __post_init__(self) -> None:
        for name, value, modes in (("image", self.image, IMAGE_MODES),
                                   ("pixel", self.pixel, PIXEL_MODES)):  # fmt: skip
            if isinstance(value, str) and value not in modes:
                raise InvalidInputError(
                    f"{name} threshold {value!r} is not one of {', '.join(modes)} or a number"
                )
        if self.min_area_px is not None and self.min_area_px < 0:
            raise InvalidInputError(f"minimum defect area must be >= 0 px; got {self.min_area_px}")
        if self.min_area_mm2 is not None and self.min_area_mm2 < 0:
            raise InvalidInputError(
                f"minimum defect area must be >= 0 mm²; got {self.min_area_mm2}"
            )
        object.__setattr__(self, "reference", tuple(self.reference))

    def replace(self, **changes: object) -> DecisionPolicy:
        """A copy with some fields changed."""
        values = {name: getattr(self, name) for name in self.__dataclass_fields__}
        values.update(changes)
        return DecisionPolicy(**values)  # type: ignore[arg-type]


@dataclass(frozen=True)
class Decision:
    """The thresholds of one run and what follows from them.

    Attributes:
        image: Image cut: a part fails when its image score is ``>=`` it.
        pixel: Pixel cut: map values ``>=`` it are defect pixels.
        min_area_px: Minimum region size in px (None = 0.01 % of each image).
        min_area_mm2: Minimum region surface in mm² (parts with XYZ), or None.
        notes: Lines the user must see (e.g. more than half the batch fails, and why).
        reference: Names of the known-good parts the cuts came from (empty without).
    """

    image: Threshold
    pixel: Threshold
    min_area_px: int | None = None
    min_area_mm2: float | None = None
    notes: tuple[str, ...] = field(default_factory=tuple)
    reference: tuple[str, ...] = ()

    def fails(self, scores: np.ndarray) -> np.ndarray:
        """(N,) bool: which parts fail the image cut."""
        # float64: a float32 array against a Python float would compare in float32 (NEP 50)
        return np.asarray(scores, dtype=np.float64) >= self.image.value

    def verdicts(self, scores: np.ndarray) -> list[str]:
        """ "pass" or "fail" per part."""
        return ["fail" if failed else "pass" for failed in self.fails(scores)]

    def min_area_for(self, image_size: tuple[int, int]) -> int:
        """The minimum region size in px for an image of ``(height, width)``."""
        if self.min_area_px is not None:
            return int(self.min_area_px)
        return max(1, round(MIN_AREA_SHARE * image_size[0] * image_size[1]))

    def thresholds_document(self) -> dict[str, dict[str, object]]:
        """``{"image": {value, how, source}, "pixel": {...}}`` for results.json and reports."""
        return {
            name: {
                "value": cut.value,
                "how": cut.how,
                "source": cut.source,
                "expected_false_reject": cut.expected_false_reject,
            }  # fmt: skip
            for name, cut in (("image", self.image), ("pixel", self.pixel))
        }

    def defects(
        self, result: ScoreResult, index: int, xyz: np.ndarray | None = None
    ) -> PartDefects:
        """The defect regions of one part at its image size (same cut everywhere).

        With 3D the part's foreground (where its scored points lie) bounds the regions.
        """
        return part_defects(
            result.anomaly_map(index),
            self.pixel.value,
            min_area_px=self.min_area_for(result.image_sizes[index]),
            min_area_mm2=self.min_area_mm2,
            xyz=xyz,
            foreground=part_foreground(result, index),
        )


def part_foreground(result: ScoreResult, index: int) -> np.ndarray | None:
    """(H, W) bool: the image pixels whose map cell holds one of the part's scored 3D points.

    None without 3D points (2D runs): then the whole image may hold a defect.
    """
    cloud = result.points[index] if result.points else None
    if cloud is None:
        return None
    grid = result.maps.shape[-1]
    cells = np.zeros(grid * grid, dtype=np.uint8)
    cells[cloud.pixel_index] = 1
    height, width = result.image_sizes[index]
    resized = cv2.resize(
        cells.reshape(grid, grid), (width, height), interpolation=cv2.INTER_NEAREST
    )
    return resized.astype(bool)


def _reference_indices(result: ScoreResult, names: tuple[str, ...]) -> np.ndarray:
    known = {name: i for i, name in enumerate(result.names)}
    missing = [name for name in names if name not in known]
    if missing:
        shown = ", ".join(missing[:3]) + (" ..." if len(missing) > 3 else "")
        raise InvalidInputError(
            f"known-good parts not in this run: {shown}. Score them with the batch "
            "(--reference-good adds them) or unmark them."
        )
    return np.array(sorted(known[name] for name in names), dtype=np.int64)


def _majority_note(decision_image: Threshold, scores: np.ndarray) -> tuple[str, ...]:
    failing = int((np.asarray(scores, dtype=np.float64) >= decision_image.value).sum())
    if scores.size == 0 or failing * 2 <= scores.size:
        return ()
    share = 100.0 * failing / scores.size
    if decision_image.source == "auto":
        why = ("the cut takes the lower half of the batch as normal; if most parts are good, "
               "mark known-good parts so that the cut comes from them")  # fmt: skip
    elif decision_image.source == "reference":
        why = "most parts score above every known-good part"
    else:
        why = f"the image cut was chosen by {decision_image.how}"
    return (f"{failing} of {scores.size} parts fail ({share:.0f} %): more than half; {why}.",)


def decide(result: ScoreResult, policy: DecisionPolicy | None = None) -> Decision:
    """The image and pixel cuts of ``result`` under ``policy`` (default: all automatic).

    Raises:
        InvalidInputError: An empty run, unknown reference parts, or ``max-f1`` without
            ground truth of both classes.
    """
    policy = policy or DecisionPolicy()
    scores = np.asarray(result.image_scores, dtype=np.float64)
    if scores.size == 0:
        raise InvalidInputError("no scored parts to decide on")
    known_good = _reference_indices(result, policy.reference) if policy.reference else None
    if isinstance(policy.image, str) and policy.image == "max-f1":
        image = cuts.max_f1_threshold(scores, result.labels)
    elif isinstance(policy.image, str):
        image = (cuts.image_threshold_auto(scores) if known_good is None
                 else cuts.image_threshold_known_good(scores, known_good))  # fmt: skip
    else:
        image = cuts.user_threshold(float(policy.image), "image cut")
    if isinstance(policy.pixel, str):
        peaks = np.asarray(result.maps, dtype=np.float64).reshape(scores.size, -1).max(axis=1)
        pixel = (cuts.pixel_threshold_auto(scores, peaks) if known_good is None
                 else cuts.pixel_threshold_known_good(peaks, known_good))  # fmt: skip
    else:
        pixel = cuts.user_threshold(float(policy.pixel), "pixel cut")
    return Decision(image, pixel, policy.min_area_px, policy.min_area_mm2,
                    _majority_note(image, scores), policy.reference)  # fmt: skip


@dataclass(frozen=True)
class Outcome:
    """Counts of a decision, and with ground truth its mistakes by name.

    Attributes:
        passed: Parts that pass.
        failed: Parts that fail.
        false_rejects: Good parts (label 0) that fail, by name; None without ground truth.
        escapes: Defective parts (label 1) that pass, by name; None without ground truth.
    """

    passed: int
    failed: int
    false_rejects: tuple[str, ...] | None = None
    escapes: tuple[str, ...] | None = None


def outcome(result: ScoreResult, decision: Decision) -> Outcome:
    """Pass/fail counts; false rejects and escapes where every part has a label."""
    fails = decision.fails(result.image_scores)
    passed, failed = int((~fails).sum()), int(fails.sum())
    labels = result.labels
    if not labels or any(label is None for label in labels):
        return Outcome(passed, failed)
    names = result.names
    false_rejects = tuple(n for n, f, y in zip(names, fails, labels, strict=True) if f and y == 0)
    escapes = tuple(n for n, f, y in zip(names, fails, labels, strict=True) if not f and y == 1)
    return Outcome(passed, failed, false_rejects, escapes)
