"""Thresholds by hand: robust cut, lower half, quarter peaks, known-good, max-F1."""

from __future__ import annotations

import numpy as np
import pytest

from engine.decision import thresholds as cuts
from engine.errors import InvalidInputError


def test_robust_cut_by_hand():
    # median 3, |x - 3| = 2 1 0 1 7 -> MAD 1 -> 3 + 3 * 1.4826 * 1
    assert cuts.robust_cut([1, 2, 3, 4, 10]) == pytest.approx(3 + 3 * 1.4826)


def test_robust_cut_without_spread_falls_back():
    assert cuts.robust_cut([1, 1, 1, 1, 5]) == pytest.approx(1 + 3 * 1.6)  # std of the five
    cut = cuts.robust_cut([2.0, 2.0, 2.0])
    assert cut > 2.0 and cut == pytest.approx(2.0)  # identical scores all pass


def test_robust_cut_rejects_bad_input():
    with pytest.raises(InvalidInputError):
        cuts.robust_cut([])
    with pytest.raises(InvalidInputError):
        cuts.robust_cut([1.0, np.nan])


def test_lowest_scoring_takes_the_share_but_at_least_three_and_keeps_order_on_ties():
    scores = [5, 1, 4, 1, 3, 9, 7, 8]
    assert list(cuts.lowest_scoring(scores, 0.25)) == [1, 3, 4]  # ceil(2) -> 3 at least
    assert list(cuts.lowest_scoring(scores, 0.5)) == [1, 3, 4, 2]
    assert list(cuts.lowest_scoring([2.0, 1.0], 0.5)) == [1, 0]  # fewer than 3: all


def test_auto_image_cut_uses_the_lower_half_only():
    # lower half = [1, 2, 3, 4, 10]: robust cut 3 + 3 * 1.4826; the upper half cannot move it
    lower = [1, 2, 3, 4, 10]
    for upper in ([20, 21, 22, 23, 24], [100, 200, 300, 400, 500]):
        cut = cuts.image_threshold_auto(lower + upper)
        assert cut.value == pytest.approx(3 + 3 * 1.4826)
        assert cut.source == "auto" and "5 lowest-scoring of 10" in cut.how


def test_known_good_image_cut_is_just_above_their_highest_score_with_its_rate():
    scores = np.array([0.2, 0.5, 0.3, 0.9], dtype=np.float32)
    cut = cuts.image_threshold_known_good(scores, [0, 2])
    assert cut.value > scores[2] and np.float32(cut.value) > scores[2]
    assert not (scores[[0, 2]] >= cut.value).any() and (scores[[1, 3]] >= cut.value).all()
    assert cut.expected_false_reject == pytest.approx(1 / 3) and "1/3" in cut.how
    with pytest.raises(InvalidInputError):
        cuts.image_threshold_known_good(scores, [])


def test_auto_pixel_cut_is_the_highest_peak_of_the_lowest_quarter():
    scores = [0.1, 0.2, 0.3, 0.9, 0.8, 0.7, 0.6, 0.5, 0.4, 0.35, 0.95, 0.99]
    peaks = [0.30, 0.50, 0.40, 9, 9, 9, 9, 9, 9, 9, 9, 9]  # quarter = the 3 lowest scores
    cut = cuts.pixel_threshold_auto(scores, peaks)
    assert cut.value == pytest.approx(0.5) and cut.value > 0.5  # that peak itself is not defect
    assert "3 lowest-scoring of 12" in cut.how


def test_known_good_pixel_cut_is_the_median_of_their_peaks():
    cut = cuts.pixel_threshold_known_good([0.3, 0.9, 0.5, 0.7], [0, 2, 3])
    assert cut.value == pytest.approx(0.5) and cut.source == "reference"


def test_max_f1_needs_both_classes_and_ignores_unknown_labels():
    cut = cuts.max_f1_threshold([0.1, 0.5, 0.9], [0, None, 1])
    assert cut.value == pytest.approx(0.9) and "2 labelled" in cut.how
    with pytest.raises(InvalidInputError, match="both good and defective"):
        cuts.max_f1_threshold([0.1, 0.5], [0, 0])


def test_threshold_refuses_non_finite_values_and_unknown_sources():
    with pytest.raises(InvalidInputError):
        cuts.Threshold(float("nan"), "x", "auto")
    with pytest.raises(ValueError):
        cuts.Threshold(1.0, "x", "guess")


def test_robust_cut_uses_the_mad_also_when_it_is_below_one():
    # median 0.3, |x - 0.3| = .2 .1 0 .1 .7 -> MAD 0.1 -> 0.3 + 3 * 1.4826 * 0.1
    assert cuts.robust_cut([0.1, 0.2, 0.3, 0.4, 1.0]) == pytest.approx(0.3 + 0.44478, rel=1e-12)


def test_robust_cut_computes_in_double_precision():
    # float32 input: std of [1, 1, 1, 1, 5] is 1.6 in float64 (1.6000000238 in float32)
    scores = np.array([1.0, 1.0, 1.0, 1.0, 5.0], dtype=np.float32)
    assert cuts.robust_cut(scores) == pytest.approx(1.0 + 3 * 1.6, rel=1e-12)
