"""How anomaly maps are shown: one colour scale that keeps normal surface quiet.

The heatmap's colour starts at the **normal level** and reaches full colour at the highest value
of any map. The normal level is the median, over all parts, of each part's 95th percentile: a
defect covers far less than 5 % of a part, so even on a defective part that percentile is still
normal surface, and the part's surface (not only the background, which scores far lower after
background removal) stays below it. The pixel cut sits above it, so an outlined defect is always
clearly coloured while a good part stays quiet. Views draw values below the low end
transparent; the report and PNG exports use the same levels and the same colormap
(:data:`COLORMAP`, matplotlib's "inferno", also cv2.COLORMAP_INFERNO).
"""

from __future__ import annotations

import cv2
import numpy as np

COLORMAP = "inferno"  # the app's default colormap; cv2 and pyqtgraph both have it
NORMAL_PERCENTILE = 95.0  # of each part's map: still normal surface, defects are far smaller


def heatmap_levels(maps: np.ndarray, pixel_cut: float | None = None) -> tuple[float, float]:
    """(low, high) colour levels for a run's maps; ``high > low`` always.

    Args:
        maps: (N, S, S) anomaly maps of the run.
        pixel_cut: The pixel threshold; the low end is kept below it so defects are coloured.
    """
    values = np.asarray(maps, dtype=np.float64)
    per_part = values.reshape(values.shape[0], -1) if values.ndim > 1 else values.reshape(1, -1)
    low = float(np.median(np.percentile(per_part, NORMAL_PERCENTILE, axis=1)))
    high = float(values.max())
    if pixel_cut is not None and np.isfinite(pixel_cut):
        low = min(low, float(pixel_cut))
        high = max(high, float(pixel_cut))
    return low, high if high > low else low + 1e-6


def colorize(anomaly_map: np.ndarray, levels: tuple[float, float]) -> np.ndarray:
    """(H, W, 3) uint8 RGB of a map in the app's colormap at the given levels."""
    low, high = levels
    scaled = np.clip((np.asarray(anomaly_map) - low) / max(high - low, 1e-12), 0.0, 1.0)
    coloured = cv2.applyColorMap((scaled * 255).astype(np.uint8), cv2.COLORMAP_INFERNO)
    return np.ascontiguousarray(coloured[..., ::-1])


def overlay(rgb: np.ndarray, anomaly_map: np.ndarray, levels: tuple[float, float]) -> np.ndarray:
    """The heatmap over the image: transparent at the normal level, opaque (0.65) at the top."""
    low, high = levels
    alpha = np.clip((np.asarray(anomaly_map) - low) / max(high - low, 1e-12), 0.0, 1.0)
    alpha = (0.65 * np.sqrt(alpha))[..., None]  # sqrt: mid-level anomalies are visible too
    blended = (1.0 - alpha) * rgb.astype(np.float64) + alpha * colorize(anomaly_map, levels)
    return blended.round().astype(np.uint8)


def outline(rgb: np.ndarray, mask: np.ndarray, colour: tuple[int, int, int]) -> np.ndarray:
    """``rgb`` with the boundary of ``mask`` drawn in ``colour`` (2 px)."""
    contours, _ = cv2.findContours(mask.astype(np.uint8), cv2.RETR_EXTERNAL, cv2.CHAIN_APPROX_NONE)
    drawn = np.ascontiguousarray(rgb.copy())
    cv2.drawContours(drawn, contours, -1, colour, 2)
    return drawn
