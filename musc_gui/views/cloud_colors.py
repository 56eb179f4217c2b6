"""Pure colouring rules of the 3D view: which score each point shows, its scale, grey and light.

No Qt or OpenGL here, so the rules are tested on plain arrays. A point shows the anomaly-map
value of its pixel on the map grid (``PointScores.pixel_index``): the fused map by default, in
the units of the decision's pixel cut, or one branch's own map (``ScoreResult.modality_maps``).
Grey always means "outside the decision's defect pixels" (fused map below the pixel cut), so
the same points are coloured whichever score is shown; the colour then tells which branch saw
them. Points are lit by their surface normal (the report's 3D picture uses the same normals).
"""

from __future__ import annotations

import numpy as np
import pyqtgraph as pg

from engine.decision.display import heatmap_levels
from engine.outputs.snapshot import point_normals
from engine.session.results import PointScores, ScoreResult

GREY = (0.55, 0.55, 0.55, 1.0)
SCORE_LABELS = {"fused": "fused 2D+3D", "2d": "2D (image branch)", "3d": "3D (shape branch)"}
# Towards the light in display coordinates (z up towards the sensor): above, a little left/front.
LIGHT = np.array([-0.35, 0.35, 1.0]) / np.linalg.norm([-0.35, 0.35, 1.0])
AMBIENT = 0.35  # a point facing away from the light keeps this share of its colour


def display_coords(xyz: np.ndarray) -> np.ndarray:
    """Centred display positions: (x, -y, -z) about the centroid, float32."""
    pos = np.asarray(xyz, dtype=np.float32) * np.array([1.0, -1.0, -1.0], dtype=np.float32)
    return pos - pos.mean(axis=0) if len(pos) else pos


def score_choices(result: ScoreResult) -> list[str]:
    """The scores a point can show: fused, 2D, 3D when both branches ran, else the one run."""
    if {"2d", "3d"} <= set(result.modality_maps):
        return ["fused", "2d", "3d"]
    return [result.modality if result.modality in ("2d", "3d") else "fused"]


def score_maps(result: ScoreResult, choice: str) -> np.ndarray:
    """(N, S, S) maps behind a score choice (a single-branch run's maps are its branch's)."""
    return result.modality_maps.get(choice, result.maps) if choice != "fused" else result.maps


def point_values(maps: np.ndarray, index: int, points: PointScores) -> np.ndarray:
    """(P,) value of part ``index``'s map at every point's map-grid pixel."""
    return np.asarray(maps[index], dtype=np.float64).ravel()[points.pixel_index]


def value_levels(
    maps: np.ndarray, values: np.ndarray, scale: str, cut: float | None
) -> tuple[float, float]:
    """Colour levels: "global" = the run's scale (as the 2D view), "per part" = own min..max.

    Args:
        maps: (N, S, S) maps of the chosen score (global scale).
        values: (P,) values shown on this part's points (per-part scale).
        scale: "global" or "per part".
        cut: The pixel cut when it is in these maps' units (fused), else None.
    """
    if scale == "global":
        return heatmap_levels(maps, cut)
    if not len(values):
        return 0.0, 1.0
    low, high = float(np.min(values)), float(np.max(values))
    return low, high if high > low else low + 1e-6


def point_levels(points: list[PointScores | None]) -> tuple[float, float]:
    """Levels over the 3D-branch point scores of all samples (one scale for every part)."""
    scores = [p.scores for p in points if p is not None and len(p.scores)]
    if not scores:
        return 0.0, 1.0
    low = float(min(s.min() for s in scores))
    high = float(max(s.max() for s in scores))
    return low, high if high > low else low + 1e-6


def score_colors(scores: np.ndarray, levels: tuple[float, float], cmap: pg.ColorMap) -> np.ndarray:
    """(P, 4) float32 RGBA of scores through ``cmap`` between ``levels`` (clipped)."""
    low, high = levels
    t = np.clip((np.asarray(scores, dtype=np.float64) - low) / (high - low), 0.0, 1.0)
    return np.asarray(cmap.map(t, mode="float"), dtype=np.float32).reshape(len(t), 4)


def rgb_colors(rgb: np.ndarray, pixel_index: np.ndarray, grid: int) -> np.ndarray:
    """(P, 4) float32 RGBA of the image pixel under each point's S x S grid cell (nearest)."""
    height, width = rgb.shape[:2]
    row, col = np.divmod(np.asarray(pixel_index, dtype=np.int64), grid)
    y = np.minimum(((row + 0.5) * height / grid).astype(np.int64), height - 1)
    x = np.minimum(((col + 0.5) * width / grid).astype(np.int64), width - 1)
    colours = np.ones((len(row), 4), dtype=np.float32)
    colours[:, :3] = rgb[y, x, :3] / 255.0
    return colours


def grey_below(colors: np.ndarray, values: np.ndarray, cut: float | None) -> np.ndarray:
    """Copy of ``colors`` with the points whose ``values`` are below ``cut`` greyed out."""
    out = np.array(colors, dtype=np.float32, copy=True)
    if cut is not None:
        out[np.asarray(values) < cut] = GREY
    return out


def point_shading(points: PointScores, grid: int) -> np.ndarray:
    """(P,) brightness in [AMBIENT, 1]: Lambert light on each point's surface normal.

    Normals come from the points put back on their map grid (``point_normals``), turned into
    display coordinates; their sign is unknown, so a surface lit from behind is lit too.
    """
    if not len(points.xyz):
        return np.ones(0, dtype=np.float32)
    normals = point_normals(points.xyz, points.pixel_index, grid) * np.array([1.0, -1.0, -1.0])
    lambert = np.abs(normals @ LIGHT)
    return (AMBIENT + (1.0 - AMBIENT) * lambert).astype(np.float32)


def shade(colors: np.ndarray, brightness: np.ndarray | None) -> np.ndarray:
    """Colours darkened by ``brightness`` (RGB only; alpha kept); unchanged for None."""
    if brightness is None:
        return colors
    out = np.array(colors, dtype=np.float32, copy=True)
    out[:, :3] *= brightness[:, None]
    return out
