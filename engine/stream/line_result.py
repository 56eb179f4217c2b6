"""The parts of a stream as one :class:`ScoreResult`, so every batch view reads them unchanged.

The app's ranked list, 2D and 3D views, decision panel and exports all take a ScoreResult and
a Decision; a stream's recent parts become one here (newest last, as they arrived), and the
recipe's cuts become the Decision (:func:`line_decision`).
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from engine.decision.model import Decision
from engine.session.results import PointScores, ScoreResult
from engine.stream.scorer import StreamedPart, StreamScorer


def line_result(parts: Sequence[StreamedPart], scorer: StreamScorer) -> ScoreResult:
    """A ScoreResult of ``parts`` (in the given order) as ``scorer`` scored them."""
    size = scorer.config.eval_size
    maps = np.stack([p.anomaly_map() for p in parts]) if parts else np.zeros((0, size, size))
    modality_maps: dict[str, np.ndarray] = {}
    if parts and parts[0].result.modality_maps:
        for name in parts[0].result.modality_maps:
            modality_maps[name] = np.stack(
                [p.result.modality_maps[name].cpu().numpy() for p in parts]
            ).astype(np.float32)
    backbone = scorer.backbone.info if scorer.backbone is not None else None
    backbone_3d = scorer.backbone_3d.info if scorer.backbone_3d is not None else None
    return ScoreResult(
        samples=[p.sample for p in parts],
        image_sizes=[tuple(p.features.image_size) for p in parts],
        modality=scorer.modality,
        image_scores=np.array([p.score for p in parts], dtype=np.float32),
        max_scores=np.array([p.result.raw for p in parts], dtype=np.float32),
        maps=maps.astype(np.float32),
        config=scorer.config,
        backbone=backbone,
        backbone_3d=backbone_3d,
        modality_maps=modality_maps,
        points=[_points(p) for p in parts],
        timings={"stream scoring (mean per part)": _mean_seconds(parts)},
    )


def _points(part: StreamedPart) -> PointScores | None:
    cloud, scores = part.features.cloud, part.result.point_scores
    if cloud is None or scores is None:
        return None
    return PointScores(cloud.xyz, scores.cpu().numpy(), cloud.pixel_index.cpu().numpy())


def _mean_seconds(parts: Sequence[StreamedPart]) -> float:
    return float(np.mean([p.seconds for p in parts])) if parts else 0.0


def line_decision(scorer: StreamScorer) -> Decision:
    """The recipe's cuts (as the scorer holds them now) as a :class:`Decision`."""
    pixel = scorer.pixel_cut if scorer.pixel_cut is not None else scorer.image_cut
    return Decision(scorer.image_cut, pixel)
