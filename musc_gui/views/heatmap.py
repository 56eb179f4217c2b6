"""Pure helpers of the 2D view: colour levels, what the heatmap hides, grid <-> image pixels.

No Qt here, so every rule the 2D view follows is tested on plain arrays. The colour scale is the
engine's (:func:`engine.decision.display.heatmap_levels`): it starts at the normal level of the
run, so a good part stays quiet, and values below it are not drawn at all.
"""

from __future__ import annotations

import numpy as np

from engine.decision.display import heatmap_levels
from engine.decision.regions import PartDefects

SCALES = ("global", "per image")


def view_levels(
    maps: np.ndarray, index: int, scale: str, pixel_cut: float | None
) -> tuple[float, float]:
    """Colour levels of part ``index``'s heatmap.

    Args:
        maps: (N, S, S) maps of the run.
        index: The part shown.
        scale: "global": the run's scale (normal level .. highest value, keeps the pixel cut
            inside), so parts compare; "per image": the part's own median .. maximum.
        pixel_cut: The decision's pixel cut (global scale only), or None.
    """
    if scale == "global":
        return heatmap_levels(maps, pixel_cut)
    return heatmap_levels(maps[index : index + 1])


def displayed_map(
    anomaly_map: np.ndarray, low: float, foreground: np.ndarray | None = None
) -> np.ndarray:
    """float32 copy of the map with the hidden pixels set to NaN (drawn transparent).

    Hidden: values below the low colour level (normal surface) and, where the part's
    foreground is known, pixels without a measured 3D point.
    """
    shown = np.array(anomaly_map, dtype=np.float32, copy=True)
    hidden = shown < low
    if foreground is not None:
        hidden |= ~foreground
    shown[hidden] = np.nan
    return shown


def measured(xyz: np.ndarray | None) -> np.ndarray | None:
    """(H, W) bool: pixels with a measured 3D point (``xyz != 0``); None without XYZ."""
    return None if xyz is None else np.any(np.asarray(xyz) != 0, axis=2)


def regions_text(defects: PartDefects | None, shown: int = 3) -> str:
    """One line on a part's defect regions: count, and area/height of the largest few."""
    if defects is None:
        return "No decision yet: defect regions appear once the cuts are set."
    regions = defects.regions
    if not regions:
        return "No defect region above the pixel cut."
    parts = []
    for region in regions[:shown]:
        text = f"{region.area_px} px"
        if region.area_mm2 is not None:
            text += f", {region.area_mm2:.2f} mm²"
        if region.height_mm is not None:  # + towards the sensor (bump), - away (dent)
            text += f", height {region.height_mm:+.2f} mm"
        parts.append(text)
    if len(regions) == 1:
        return "1 defect region: " + parts[0]
    more = f"; +{len(regions) - shown} more" if len(regions) > shown else ""
    total = f"{defects.area_px} px"
    if defects.area_mm2 is not None:
        total += f" = {defects.area_mm2:.2f} mm²"
    return f"{len(regions)} defect regions ({total}): " + "; ".join(parts) + more


def grid_pixel(image_size: tuple[int, int], grid: int, x: float, y: float) -> int:
    """Row-major index on the S x S map grid under image point (x, y); -1 outside the image."""
    height, width = image_size
    if not (0.0 <= x < width and 0.0 <= y < height):
        return -1
    row = min(int(y * grid / height), grid - 1)
    col = min(int(x * grid / width), grid - 1)
    return row * grid + col


def pixel_centre(pixel: int, grid: int, image_size: tuple[int, int]) -> tuple[float, float]:
    """Image (x, y) of the centre of a map-grid pixel."""
    height, width = image_size
    row, col = divmod(int(pixel), grid)
    return (col + 0.5) * width / grid, (row + 0.5) * height / grid
