"""Typed, numpy-only results of a scoring run (what the CLI writes and the GUI shows)."""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from engine.backbones.base import BackboneInfo
from engine.config import MuscConfig
from engine.data.samples import Sample
from engine.maps import map_at_size


@dataclass(frozen=True)
class ScoreResult:
    """Scores of every usable sample, in dataset order.

    Attributes:
        samples: The scored samples (unreadable ones are left out).
        image_sizes: Original (height, width) of each sample's image.
        image_scores: (N,) final scores after RsCon; higher = more anomalous.
        max_scores: (N,) maximum of each anomaly map, before RsCon.
        patch_maps: (N, h, w) anomaly scores on the token grid.
        config: The configuration that produced these numbers.
        backbone: Which network and weights were used.
        timings: Seconds spent per stage.
    """

    samples: list[Sample]
    image_sizes: list[tuple[int, int]]
    image_scores: np.ndarray
    max_scores: np.ndarray
    patch_maps: np.ndarray
    config: MuscConfig
    backbone: BackboneInfo
    timings: dict[str, float] = field(default_factory=dict)

    @property
    def names(self) -> list[str]:
        """Sample names in dataset order."""
        return [s.name for s in self.samples]

    @property
    def labels(self) -> list[int | None]:
        """Ground-truth labels (None where unknown)."""
        return [s.label for s in self.samples]

    def ranking(self) -> np.ndarray:
        """Sample indices ordered by score, highest first (ties keep dataset order)."""
        return np.argsort(-self.image_scores, kind="stable")

    def anomaly_map(self, index: int, size: tuple[int, int] | None = None) -> np.ndarray:
        """Anomaly map of one sample at ``size`` (default: its original image size)."""
        height, width = size if size is not None else self.image_sizes[index]
        return map_at_size(self.patch_maps[index], height, width)
