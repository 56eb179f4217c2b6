"""RsCon (docs/method.md §8) on hand-computed graphs, with raw scores whose minimum is not zero.

s = (c - min c) / (max c - min c); P_k keeps the k most similar samples of each row of
W = F F^T (self included when it is among them) and is row-normalised; final = (P_1 s + P_k s) / 2.
"""

from __future__ import annotations

import pytest
import torch

from engine.method.rscon import propagate, rscon, salient_features


def test_min_max_normalisation_with_a_non_zero_minimum() -> None:
    salient = torch.tensor([[1.0, 0.0], [0.8, 0.6], [0.0, 1.0], [0.6, 0.8]])
    # W = [[1, .8, 0, .6], [.8, 1, .6, .96], [0, .6, 1, .8], [.6, .96, .8, 1]]
    scores = torch.tensor([2.0, 3.0, 4.0, 6.0])  # s = (c - 2) / 4 = [0, .25, .5, 1]
    s = [0.0, 0.25, 0.5, 1.0]
    # window 2: each row keeps itself (weight 1) and its most similar other sample
    expected = [
        0.5 * (s[0] + (1.0 * s[0] + 0.8 * s[1]) / 1.8),
        0.5 * (s[1] + (1.0 * s[1] + 0.96 * s[3]) / 1.96),
        0.5 * (s[2] + (1.0 * s[2] + 0.8 * s[3]) / 1.8),
        0.5 * (s[3] + (1.0 * s[3] + 0.96 * s[1]) / 1.96),
    ]
    assert rscon(scores, salient, window=2).tolist() == pytest.approx(expected, abs=1e-6)
    # shifting all raw scores does not change anything; dividing by the max alone would
    assert rscon(scores + 100.0, salient, window=2).tolist() == pytest.approx(expected, abs=1e-5)


def test_window_one_is_exactly_the_min_max_normalised_scores_for_unit_features() -> None:
    salient = torch.eye(3)
    scores = torch.tensor([5.0, 7.0, 6.0])
    assert rscon(scores, salient, window=1).tolist() == pytest.approx([0.0, 1.0, 0.5])


def test_non_unit_features_can_take_another_samples_score() -> None:
    # W = [[4, 2, 0], [2, 1.25, .5], [0, .5, 1]]: row 1's largest entry is sample 0, not itself
    salient = torch.tensor([[2.0, 0.0], [1.0, 0.5], [0.0, 1.0]])
    scores = torch.tensor([1.0, 3.0, 5.0])  # s = [0, .5, 1]
    top1 = [0.0, 0.0, 1.0]
    top2 = [(4 * 0.0 + 2 * 0.5) / 6, (2 * 0.0 + 1.25 * 0.5) / 3.25, (1 * 1.0 + 0.5 * 0.5) / 1.5]
    expected = [0.5 * (a + b) for a, b in zip(top1, top2, strict=True)]
    assert rscon(scores, salient, window=2).tolist() == pytest.approx(expected, abs=1e-6)
    # window 3 = all samples, weighted by similarity
    top3 = [(4 * 0 + 2 * 0.5 + 0 * 1) / 6, (2 * 0 + 1.25 * 0.5 + 0.5 * 1) / 3.75, 1.25 / 1.5]
    expected3 = [0.5 * (a + b) for a, b in zip(top1, top3, strict=True)]
    assert rscon(scores, salient, window=3).tolist() == pytest.approx(expected3, abs=1e-6)
    # a window larger than N is clipped to N
    assert rscon(scores, salient, window=50).tolist() == pytest.approx(expected3, abs=1e-6)


def test_propagate_by_hand() -> None:
    similarity = torch.tensor([[3.0, 1.0, 2.0], [1.0, 3.0, 0.5], [2.0, 0.5, 3.0]])
    scores = torch.tensor([0.0, 0.6, 0.9])
    expected = [(3 * 0.0 + 2 * 0.9) / 5, (3 * 0.6 + 1 * 0.0) / 4, (3 * 0.9 + 2 * 0.0) / 5]
    assert propagate(scores, similarity, 2).tolist() == pytest.approx(expected, abs=1e-6)
    assert propagate(scores, similarity, 0).tolist() == pytest.approx([0.0, 0.6, 0.9])  # k >= 1


def test_propagate_keeps_own_score_only_where_weights_sum_to_zero_or_less() -> None:
    similarity = torch.tensor([[1.0, -1.0, 0.5], [-1.0, 1.0, -3.0], [0.5, 0.25, 1.0]])
    scores = torch.tensor([0.2, 0.7, 0.4])
    # row 0: (1 * .2 + .5 * .4) / 1.5; row 1: top 2 are 1 and -1 -> sum 0, keeps .7
    # row 2: (1 * .4 + .5 * .2) / 1.5
    expected = [(0.2 + 0.2) / 1.5, 0.7, (0.4 + 0.1) / 1.5]
    assert propagate(scores, similarity, 2).tolist() == pytest.approx(expected, abs=1e-6)


def test_salient_feature_of_each_sample_by_hand() -> None:
    features = torch.tensor(
        [[[1.0, 0.0], [0.0, 1.0], [0.5, 0.5]], [[2.0, 2.0], [3.0, 3.0], [4.0, 4.0]]]
    )
    scores = torch.tensor([[0.1, 0.3, 0.2], [0.9, 0.1, 0.5]])
    assert salient_features(features, scores).tolist() == [[0.0, 1.0], [2.0, 2.0]]


def test_constant_scores_give_zeros() -> None:
    salient = torch.eye(4)
    assert rscon(torch.full((4,), 3.5), salient).tolist() == [0.0] * 4


def test_propagate_divides_by_weight_sums_below_one() -> None:
    # kept weights sum to 0.5 per row: the average is divided by 0.5, not by 1 or clamped
    similarity = torch.tensor([[0.3, 0.2], [0.1, 0.4]])
    scores = torch.tensor([0.0, 1.0])
    expected = [(0.3 * 0.0 + 0.2 * 1.0) / 0.5, (0.1 * 0.0 + 0.4 * 1.0) / 0.5]
    assert propagate(scores, similarity, 2).tolist() == pytest.approx(expected, abs=1e-6)


def test_default_window_is_the_papers_seven() -> None:
    # nine samples on a quarter circle: windows 7 and 8 keep different neighbours
    angles = torch.linspace(0.0, 1.5, 9)
    salient = torch.stack([angles.cos(), angles.sin()], dim=-1)
    scores = torch.tensor([0.0, 5.0, 1.0, 4.0, 2.0, 8.0, 3.0, 7.0, 6.0])
    default = rscon(scores, salient)
    assert torch.equal(default, rscon(scores, salient, window=7))
    assert not torch.allclose(default, rscon(scores, salient, window=8))
