"""Typed, numpy-only results of a scoring run (what the CLI writes and the GUI shows)."""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import torch
import torch.nn.functional as F

from engine.backbones.base import BackboneInfo, PointBackboneInfo
from engine.config import MuscConfig
from engine.data.samples import Sample


@dataclass(frozen=True)
class PointScores:
    """Per-point 3D anomaly scores of one sample, for a 3D viewer.

    Attributes:
        xyz: (P, 3) float32 foreground points in sensor coordinates (metres).
        scores: (P,) float32 interpolated 3D anomaly score of every point.
        pixel_index: (P,) int64 row-major pixel of every point on the square map grid.
    """

    xyz: np.ndarray
    scores: np.ndarray
    pixel_index: np.ndarray


@dataclass(frozen=True)
class ScoreResult:
    """Scores of every usable sample, in dataset order.

    Attributes:
        samples: The scored samples (unreadable ones are left out).
        image_sizes: Original (height, width) of each sample's image.
        modality: "2d", "3d" or "2d+3d" (what was actually run).
        image_scores: (N,) final scores after RsCon; higher = more anomalous.
        max_scores: (N,) maximum of each anomaly map, before RsCon.
        maps: (N, S, S) final anomaly maps on the square map grid (S = config.eval_size).
        modality_maps: Per modality ("2d", "3d") its own (N, S, S) maps, when both ran.
        modality_scores: Per modality its own RsCon image scores, when both ran.
        points: Per sample its 3D point scores, or None without a usable XYZ map.
        config: The configuration that produced these numbers.
        backbone: The 2D network and weights used (None in 3D-only mode).
        backbone_3d: The 3D network used (None in 2D-only mode).
        timings: Seconds spent per stage.
    """

    samples: list[Sample]
    image_sizes: list[tuple[int, int]]
    modality: str
    image_scores: np.ndarray
    max_scores: np.ndarray
    maps: np.ndarray
    config: MuscConfig
    backbone: BackboneInfo | None
    backbone_3d: PointBackboneInfo | None = None
    modality_maps: dict[str, np.ndarray] = field(default_factory=dict)
    modality_scores: dict[str, np.ndarray] = field(default_factory=dict)
    points: list[PointScores | None] = field(default_factory=list)
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
        """Anomaly map of one sample, bilinearly resized to ``size`` (default: its image size)."""
        height, width = size if size is not None else self.image_sizes[index]
        square = torch.from_numpy(np.array(self.maps[index], dtype=np.float32))[None, None]
        resized = F.interpolate(square, size=(height, width), mode="bilinear", align_corners=False)
        return resized[0, 0].numpy()
