"""Thresholds by hand: the MAD branch at small scales, float64 arithmetic, messages, pixel cut."""

from __future__ import annotations

import numpy as np
import pytest

from engine.errors import InvalidInputError
from engine.evaluation.thresholds import pixel_threshold, robust_cut, suggested_threshold


def test_robust_cut_uses_the_mad_also_when_it_is_below_one() -> None:
    # median 0.3, |x - 0.3| = .2 .1 0 .1 .7 -> MAD 0.1 -> 0.3 + 3 * 1.4826 * 0.1
    assert robust_cut([0.1, 0.2, 0.3, 0.4, 1.0]) == pytest.approx(0.3 + 3 * 0.14826, rel=1e-12)


def test_robust_cut_computes_in_double_precision() -> None:
    # float32 input: std of [1, 1, 1, 1, 5] is 1.6 in float64 (1.6000000238 in float32)
    scores = np.array([1.0, 1.0, 1.0, 1.0, 5.0], dtype=np.float32)
    assert robust_cut(scores) == pytest.approx(1.0 + 3 * 1.6, rel=1e-12)


def test_robust_cut_messages() -> None:
    with pytest.raises(
        InvalidInputError, match="^a threshold needs at least one score; found none$"
    ):
        robust_cut(np.zeros((0, 3)))
    with pytest.raises(
        InvalidInputError, match="^scores must be finite to suggest a threshold; found NaN or inf$"
    ):
        robust_cut([1.0, np.inf])


def test_suggested_threshold_says_how_without_labels() -> None:
    value, how = suggested_threshold([0.1, 0.2, 0.3, 0.4, 1.0], [1, 1, None, 1, 1])
    assert value == pytest.approx(0.3 + 3 * 0.14826, rel=1e-12)
    assert how == (
        "robust cut: median + 3\u00b71.4826\u00b7MAD of 5 scores (no labels of both classes)"
    )


def test_suggested_threshold_refuses_labels_of_another_length() -> None:
    with pytest.raises(ValueError):
        suggested_threshold([0.1, 0.2, 0.9], [0, 1])


def test_pixel_cut_is_taken_on_float32_maps() -> None:
    # the masks are cut from float32 maps, so the cut is computed from the float32 values
    maps = np.array([[[0.1, 0.2, 0.3, 0.4, 1.0]]], dtype=np.float64)
    value, _ = pixel_threshold(maps)
    on_float32 = robust_cut(maps.astype(np.float32))
    assert on_float32 != robust_cut(maps)  # the premise: float32 rounding moves the cut
    assert value == on_float32
