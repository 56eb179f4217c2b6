"""The pictures of a report's failing part, and the files they are drawn from.

Each part's image, XYZ map and ground-truth mask are read again here (a run keeps only
scores); a file that can no longer be read costs its picture or its areas in mm², never the
report: the reason goes to the report's warnings. Pictures are thumbnails (longest side
``THUMB_PX``) in the app's colours: heatmap in its colormap at the report's levels, the defect
outline cyan and the ground truth green, as in the image view.
"""

from __future__ import annotations

import cv2
import numpy as np

from engine.data.readers import read_mask, read_rgb
from engine.decision.display import outline, overlay
from engine.errors import InvalidInputError
from engine.session.results import ScoreResult

THUMB_PX = 480  # longest side of the report's pictures (about 200 dpi at a third of A4)
DEFECT_COLOUR = (0, 255, 255)  # cyan, the app's defect contour
TRUTH_COLOUR = (0, 200, 0)  # green, the app's ground-truth outline
JPEG_QUALITY = 90


def png_bytes(image: np.ndarray) -> bytes:
    """An RGB (H, W, 3) or grey (H, W) uint8 image as PNG bytes."""
    ok, encoded = cv2.imencode(".png", image[..., ::-1] if image.ndim == 3 else image)
    if not ok:
        raise OSError("could not encode a PNG image")
    return encoded.tobytes()


def jpeg_bytes(image: np.ndarray) -> bytes:
    """An RGB (H, W, 3) uint8 image as JPEG bytes (quality 90).

    Photographs and heatmaps are 5-10 times smaller as JPEG than as PNG, which keeps a report of
    a hundred failing parts at a few MB; the outlines stay crisp at this quality.
    """
    ok, encoded = cv2.imencode(".jpg", image[..., ::-1], [cv2.IMWRITE_JPEG_QUALITY, JPEG_QUALITY])
    if not ok:
        raise OSError("could not encode a JPEG image")
    return encoded.tobytes()


def part_image(
    result: ScoreResult, index: int, xyz: np.ndarray | None, warnings: list[str]
) -> np.ndarray:
    """The part's image; a depth picture for a 3D-only part; grey when it cannot be read."""
    sample, size = result.samples[index], result.image_sizes[index]
    if sample.rgb_path is not None:
        try:
            rgb = read_rgb(sample.rgb_path)
            if rgb.shape[:2] == tuple(size):
                return rgb
            warnings.append(f"{sample.name}: {sample.rgb_path} changed size since it was scored")
        except (InvalidInputError, OSError) as error:
            warnings.append(f"{sample.name}: pictures drawn without its image ({error})")
    grey = np.full((*size, 3), 128, dtype=np.uint8)
    if xyz is not None and np.any(xyz[..., 2] != 0):
        depth = xyz[..., 2]
        valid = depth != 0
        near, far = float(depth[valid].min()), float(depth[valid].max())
        shade = 230.0 - 180.0 * (depth - near) / max(far - near, 1e-12)  # nearer = lighter
        grey[valid] = np.clip(shade[valid], 0, 255).astype(np.uint8)[:, None]
    return grey


def truth_mask(result: ScoreResult, index: int) -> np.ndarray | None:
    """The part's ground-truth mask at image size, None without a usable one."""
    path = result.samples[index].mask_path
    if path is None:
        return None
    try:
        return read_mask(path, result.image_sizes[index])
    except (InvalidInputError, OSError):
        return None  # the metrics already reported this mask as unusable


def _thumb_size(size: tuple[int, int]) -> tuple[int, int]:
    scale = min(1.0, THUMB_PX / max(size))
    return max(1, round(size[0] * scale)), max(1, round(size[1] * scale))


def part_pictures(
    rgb: np.ndarray,
    anomaly_map: np.ndarray,
    mask: np.ndarray,
    truth: np.ndarray | None,
    levels: tuple[float, float],
) -> tuple[bytes, bytes, bytes]:
    """(image, heatmap overlay, outlines) as JPEGs at thumbnail size.

    Args:
        rgb: (H, W, 3) picture of the part.
        anomaly_map: (H, W) map at image size.
        mask: (H, W) bool defect mask (``Decision.defects``), outlined cyan.
        truth: (H, W) bool ground truth or None, outlined green.
        levels: Colour levels of the heatmap.
    """
    height, width = _thumb_size(rgb.shape[:2])
    small = cv2.resize(rgb, (width, height), interpolation=cv2.INTER_AREA)
    heat = cv2.resize(anomaly_map, (width, height), interpolation=cv2.INTER_LINEAR)

    def shrink(mask: np.ndarray) -> np.ndarray:
        return cv2.resize(mask.astype(np.uint8), (width, height), interpolation=cv2.INTER_NEAREST)

    outlined = small
    if truth is not None and truth.any():
        outlined = outline(outlined, shrink(truth), TRUTH_COLOUR)
    outlined = outline(outlined, shrink(mask), DEFECT_COLOUR)
    return jpeg_bytes(small), jpeg_bytes(overlay(small, heat, levels)), jpeg_bytes(outlined)
