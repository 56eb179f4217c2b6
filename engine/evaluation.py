"""Scoring a result against ground truth at the evaluation resolution (Part A §9)."""

from __future__ import annotations

import numpy as np
import torch
from PIL import Image

from engine.data.readers import read_mask
from engine.maps import upsample_maps
from engine.metrics import compute_metrics
from engine.results import ScoreResult


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


def evaluate(result: ScoreResult, size: int | None = None) -> dict[str, float]:
    """Image and pixel metrics for the labelled samples of ``result``.

    Returns:
        Metric name -> fraction in [0, 1]; empty when there is no ground truth, and without
        the keys that are undefined (e.g. pixel metrics when no sample has a defect mask).
    """
    size = size or result.config.eval_size
    labelled = [i for i, label in enumerate(result.labels) if label is not None]
    if not labelled:
        return {}
    labels = np.asarray([result.labels[i] for i in labelled])
    scores = result.image_scores[labelled]
    indices, masks = ground_truth_masks(result, size)
    if len(indices) == 0 or not masks.any():
        return compute_metrics(labels, scores)
    maps = upsample_maps(torch.from_numpy(result.patch_maps[indices]), size).numpy()
    return compute_metrics(labels, scores, masks, maps)
