"""The cheap last stage: interval average, anomaly maps of both modalities, fusion, RsCon.

Everything here runs from the cached tables of :mod:`engine.session.tables` in milliseconds,
which is
what lets X %, k and the 3D blur move live.
"""

from __future__ import annotations

import numpy as np
import torch

from engine.backbones.base import BackboneInfo, PointBackboneInfo
from engine.config import MuscConfig
from engine.data.samples import Sample
from engine.method import mutual_scoring
from engine.method.maps import gaussian_blur, points_to_map, upsample_maps
from engine.method.rscon import rscon, salient_features
from engine.session.branch_3d import Cloud
from engine.session.results import PointScores, ScoreResult
from engine.session.tables import SubsetTable


def _penultimate(layers: list[torch.Tensor]) -> torch.Tensor:
    # the reference takes the salient feature from the penultimate scored layer (docs/method.md §8)
    return layers[max(0, len(layers) - 2)]


def _fusion_scale(scores: torch.Tensor, config: MuscConfig) -> torch.Tensor:
    """1 for plain summing; else the batch median score, so each modality is in its own units."""
    if config.fusion == "sum" or scores.numel() == 0:
        return torch.ones((), device=scores.device)
    return scores.median().clamp_min(1e-12)


def _maps_2d(tables, features, grid, size, config):
    n = features[0].shape[0]
    patch = torch.zeros((n, features[0].shape[1]), device=features[0].device)
    for table in tables:
        if table.cumsum_2d is not None:
            patch[table.indices] = mutual_scoring.interval_average(
                table.cumsum_2d, config.x_percent
            )
    maps = upsample_maps(patch.view(n, *grid), size) / _fusion_scale(patch, config)
    return maps, salient_features(_penultimate(features), patch)


def _maps_3d(tables, features, clouds, size, config):
    n = len(clouds)
    layer = _penultimate(features)
    maps = torch.zeros((n, size, size), device=layer.device)
    salient = torch.zeros((n, layer.shape[-1]), device=layer.device)
    points: list[PointScores | None] = [None] * n
    rows = {}
    for table in tables:
        if table.cumsum_3d is not None:
            scores = mutual_scoring.interval_average(table.cumsum_3d, config.x_percent)
            rows.update({index: scores[k] for k, index in enumerate(table.indices_3d)})
    row_of = {index: row for row, index in enumerate(i for i, c in enumerate(clouds) if c)}
    scale = _fusion_scale(torch.stack(list(rows.values())) if rows else maps, config)
    for index, group_scores in rows.items():
        group_scores = group_scores / scale
        cloud = clouds[index]
        maps[index], point_scores = points_to_map(
            group_scores, *cloud.interpolation, cloud.pixel_index, (size, size)
        )
        salient[index] = salient_features(layer[row_of[index]][None], group_scores[None])[0]
        points[index] = PointScores(
            cloud.xyz, point_scores.cpu().numpy(), cloud.pixel_index.cpu().numpy()
        )
    return gaussian_blur(maps, config.blur_sigma), salient, points


def read_out(
    tables: list[SubsetTable],
    *,
    samples: list[Sample],
    image_sizes: list[tuple[int, int]],
    modality: str,
    config: MuscConfig,
    grid_2d: tuple[int, int] | None,
    features_2d: list[torch.Tensor] | None,
    features_3d: list[torch.Tensor] | None,
    clouds: list[Cloud | None],
    backbone: BackboneInfo | None,
    backbone_3d: PointBackboneInfo | None,
    timings: dict[str, float],
) -> ScoreResult:
    """Build the result for the current X %, RsCon window and blur (docs/method.md §7, §8)."""
    size = config.eval_size
    parts: dict[str, tuple[torch.Tensor, torch.Tensor]] = {}
    points: list[PointScores | None] = [None] * len(samples)
    if "2d" in modality:
        parts["2d"] = _maps_2d(tables, features_2d, grid_2d, size, config)
    if "3d" in modality:
        maps_3d, salient_3d, points = _maps_3d(tables, features_3d, clouds, size, config)
        parts["3d"] = (maps_3d, salient_3d)
    fused = sum(maps for maps, _ in parts.values())  # 2D + 3D, no weighting (docs/method.md §7)
    salient = torch.cat([s for _, s in parts.values()], dim=1)
    max_scores = fused.flatten(1).amax(dim=1)
    final = rscon(max_scores, salient, config.rscon_window)
    modality_maps, modality_scores = {}, {}
    if len(parts) > 1:
        for name, (maps, part_salient) in parts.items():
            modality_maps[name] = maps.cpu().numpy()
            part_max = maps.flatten(1).amax(dim=1)
            modality_scores[name] = rscon(part_max, part_salient, config.rscon_window).cpu().numpy()
    return ScoreResult(
        samples=list(samples),
        image_sizes=list(image_sizes),
        modality=modality,
        image_scores=final.cpu().numpy(),
        max_scores=max_scores.cpu().numpy(),
        maps=fused.cpu().numpy().astype(np.float32, copy=False),  # no second N x S x S copy
        config=config,
        backbone=backbone,
        backbone_3d=backbone_3d,
        modality_maps=modality_maps,
        modality_scores=modality_scores,
        points=points,
        timings=dict(timings),
    )
