"""A 3D picture of a part's point cloud for the report, rendered in numpy (no OpenGL).

The app's 3D view needs an OpenGL context, which a worker thread, a headless server or the CLI
does not have, so the report draws its own: an oblique orthographic view (tilted 35° from the
sensor axis, turned 20°) of the part's points, each drawn as a small disc into a z-buffer and
shaded by its surface normal (Lambert, light from the upper left) on a light background.

Colours follow the report's 2D heatmap: every point takes the anomaly-map value of its pixel on
the map grid (not its own 3D score: in 2D+3D runs the decision's cuts are in the units of the
fused map), coloured with the app's colormap at the decision's levels; points below the pixel
cut are grey, like the greyed-out points of the app's 3D view. The view is framed on the defect
(the points of its pixels, or else the top-scoring points) with a margin, and carries a colour
bar and a scale bar.
"""

from __future__ import annotations

import math

import cv2
import numpy as np

from engine.decision.display import colorize
from engine.decision.model import Decision
from engine.decision.regions import PartDefects
from engine.session.results import ScoreResult

SIZE = (520, 360)  # width, height of the picture in pixels
LEGEND_PX = 100  # right-hand strip for the colour bar
BACKGROUND = 242
GREY = np.array([175.0, 175.0, 175.0])
DARKEST = 0.35  # inferno below this share of its range is near black: too dark on a shaded part
TILT_DEG, TURN_DEG = 35.0, -20.0
MARGIN = 2.2  # the frame spans this many times the defect's extent
MIN_FRAME_SHARE = 0.12  # ... and at least this share of the whole part (context for tiny defects)
MAX_SPLAT_PX = 9
# Towards the light, in sensor coordinates: near the sensor, a little up and to the left, so a
# surface facing the sensor is bright and slopes show as lighter or darker.
LIGHT = np.array([-0.35, -0.5, -1.0]) / np.linalg.norm([-0.35, -0.5, -1.0])


def _rotation() -> np.ndarray:
    """Sensor coordinates (x right, y down, z away) -> view (u right, v down, depth away)."""
    a, b = math.radians(TILT_DEG), math.radians(TURN_DEG)
    turn = np.array([[math.cos(b), 0, math.sin(b)], [0, 1, 0], [-math.sin(b), 0, math.cos(b)]])
    # Tilt so that points nearer the sensor (a bump) move up on the picture.
    tilt = np.array([[1, 0, 0], [0, math.cos(a), math.sin(a)], [0, -math.sin(a), math.cos(a)]])
    return tilt @ turn


def _grid_lookup(pixel_index: np.ndarray, grid: int) -> np.ndarray:
    """(grid + 2, grid + 2) point index per map pixel (-1 = none), padded by one pixel."""
    lookup = np.full((grid + 2, grid + 2), -1, dtype=np.int64)
    rows, cols = np.divmod(np.asarray(pixel_index, dtype=np.int64), grid)
    lookup[rows + 1, cols + 1] = np.arange(len(rows))
    return lookup


def point_normals(xyz: np.ndarray, pixel_index: np.ndarray, grid: int) -> np.ndarray:
    """(P, 3) unit normals of the surface through the points, from the map grid.

    The points are put back on their map pixels and smoothed over 5 x 5 pixels (sensor noise
    would otherwise speckle the shading); the normal is the cross product of the smoothed
    surface's differences along the columns and the rows. Where it is undefined (isolated
    points) the sensor axis is used.
    """
    pixel_index = np.asarray(pixel_index, dtype=np.int64)
    positions = np.zeros((grid * grid, 3), dtype=np.float32)
    weight = np.zeros(grid * grid, dtype=np.float32)
    positions[pixel_index] = xyz
    weight[pixel_index] = 1.0
    positions = cv2.blur(positions.reshape(grid, grid, 3), (5, 5))
    weight = cv2.blur(weight.reshape(grid, grid), (5, 5))
    surface = positions / np.maximum(weight, 1e-6)[..., None]
    d_v, d_u = np.gradient(surface, axis=(0, 1))
    normals = np.cross(d_u, d_v).reshape(-1, 3)[pixel_index].astype(np.float64)
    length = np.linalg.norm(normals, axis=1)
    known = np.isfinite(length) & (length > 0)
    normals[known] /= length[known, None]
    normals[~known] = (0.0, 0.0, -1.0)
    return normals


def typical_spacing(xyz: np.ndarray, pixel_index: np.ndarray, grid: int) -> float:
    """Median distance between points on neighbouring map pixels (0 when none are adjacent)."""
    lookup = _grid_lookup(pixel_index, grid)
    rows, cols = np.divmod(np.asarray(pixel_index, dtype=np.int64), grid)
    right = lookup[rows + 1, cols + 2]
    has = right >= 0
    if not has.any():
        return 0.0
    return float(np.median(np.linalg.norm(xyz[right[has]] - xyz[has], axis=1)))


