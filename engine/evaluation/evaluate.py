"""Scoring a result against ground truth on the map grid (docs/method.md §12)."""

from __future__ import annotations

import numpy as np
from PIL import Image

from engine.data.readers import read_mask
from engine.evaluation.metrics import compute_metrics
from engine.session.results import ScoreResult


def mask_at_size(mask: np.ndarray, size: int) -> np.ndarray:
    """Resize a bool mask like the reference: PIL bilinear (antialiased), then > 0.5."""
    image = Image.fromarray(mask.astype(np.uint8) * 255)
    resized = np.asarray(image.resize((size, size), Image.Resampling.BILINEAR), dtype=np.float32)
    return resized / 255.0 > 0.5


def ground_truth_masks(result: ScoreResult, size: int) -> tuple[np.ndarray, np.ndarray]:
    """Masks at ``size`` for the samples whose pixel ground truth is known.

    A normal sample without a mask file has an all-zero mask; a defective sample without one
    is left out of the pixel metrics (its defect pixels are unknown).

    Returns:
        (indices, masks): indices into ``result.samples`` and (M, size, size) bool masks.
    """
    indices, masks = [], []
    for index, sample in enumerate(result.samples):
        if sample.mask_path is not None:
            mask = read_mask(sample.mask_path, result.image_sizes[index])
            masks.append(mask_at_size(mask, size))
        elif sample.label == 0:
            masks.append(np.zeros((size, size), dtype=bool))
        else:
            continue
        indices.append(index)
    stacked = np.stack(masks) if masks else np.zeros((0, size, size), dtype=bool)
    return np.asarray(indices, dtype=int), stacked


def _metrics(
    result: ScoreResult, scores: np.ndarray, maps: np.ndarray, truth: tuple[np.ndarray, np.ndarray]
) -> dict[str, float]:
    labelled = [i for i, label in enumerate(result.labels) if label is not None]
    if not labelled:
        return {}
    labels = np.asarray([result.labels[i] for i in labelled])
    indices, masks = truth
    if len(indices) == 0 or not masks.any():
        return compute_metrics(labels, scores[labelled])
    return compute_metrics(labels, scores[labelled], masks, maps[indices])


def evaluate_all(result: ScoreResult) -> dict[str, dict[str, float]]:
    """Metrics of the fused result (``metrics``) and, when both modalities ran, of each one
    alone (``metrics_2d``, ``metrics_3d``), computed on the same ground truth."""
    truth = ground_truth_masks(result, result.maps.shape[-1])
    out = {"metrics": _metrics(result, result.image_scores, result.maps, truth)}
    for name, maps in result.modality_maps.items():
        scores = result.modality_scores[name]
        out[f"metrics_{name}"] = _metrics(result, scores, maps, truth)
    return out
