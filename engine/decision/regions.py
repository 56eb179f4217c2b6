"""Defect regions of one part: connected areas of ``map >= pixel cut``, with sizes in px and mm².

A region is an 8-connected component of the thresholded map at the image's original size.
Regions smaller than the minimum area (px, or mm² where the part has XYZ) are specks and are
dropped: the mask, the outline on screen, the exported mask and the reported area all come from
:func:`part_defects`, so they always agree.

Area in mm² (parts with an XYZ map): every pixel's surface patch is ``|dX/du x dX/dv|``
(central differences of the organised point map), summed over the region, so a tilted or curved
defect is not under-counted. Pixels without a measured point contribute nothing; measured pixels
next to a missing one take the median patch of the part (their differences span the gap).

Height/depth (parts with XYZ): a plane is fitted (least squares, SVD) to the measured points of
a ring around the region (the local surface), then refitted without the ring points far from it
(more than 3 robust standard deviations: a rim, a bore or the table beside the part); the
region's signed distance to that plane with the largest magnitude is reported in mm, positive
towards the sensor (a bump), negative away from it (a dent or hole).

Where the part's foreground is known (runs with 3D), only foreground pixels can be defect
pixels: the background was removed before scoring, so a hot pixel there is not on the part.
"""

from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np

RING_PX = 7  # width of the ring of surrounding surface the plane is fitted to
MIN_RING_POINTS = 12  # fewer measured points cannot define a plane reliably


@dataclass(frozen=True)
class Region:
    """One defect region of a part.

    Attributes:
        area_px: Pixels in the region (image resolution).
        area_mm2: Surface area in mm² (None without XYZ).
        height_mm: Signed extreme height against the local surface in mm, + towards the
            sensor (None without XYZ or without enough surrounding surface).
        bbox: (x, y, width, height) in image pixels.
        centroid: (x, y) in image pixels.
        peak: Highest anomaly-map value inside the region.
    """

    area_px: int
    area_mm2: float | None
    height_mm: float | None
    bbox: tuple[int, int, int, int]
    centroid: tuple[float, float]
    peak: float

    def as_dict(self) -> dict[str, object]:
        """JSON-friendly form (results.json, report.json)."""
        return {
            "area_px": self.area_px,
            "area_mm2": self.area_mm2,
            "height_mm": self.height_mm,
            "bbox_xywh": list(self.bbox),
            "centroid_xy": [round(c, 1) for c in self.centroid],
            "peak": self.peak,
        }


@dataclass(frozen=True)
class PartDefects:
    """What the pixel cut finds on one part.

    Attributes:
        mask: (H, W) bool defect mask after the minimum-area filter.
        regions: The kept regions, largest first.
        has_xyz: Whether areas in mm² and heights could be measured.
    """

    mask: np.ndarray
    regions: tuple[Region, ...]
    has_xyz: bool = False

    @property
    def area_px(self) -> int:
        """Total defect area in pixels."""
        return int(sum(r.area_px for r in self.regions))

    @property
    def area_mm2(self) -> float | None:
        """Total defect area in mm² (None without XYZ)."""
        if not self.has_xyz:
            return None
        return float(sum(r.area_mm2 or 0.0 for r in self.regions))


def pixel_areas_mm2(xyz: np.ndarray) -> np.ndarray:
    """Surface area in mm² of every pixel of an organised (H, W, 3) point map in metres.

    See the module docstring for the method; missing points ((0, 0, 0)) give 0.
    """
    xyz = np.asarray(xyz, dtype=np.float64)
    valid = np.any(xyz != 0, axis=2)
    if xyz.shape[0] < 2 or xyz.shape[1] < 2 or not valid.any():
        return np.zeros(xyz.shape[:2])
    d_v, d_u = np.gradient(xyz, axis=(0, 1))
    area = np.linalg.norm(np.cross(d_u, d_v), axis=2) * 1e6  # m² -> mm²
    # A difference reaching a missing neighbour spans the gap: use the typical patch instead.
    padded = np.pad(valid, 1, mode="edge")
    interior = padded[:-2, 1:-1] & padded[2:, 1:-1] & padded[1:-1, :-2] & padded[1:-1, 2:]
    clean = valid & interior
    typical = float(np.median(area[clean])) if clean.any() else 0.0
    area = np.where(clean, area, typical)
    return np.where(valid, area, 0.0)