def _frame(view: np.ndarray, focus: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(centre, extent) in view (u, v) of the defect plus margin, with a floor from the part.

    The margin never makes the frame wider than the whole part (plus 10 %): a defect spread
    over the part is shown as the whole part, not as a small picture in a wide empty frame.
    """
    low, high = view[focus, :2].min(axis=0), view[focus, :2].max(axis=0)
    part = np.ptp(view[:, :2], axis=0)
    extent = np.minimum((high - low) * MARGIN, 1.1 * part)
    extent = np.maximum(extent, MIN_FRAME_SHARE * part.max())
    return (low + high) / 2.0, np.maximum(extent, 1e-9)


def _splat(pix: np.ndarray, depth: np.ndarray, radius: int, shape: tuple[int, int]) -> np.ndarray:
    """Z-buffer of discs: per picture pixel the index of the nearest point, -1 where none."""
    height, width = shape
    offsets = [(dx, dy) for dy in range(-radius, radius + 1) for dx in range(-radius, radius + 1)
               if dx * dx + dy * dy <= radius * radius + radius]  # fmt: skip
    span = max(float(np.ptp(depth)), 1e-12)
    # Nearest point and its index in one int64 key: quantised depth above, index below.
    key = ((depth - depth.min()) / span * ((1 << 20) - 1)).astype(np.int64) << 24
    key |= np.arange(len(depth), dtype=np.int64)
    buffer = np.full(height * width, np.iinfo(np.int64).max, dtype=np.int64)
    for dx, dy in offsets:
        x, y = pix[:, 0] + dx, pix[:, 1] + dy
        inside = (x >= 0) & (x < width) & (y >= 0) & (y < height)
        np.minimum.at(buffer, y[inside] * width + x[inside], key[inside])
    hit = buffer != np.iinfo(np.int64).max
    nearest = np.full(height * width, -1, dtype=np.int64)
    nearest[hit] = buffer[hit] & ((1 << 24) - 1)
    return nearest.reshape(height, width)


def point_colours(values: np.ndarray, levels: tuple[float, float], cut: float) -> np.ndarray:
    """(P, 3) uint8 RGB: inferno at ``levels`` (never darker than DARKEST), grey below ``cut``."""
    values = np.asarray(values, dtype=np.float64).ravel()
    floor = levels[0] + DARKEST * (levels[1] - levels[0])
    colours = colorize(np.maximum(values, floor)[None, :], levels)[0]
    colours[values < cut] = GREY.astype(np.uint8)
    return colours


def _nice_length(target: float) -> float:
    """1, 2 or 5 times a power of ten, at most ``target``."""
    power = 10.0 ** math.floor(math.log10(target))
    return max(m * power for m in (1.0, 2.0, 5.0) if m * power <= target)


def _legend(canvas: np.ndarray, levels: tuple[float, float], cut: float, mm_per_px: float) -> None:
    """Colour bar (the cut marked, grey below it) and a scale bar, drawn in place."""
    height, width = canvas.shape[:2]
    x0, top, bottom = width - LEGEND_PX + 10, 20, height - 64
    ramp = point_colours(np.linspace(levels[1], levels[0], bottom - top), levels, cut)
    canvas[top:bottom, x0 : x0 + 16] = ramp[:, None, :]
    font, ink, size = cv2.FONT_HERSHEY_SIMPLEX, (30, 30, 30), 0.55

    def text(words: str, x: int, y: int, colour: tuple[int, int, int] = ink) -> None:
        cv2.putText(canvas, words, (x, y), font, size, colour, 1, cv2.LINE_AA)

    share = (levels[1] - cut) / max(levels[1] - levels[0], 1e-12)
    y_cut = int(top + np.clip(share, 0.0, 1.0) * (bottom - top - 1))
    text(f"{levels[1]:.3g}", x0 + 20, top + 10)
    if bottom - y_cut > 36:  # else the cut's label takes the place of the low end's
        text(f"{levels[0]:.3g}", x0 + 20, bottom)
    cv2.line(canvas, (x0 - 4, y_cut), (x0 + 18, y_cut), (0, 150, 190), 2)
    text("cut", x0 + 20, y_cut + 6, (0, 110, 150))
    canvas[bottom + 12 : bottom + 28, x0 : x0 + 16] = GREY.astype(np.uint8)
    text("below", x0 + 20, bottom + 26)
    if mm_per_px > 0:
        length = _nice_length(0.25 * (width - LEGEND_PX) * mm_per_px)
        bar = int(round(length / mm_per_px))
        cv2.line(canvas, (12, height - 14), (12 + bar, height - 14), ink, 2)
        text(f"{length:g} mm", 18 + bar, height - 9)


def render_snapshot(
    xyz: np.ndarray,
    values: np.ndarray,
    pixel_index: np.ndarray,
    grid: int,
    levels: tuple[float, float],
    cut: float,
    focus: np.ndarray | None = None,
    size: tuple[int, int] = SIZE,
) -> np.ndarray:
    """Render a part's points as an (H, W, 3) uint8 RGB picture (see the module docstring).

    Args:
        xyz: (P, 3) points in sensor coordinates, metres.
        values: (P,) anomaly-map value of each point's pixel (the decision's units).
        pixel_index: (P,) row-major pixel of each point on the ``grid`` x ``grid`` map.
        grid: Side of the square map grid.
        levels: (low, high) colour levels (``engine.decision.display.heatmap_levels``).
        cut: The pixel cut: points below it are grey.
        focus: (P,) bool, the points to frame (the defect); None or empty = top-scoring points.
        size: (width, height) of the picture.
    """
    width, height = size
    canvas = np.full((height, width, 3), BACKGROUND, dtype=np.uint8)
    xyz = np.asarray(xyz, dtype=np.float64)
    values = np.asarray(values, dtype=np.float64)
    if len(xyz) == 0:
        return canvas
    if focus is None or not np.any(focus):
        focus = values >= np.quantile(values, 0.99)  # the top 1 % of the points
    rotation = _rotation()
    view = xyz @ rotation.T
    centre, extent = _frame(view, np.asarray(focus, dtype=bool))
    draw_w, draw_h = width - LEGEND_PX - 16, height - 36
    scale = min(draw_w / extent[0], draw_h / extent[1])  # picture px per metre
    pix = np.empty((len(view), 2), dtype=np.int64)
    pix[:, 0] = np.round((view[:, 0] - centre[0]) * scale + 8 + draw_w / 2)
    pix[:, 1] = np.round((view[:, 1] - centre[1]) * scale + 8 + draw_h / 2)
    keep = (pix[:, 0] >= -MAX_SPLAT_PX) & (pix[:, 0] < draw_w + 8 + MAX_SPLAT_PX)
    keep &= (pix[:, 1] >= -MAX_SPLAT_PX) & (pix[:, 1] < draw_h + 8 + MAX_SPLAT_PX)
    spacing = typical_spacing(xyz, pixel_index, grid) * scale
    radius = int(np.clip(round(1.2 * spacing), 1, MAX_SPLAT_PX)) if spacing > 0 else 2
    nearest = _splat(pix[keep], view[keep, 2], radius, (height - 28, width - LEGEND_PX))
    shown = np.flatnonzero(keep)
    normals = point_normals(xyz[shown], np.asarray(pixel_index)[shown], grid)
    normals *= np.where(normals[:, 2] > 0, -1.0, 1.0)[:, None]  # face the sensor
    shade = 0.35 + 0.65 * np.clip(normals @ LIGHT, 0.0, 1.0) ** 2  # squared: more relief
    colours = point_colours(values[shown], levels, cut).astype(np.float64)
    lit = np.clip(colours * shade[:, None], 0, 255).astype(np.uint8)
    area = canvas[: height - 28, : width - LEGEND_PX]
    drawn = nearest >= 0
    area[drawn] = lit[nearest[drawn]]
    _legend(canvas, levels, cut, 1000.0 / scale)
    return canvas


def defect_focus(
    pixel_index: np.ndarray, grid: int, defects: PartDefects, image_size: tuple[int, int]
) -> np.ndarray:
    """(P,) bool: the points whose map pixel lies in the part's largest defect region.

    Each map-grid pixel is looked up at its centre in the image-size defect mask, within the
    largest region's bounding box (the mask holds every region).
    """
    if not defects.regions:
        return np.zeros(len(pixel_index), dtype=bool)
    height, width = image_size
    rows, cols = np.divmod(np.asarray(pixel_index, dtype=np.int64), grid)
    y = np.minimum(((rows + 0.5) * height / grid).astype(np.int64), height - 1)
    x = np.minimum(((cols + 0.5) * width / grid).astype(np.int64), width - 1)
    bx, by, bw, bh = defects.regions[0].bbox
    inside = (x >= bx) & (x < bx + bw) & (y >= by) & (y < by + bh)
    return inside & defects.mask[y, x]


def part_snapshot(
    result: ScoreResult,
    index: int,
    decision: Decision,
    defects: PartDefects,
    levels: tuple[float, float],
) -> np.ndarray | None:
    """The report's 3D picture of one part, framed on its largest defect; None without points."""
    cloud = result.points[index] if result.points else None
    if cloud is None or len(cloud.xyz) == 0:
        return None
    grid = int(result.maps.shape[-1])
    values = np.asarray(result.maps[index], dtype=np.float64).ravel()[cloud.pixel_index]
    focus = defect_focus(cloud.pixel_index, grid, defects, result.image_sizes[index])
    return render_snapshot(cloud.xyz, values, cloud.pixel_index, grid, levels,
                           decision.pixel.value, focus)  # fmt: skip
