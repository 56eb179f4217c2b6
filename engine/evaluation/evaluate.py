"""Scoring a result against ground truth on the map grid (docs/method.md §12).

A bad ground-truth file never costs the run: its sample is left out of the pixel metrics (the
image metrics still use its label) and the file is reported with its reason.
"""

from __future__ import annotations

import logging
from pathlib import Path

import numpy as np
from PIL import Image

from engine.data.readers import read_mask
from engine.data.samples import Sample, SkippedFile
from engine.errors import InvalidInputError
from engine.evaluation.metrics import compute_metrics
from engine.session.results import ScoreResult

logger = logging.getLogger(__name__)

# A part labelled good whose mask marks more than this share of its pixels is almost surely a
# wrong or inverted mask; counting it as defect pixels would silently mislead the pixel metrics.
GOOD_MASK_LIMIT = 0.5


def mask_at_size(mask: np.ndarray, size: int) -> np.ndarray:
    """Resize a bool mask like the reference: PIL bilinear (antialiased), then > 0.5."""
    image = Image.fromarray(mask.astype(np.uint8) * 255)
    resized = np.asarray(image.resize((size, size), Image.Resampling.BILINEAR), dtype=np.float32)
    return resized / 255.0 > 0.5


def ground_truth_masks(
    result: ScoreResult,
    size: int,
    *,
    skipped: list[SkippedFile] | None = None,
    warnings: list[str] | None = None,
) -> tuple[np.ndarray, np.ndarray]:
    """Masks at ``size`` for the samples whose pixel ground truth is known.

    A normal sample without a mask file has an all-zero mask; a defective sample without one
    is left out of the pixel metrics (its defect pixels are unknown), and so is a sample whose
    mask cannot be read or has the wrong size.

    Args:
        result: The scored samples and their image sizes.
        size: Side of the square map grid.
        skipped: Receives each mask that cannot be used, with its reason; when None they are
            logged as warnings instead.
        warnings: Receives a line per good-labelled part whose mask marks more than half of it;
            when None they are logged.

    Returns:
        (indices, masks): indices into ``result.samples`` and (M, size, size) bool masks.
    """
    indices, masks = [], []
    for index, sample in enumerate(result.samples):
        if sample.mask_path is not None:
            mask = _read_truth(sample, sample.mask_path, result.image_sizes[index], skipped)
            if mask is None:
                continue
            _check_good_mask(sample, mask, warnings)
            masks.append(mask_at_size(mask, size))
        elif sample.label == 0:
            masks.append(np.zeros((size, size), dtype=bool))
        else:
            continue
        indices.append(index)
    stacked = np.stack(masks) if masks else np.zeros((0, size, size), dtype=bool)
    return np.asarray(indices, dtype=int), stacked


def _read_truth(
    sample: Sample, path: Path, shape: tuple[int, int], skipped: list[SkippedFile] | None
) -> np.ndarray | None:
    """The sample's mask, or None after reporting why it cannot be used."""
    try:
        return read_mask(path, shape)
    except InvalidInputError as err:
        fault = str(err).removeprefix(f"{path}: ")  # the path is the SkippedFile's own field
        reason = (
            f"ground-truth mask not used: {fault} Sample {sample.name} is left out of the "
            "pixel metrics; its image label still counts."
        )
        if skipped is None:
            logger.warning("%s: %s", path, reason)
        else:
            skipped.append(SkippedFile(path, reason))
        return None


def _check_good_mask(sample: Sample, mask: np.ndarray, warnings: list[str] | None) -> None:
    share = float(mask.mean())
    if sample.label != 0 or share <= GOOD_MASK_LIMIT:
        return
    line = (
        f"{sample.mask_path}: the ground-truth mask marks {share:.0%} of part {sample.name} as "
        f"defect, but the part is labelled good ({sample.defect_type or 'label 0'}); pixel "
        "metrics count those pixels as defects. Check the mask (inverted?) or the label."
    )
    if warnings is None:
        logger.warning("%s", line)
    else:
        warnings.append(line)


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


def evaluate_all(
    result: ScoreResult,
    *,
    skipped: list[SkippedFile] | None = None,
    warnings: list[str] | None = None,
) -> dict[str, dict[str, float]]:
    """Metrics of the fused result (``metrics``) and, when both modalities ran, of each one
    alone (``metrics_2d``, ``metrics_3d``), computed on the same ground truth.

    Args:
        result: A finished run.
        skipped: Receives the ground-truth masks that cannot be used (see
            :func:`ground_truth_masks`); logged when None.
        warnings: Receives ground-truth sanity warnings; logged when None.
    """
    truth = ground_truth_masks(result, result.maps.shape[-1], skipped=skipped, warnings=warnings)
    out = {"metrics": _metrics(result, result.image_scores, result.maps, truth)}
    for name, maps in result.modality_maps.items():
        scores = result.modality_scores[name]
        out[f"metrics_{name}"] = _metrics(result, scores, maps, truth)
    return out
