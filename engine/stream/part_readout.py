"""The read-out of one part scored against a bank: maps, raw score, salient feature, RsCon.

A batch run reads out all parts at once (:mod:`engine.session.readout`); a stream reads out one
part from its own tables (:func:`engine.stream.query.query_tables`) with the same functions, so
its map and raw score equal those of the part in a batch of bank ∪ {part}. RsCon for a stream
is :func:`stream_rscon` (docs/method.md §14).
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from engine.config import MuscConfig
from engine.method import mutual_scoring
from engine.method.maps import gaussian_blur, points_to_map, upsample_maps


@dataclass
class PartTables:
    """Everything the read-out of one part needs, without its backbone features.

    Attributes:
        cumsum_2d: (L, R) sorted cumulative 2D distances to the R reference parts, or None.
        cumsum_3d: (G, R) the same for the 3D groups, or None.
        salient_2d: (L, C) the part's penultimate 2D layer (where RsCon's salient feature is).
        salient_3d: (G, C') its penultimate 3D layer.
        grid: (h, w) of the 2D token grid.
        interpolation: The cloud's 3-NN group indices and weights per point (3D maps).
        pixel_index: (P,) row-major pixel of every point on the map grid.
    """

    cumsum_2d: torch.Tensor | None = None
    cumsum_3d: torch.Tensor | None = None
    salient_2d: torch.Tensor | None = None
    salient_3d: torch.Tensor | None = None
    grid: tuple[int, int] | None = None
    interpolation: tuple[torch.Tensor, torch.Tensor] | None = None
    pixel_index: torch.Tensor | None = None

    @property
    def references(self) -> int:
        """R, the number of reference parts the tables were computed against."""
        table = self.cumsum_2d if self.cumsum_2d is not None else self.cumsum_3d
        return int(table.shape[-1]) if table is not None else 0


@dataclass
class PartScore:
    """One part read out at one X %: its maps and what RsCon needs.

    Attributes:
        map: (S, S) fused anomaly map on the map grid.
        modality_maps: Per modality its own (S, S) map when both ran.
        raw: Maximum of the fused map (the image score before RsCon).
        salient: (D,) anomaly-salient feature (2D and 3D concatenated).
        point_scores: (P,) 3D score of every cloud point, or None without 3D.
    """

    map: torch.Tensor
    modality_maps: dict[str, torch.Tensor]
    raw: float
    salient: torch.Tensor
    point_scores: torch.Tensor | None = None


def penultimate(layers: list[torch.Tensor] | None) -> torch.Tensor | None:
    """The layer RsCon takes salient features from: the penultimate scored one (§8)."""
    return layers[max(0, len(layers) - 2)] if layers else None


def patch_scores(tables: PartTables, x_percent: float) -> dict[str, torch.Tensor]:
    """Per modality the interval-averaged scores of the part's patches (2D) and groups (3D)."""
    scores = {}
    if tables.cumsum_2d is not None:
        scores["2d"] = mutual_scoring.interval_average(tables.cumsum_2d, x_percent)
    if tables.cumsum_3d is not None:
        scores["3d"] = mutual_scoring.interval_average(tables.cumsum_3d, x_percent)
    return scores


def fusion_scales(bank_tables: list[PartTables], config: MuscConfig) -> dict[str, float]:
    """Per modality the divisor of its map: 1 for "sum"; for "scaled" the bank's median score.

    A batch divides by the median over its own parts; a stream takes the bank's, so that a
    part's scale does not depend on the part itself.
    """
    if config.fusion == "sum" or not bank_tables:
        return {"2d": 1.0, "3d": 1.0}
    scales = {}
    for name in ("2d", "3d"):
        values = [patch_scores(t, config.x_percent).get(name) for t in bank_tables]
        values = [v for v in values if v is not None]
        scales[name] = float(torch.cat(values).median().clamp_min(1e-12)) if values else 1.0
    return scales


def _salient(layer: torch.Tensor, scores: torch.Tensor) -> torch.Tensor:
    return layer[int(scores.argmax())]


def read_out_part(
    tables: PartTables, config: MuscConfig, scales: dict[str, float] | None = None
) -> PartScore:
    """Maps, raw score and salient feature of one part at ``config``'s X % and blur.

    Args:
        tables: The part's tables (from :func:`engine.stream.query.query_tables`, or a
            batch row).
        config: X %, blur and map size are read from it.
        scales: Per-modality divisors (:func:`fusion_scales`); None = 1.
    """
    scales = scales or {}
    size = config.eval_size
    scores = patch_scores(tables, config.x_percent)
    maps, salient, point_scores = {}, [], None
    if "2d" in scores:
        grid_scores = scores["2d"].view(1, *tables.grid)
        maps["2d"] = upsample_maps(grid_scores, size)[0] / scales.get("2d", 1.0)
        salient.append(_salient(tables.salient_2d, scores["2d"]))
    if "3d" in scores:
        group_scores = scores["3d"] / scales.get("3d", 1.0)
        flat, point_scores = points_to_map(
            group_scores, *tables.interpolation, tables.pixel_index, (size, size)
        )
        maps["3d"] = gaussian_blur(flat[None], config.blur_sigma)[0]
        salient.append(_salient(tables.salient_3d, group_scores))
    fused = sum(maps.values())
    return PartScore(
        map=fused,
        modality_maps=maps if len(maps) > 1 else {},
        raw=float(fused.max()),
        salient=torch.cat(salient),
        point_scores=point_scores,
    )


def stream_rscon(
    raw: float,
    salient: torch.Tensor,
    bank_raw: torch.Tensor,
    bank_salient: torch.Tensor,
    window: int,
) -> float:
    """RsCon of one new part among the bank (docs/method.md §14).

    As in a batch (:func:`engine.method.rscon.rscon`) over bank ∪ {part}, with one difference:
    the min-max normalisation takes the range of the *bank's* raw scores, so that adding a
    strongly anomalous part does not rescale everything else; a part above the bank's highest
    raw score gets a normalised score above 1 (not clipped, so its rank is kept).

    Args:
        raw: The part's raw image score (maximum of its map).
        salient: (D,) its anomaly-salient feature.
        bank_raw: (B,) the bank parts' raw scores.
        bank_salient: (B, D) their salient features.
        window: RsCon window k.

    Returns:
        The part's final image score, in the units of the bank parts' batch scores.
    """
    lo, hi = bank_raw.min(), bank_raw.max()
    span = float(hi - lo)
    if span <= 0:
        return 0.0
    own = torch.tensor([raw], dtype=bank_raw.dtype, device=bank_raw.device)
    all_raw = torch.cat([bank_raw, own])
    normalised = (all_raw - lo) / span
    similarity = torch.cat([bank_salient, salient[None]]) @ salient  # (B+1,), self last
    one = _propagate_row(normalised, similarity, 1, normalised[-1])
    many = _propagate_row(normalised, similarity, window, normalised[-1])
    return float(0.5 * (one + many))


def _propagate_row(
    scores: torch.Tensor, similarity: torch.Tensor, window: int, own: torch.Tensor
) -> torch.Tensor:
    """One row of :func:`engine.method.rscon.propagate` (same rule, O(B))."""
    top = torch.topk(similarity, max(1, min(window, similarity.shape[0])))
    weight_sum = top.values.sum()
    if weight_sum <= 0:  # as in propagate(): a non-positive sum would flip the score
        return own
    return (top.values * scores[top.indices]).sum() / weight_sum
