"""The decision model: a policy becomes thresholds, verdicts, notes; GT only on request."""

from __future__ import annotations

import numpy as np
import pytest

from engine.decision import DecisionPolicy, decide, outcome
from engine.errors import InvalidInputError
from tests.engine.decision.support import make_result

SCORES = [0.10, 0.12, 0.11, 0.13, 0.09, 0.14, 0.80, 0.90, 0.12, 0.85]
LABELS = [0, 0, 0, 0, 0, 0, 1, 1, 1, 0]


def test_default_decision_ignores_the_ground_truth():
    plain = decide(make_result(SCORES))
    labelled = decide(make_result(SCORES, labels=LABELS))
    assert plain.image.value == labelled.image.value
    assert plain.pixel.value == labelled.pixel.value
    assert plain.image.source == "auto" == plain.pixel.source


def test_default_verdicts_fail_the_outliers_only():
    result = make_result(SCORES)
    decision = decide(result)
    assert decision.verdicts(result.image_scores) == ["fail" if s > 0.5 else "pass" for s in SCORES]
    assert decision.notes == ()


def test_more_than_half_failing_gives_one_visible_note():
    result = make_result(SCORES)
    decision = decide(result, DecisionPolicy(image=0.105))
    assert len(decision.notes) == 1 and "8 of 10 parts fail (80 %)" in decision.notes[0]
    assert decide(result, DecisionPolicy(image=0.5)).notes == ()  # 3 of 10: no note


def test_auto_never_silently_rejects_everything():
    rng = np.random.default_rng(0)
    for _ in range(50):
        scores = list(rng.gamma(rng.uniform(0.5, 5), size=int(rng.integers(3, 60))))
        result = make_result(scores)
        decision = decide(result)
        failed = int(decision.fails(result.image_scores).sum())
        assert failed < len(scores)
        assert failed * 2 <= len(scores) or decision.notes


def test_max_f1_only_when_asked_and_outcome_names_the_mistakes():
    result = make_result(SCORES, labels=LABELS)
    decision = decide(result, DecisionPolicy(image="max-f1"))
    assert decision.image.source == "max-f1"
    counts = outcome(result, decision)
    assert counts.failed + counts.passed == len(SCORES)
    assert set(counts.false_rejects or ()) == {"p9"} and set(counts.escapes or ()) == {"p8"}
    with pytest.raises(InvalidInputError):
        decide(make_result(SCORES), DecisionPolicy(image="max-f1"))  # no ground truth


def test_outcome_without_labels_has_counts_only():
    result = make_result(SCORES)
    counts = outcome(result, decide(result))
    assert (counts.passed, counts.failed) == (7, 3)
    assert counts.false_rejects is None and counts.escapes is None


def test_known_good_parts_define_the_cuts_and_the_expected_rate():
    result = make_result(SCORES)
    decision = decide(result, DecisionPolicy(reference=("p0", "p1", "p3")))
    assert decision.image.source == "reference" == decision.pixel.source
    assert decision.image.value == pytest.approx(0.13) and decision.image.value > np.float32(0.13)
    assert decision.image.expected_false_reject == pytest.approx(0.25)
    assert "1/4 = 25 %" in decision.image.how and decision.reference == ("p0", "p1", "p3")
    assert decision.pixel.how == "median map peak of the 3 known-good parts"
    with pytest.raises(InvalidInputError, match="not in this run: nope"):
        decide(result, DecisionPolicy(reference=("nope",)))


def test_user_values_are_kept_as_typed():
    result = make_result(SCORES)
    decision = decide(result, DecisionPolicy(image=0.5, pixel=0.3))
    assert (decision.image.value, decision.pixel.value) == (0.5, 0.3)
    assert decision.image.source == "user" == decision.pixel.source


def test_policy_rejects_unknown_words_and_negative_areas():
    with pytest.raises(InvalidInputError):
        DecisionPolicy(image="best")
    with pytest.raises(InvalidInputError):
        DecisionPolicy(pixel="max-f1")
    with pytest.raises(InvalidInputError):
        DecisionPolicy(min_area_px=-1)
    assert DecisionPolicy().replace(image=0.2).image == 0.2


def test_default_minimum_area_scales_with_the_image():
    decision = decide(make_result(SCORES))
    assert decision.min_area_for((400, 400)) == 16
    assert decision.min_area_for((10, 10)) == 1
    assert decide(make_result(SCORES), DecisionPolicy(min_area_px=5)).min_area_for((400, 400)) == 5


def test_thresholds_document_has_value_and_how():
    document = decide(make_result(SCORES)).thresholds_document()
    assert set(document) == {"image", "pixel"}
    assert {"value", "how"} <= set(document["image"]) and isinstance(document["pixel"]["how"], str)


def test_defects_stay_on_the_part_where_its_3d_foreground_is_known():
    from dataclasses import replace

    from engine.session.results import PointScores

    result = make_result(SCORES)  # 16 x 16 maps, a blob at rows/cols 4..6 of every part
    grid = 16
    left = np.array([r * grid + c for r in range(grid) for c in range(5)], dtype=np.int64)
    cloud = PointScores(np.zeros((left.size, 3), np.float32), np.zeros(left.size, np.float32), left)
    with_points = replace(result, points=[cloud] * len(SCORES))
    decision = decide(result, DecisionPolicy(pixel=0.5, min_area_px=1))
    assert decision.defects(result, 7).area_px == 9  # 2D: the whole blob
    assert decision.defects(with_points, 7).area_px == 3  # only column 4 is on the part


def test_a_single_part_gets_a_decision_and_minimum_areas_pass_through():
    decision = decide(make_result([0.4]), DecisionPolicy(min_area_px=3, min_area_mm2=2.5))
    assert decision.verdicts(np.array([0.4])) == ["pass"]  # no spread: the lone part passes
    assert (decision.min_area_px, decision.min_area_mm2) == (3, 2.5)


def test_user_cuts_are_described_as_such():
    decision = decide(make_result(SCORES), DecisionPolicy(image=0.5, pixel=0.3))
    assert decision.image.how == "image cut set by the user"
    assert decision.pixel.how == "pixel cut set by the user"
