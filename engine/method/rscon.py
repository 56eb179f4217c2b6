"""RsCon: re-scoring with constrained neighbourhoods (docs/method.md §8).

Each image score is smoothed with the scores of the samples whose *anomaly-salient feature*
(the feature of its highest-scoring patch) is most similar. The final score is the mean of the
window-1 and window-k propagations of the min-max normalised scores.
"""

from __future__ import annotations

import torch


def salient_features(features: torch.Tensor, patch_scores: torch.Tensor) -> torch.Tensor:
    """Feature of each sample's highest-scoring patch.

    Args:
        features: (N, L, C) aggregated features of the chosen layer.
        patch_scores: (N, L) patch anomaly scores.

    Returns:
        (N, C) salient features.
    """
    top = patch_scores.argmax(dim=1)
    return features[torch.arange(features.shape[0], device=features.device), top]


def propagate(scores: torch.Tensor, similarity: torch.Tensor, window: int) -> torch.Tensor:
    """Average of the scores of each row's ``window`` most similar samples, weighted by similarity.

    Args:
        scores: (N,) scores to propagate.
        similarity: (N, N) similarity matrix W (self included, as in the reference).
        window: Neighbourhood size k, clipped to N.

    Returns:
        (N,) propagated scores. A row whose kept weights sum to <= 0 keeps its own score,
        because normalising by a non-positive sum would flip or explode it.
    """
    window = max(1, min(window, similarity.shape[0]))
    top = torch.topk(similarity, window, dim=1)
    weight_sum = top.values.sum(dim=1)
    propagated = (top.values * scores[top.indices]).sum(dim=1) / weight_sum.clamp_min(1e-12)
    return torch.where(weight_sum > 0, propagated, scores)


def rscon(image_scores: torch.Tensor, salient: torch.Tensor, window: int = 7) -> torch.Tensor:
    """Re-scored image scores: ½ (propagation with k=1 + propagation with k=window).

    Args:
        image_scores: (N,) raw image scores (max of each anomaly map).
        salient: (N, D) anomaly-salient features.
        window: RsCon window k (paper default 7).

    Returns:
        (N,) re-scored values in [0, 1] (rankings are what matter).
    """
    lo, hi = image_scores.min(), image_scores.max()
    span = hi - lo
    if span <= 0:
        return torch.zeros_like(image_scores)
    normalised = (image_scores - lo) / span
    similarity = salient @ salient.T
    return 0.5 * (propagate(normalised, similarity, 1) + propagate(normalised, similarity, window))
