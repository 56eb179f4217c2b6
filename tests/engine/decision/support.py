"""A hand-made ScoreResult for decision tests: known scores, maps and labels."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from engine.config import MuscConfig
from engine.data.samples import Sample
from engine.session.results import ScoreResult


def make_result(
    scores: list[float],
    peaks: list[float] | None = None,
    labels: list[int | None] | None = None,
    size: int = 16,
    xyz_paths: list[Path | None] | None = None,
) -> ScoreResult:
    """Parts named p0, p1, ...; each map is 0.1 with a 3x3 blob of height ``peak``."""
    peaks = peaks if peaks is not None else scores
    labels = labels if labels is not None else [None] * len(scores)
    xyz_paths = xyz_paths if xyz_paths is not None else [None] * len(scores)
    maps = np.full((len(scores), size, size), 0.1, dtype=np.float32)
    for i, peak in enumerate(peaks):
        maps[i, 4:7, 4:7] = peak
    samples = [
        Sample(f"p{i}", Path(f"/nowhere/p{i}.png"), xyz_path=xyz, label=label)
        for i, (label, xyz) in enumerate(zip(labels, xyz_paths, strict=True))
    ]
    return ScoreResult(
        samples=samples,
        image_sizes=[(size, size)] * len(scores),
        modality="2d" if all(x is None for x in xyz_paths) else "2d+3d",
        image_scores=np.array(scores, dtype=np.float32),
        max_scores=np.array(peaks, dtype=np.float32),
        maps=maps,
        config=MuscConfig(),
        backbone=None,
    )