def region_height_mm(xyz: np.ndarray, region: np.ndarray) -> float | None:
    """Signed extreme distance (mm) of a region's points from the plane of its surroundings.

    Args:
        xyz: (H, W, 3) point map in metres ((0, 0, 0) = missing).
        region: (H, W) bool mask of one region.

    Returns:
        + towards the sensor (bump), - away from it (dent); None when the ring around the
        region or the region itself has too few measured points.
    """
    valid = np.any(xyz != 0, axis=2)
    kernel = cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (2 * RING_PX + 1, 2 * RING_PX + 1))
    grown = cv2.dilate(region.astype(np.uint8), kernel).astype(bool)
    ring = grown & ~region & valid
    inside = region & valid
    if ring.sum() < MIN_RING_POINTS or not inside.any():
        return None
    centre, normal = _plane(xyz[ring].astype(np.float64))
    if np.dot(normal, -centre) < 0:  # the sensor sits at the origin: point the normal at it
        normal = -normal
    distances = (xyz[inside].astype(np.float64) - centre) @ normal
    return float(distances[np.argmax(np.abs(distances))] * 1000.0)


def _plane(points: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(centre, unit normal) of the plane through ``points``, refitted once without outliers."""
    centre = points.mean(axis=0)
    normal = np.linalg.svd(points - centre, full_matrices=False)[2][-1]
    residual = np.abs((points - centre) @ normal)
    spread = 1.4826 * float(np.median(np.abs(residual - np.median(residual))))
    inliers = residual <= float(np.median(residual)) + 3.0 * spread
    if spread > 0 and MIN_RING_POINTS <= inliers.sum() < len(points):
        centre = points[inliers].mean(axis=0)
        normal = np.linalg.svd(points[inliers] - centre, full_matrices=False)[2][-1]
    return centre, normal


def part_defects(
    anomaly_map: np.ndarray,
    cut: float,
    *,
    min_area_px: int = 0,
    min_area_mm2: float | None = None,
    xyz: np.ndarray | None = None,
    foreground: np.ndarray | None = None,
) -> PartDefects:
    """Cut one part's map (at image size) into defect regions; drop those below the minimum.

    Args:
        anomaly_map: (H, W) float anomaly map at the image's original size.
        cut: Pixel threshold: ``map >= cut`` is defect.
        min_area_px: Regions with fewer pixels are dropped.
        min_area_mm2: With XYZ, regions with a smaller surface area are dropped too.
        xyz: Optional (H, W, 3) point map in metres (areas in mm², heights).
        foreground: Optional (H, W) bool mask of the part; pixels outside are never defect.
    """
    hot = np.asarray(anomaly_map) >= cut
    if foreground is not None:
        hot &= foreground
    raw = hot.astype(np.uint8)
    count, labels, stats, centroids = cv2.connectedComponentsWithStats(raw, connectivity=8)
    mm2 = pixel_areas_mm2(xyz) if xyz is not None else None
    regions: list[Region] = []
    mask = np.zeros(raw.shape, dtype=bool)
    for label in range(1, count):
        area_px = int(stats[label, cv2.CC_STAT_AREA])
        if area_px < min_area_px:
            continue
        region = labels == label
        area_mm2 = float(mm2[region].sum()) if mm2 is not None else None
        if min_area_mm2 is not None and area_mm2 is not None and area_mm2 < min_area_mm2:
            continue
        x, y, w, h = (int(v) for v in stats[label, :4])
        height = region_height_mm(xyz, region) if xyz is not None else None
        peak = float(np.max(np.asarray(anomaly_map)[region]))
        centre = (float(centroids[label][0]), float(centroids[label][1]))
        regions.append(Region(area_px, area_mm2, height, (x, y, w, h), centre, peak))
        mask |= region
    regions.sort(key=lambda r: -r.area_px)
    return PartDefects(mask, tuple(regions), xyz is not None)
