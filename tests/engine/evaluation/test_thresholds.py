"""Thresholds: max-F1 with labels, the robust cut without, by hand-computed numbers."""

from __future__ import annotations

import numpy as np
import pytest

from engine.errors import InvalidInputError
from engine.evaluation.thresholds import pixel_threshold, robust_cut, suggested_threshold


def test_robust_cut_by_hand():
    # median 3, |x - 3| = 2 1 0 1 7 -> MAD 1 -> 3 + 3 * 1.4826 * 1
    assert robust_cut([1, 2, 3, 4, 10]) == pytest.approx(3 + 3 * 1.4826)


def test_robust_cut_without_spread_falls_back():
    # MAD 0 but std > 0: median 1, std of [1,1,1,1,5] = 1.6
    assert robust_cut([1, 1, 1, 1, 5]) == pytest.approx(1 + 3 * 1.6)
    # no spread at all: identical scores stay below the cut
    cut = robust_cut([2.0, 2.0, 2.0])
    assert cut > 2.0 and cut == pytest.approx(2.0)


def test_robust_cut_rejects_bad_input():
    with pytest.raises(InvalidInputError):
        robust_cut([])
    with pytest.raises(InvalidInputError):
        robust_cut([1.0, np.nan])


def test_suggested_threshold_with_labels_is_max_f1():
    scores = [0.1, 0.2, 0.3, 0.8, 0.9]
    value, how = suggested_threshold(scores, [0, 0, 0, 1, 1])
    assert value == pytest.approx(0.8)
    assert "F1" in how


def test_suggested_threshold_ignores_unknown_labels():
    value, how = suggested_threshold([0.1, 0.5, 0.9], [0, None, 1])
    assert value == pytest.approx(0.9) and "2 labelled" in how


def test_suggested_threshold_one_class_uses_robust_cut():
    value, how = suggested_threshold([1, 2, 3, 4, 10], [0, 0, 0, 0, 0])
    assert value == pytest.approx(3 + 3 * 1.4826)
    assert "MAD" in how
    assert suggested_threshold([1, 2, 3, 4, 10])[0] == pytest.approx(value)


def test_pixel_threshold():
    maps = np.zeros((2, 4, 4), dtype=np.float32)
    maps[0, 0, :] = [1, 2, 3, 4]
    value, how = pixel_threshold(maps)
    assert value == pytest.approx(3 * float(maps.astype(np.float64).std()))
    assert "MAD" in how
    assert pixel_threshold(maps, value=0.25) == (0.25, "pixel cut chosen by the user")
