"""Organized XYZ point maps on the image grid: resizing, foreground, and the flat point cloud.

An organized map holds one 3D point (metres) per image pixel, shape (H, W, 3). A point is
*missing* (no measurement, or removed background) exactly when it is (0, 0, 0); the foreground
is every pixel whose three coordinates are all nonzero, as in the reference (docs/method.md §2).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from engine.errors import InvalidInputError


def nearest_source_indices(size_in: int, size_out: int) -> np.ndarray:
    """Source index of every output index under legacy nearest resizing.

    ``src = min(floor(dst * (size_in / size_out)), size_in - 1)`` computed in float32, exactly
    like ``torch.nn.functional.interpolate(mode="nearest")`` (the reference's XYZ resize), so
    the chosen pixels match the reference bit for bit.

    Args:
        size_in: Input length (rows or columns).
        size_out: Output length.

    Returns:
        int64 array of shape (size_out,).
    """
    if size_in == size_out:
        return np.arange(size_out, dtype=np.int64)
    if size_out == 2 * size_in:  # torch special-cases exact doubling with a shift
        return np.arange(size_out, dtype=np.int64) >> 1
    scale = np.float32(size_in) / np.float32(size_out)
    src = np.floor(np.arange(size_out, dtype=np.float32) * scale).astype(np.int64)
    return np.minimum(src, size_in - 1)


def resize_xyz(xyz: np.ndarray, size: int | tuple[int, int]) -> np.ndarray:
    """Resize an organized map (or any (H, W, ...) array, e.g. a mask) by legacy nearest.

    Every output pixel copies exactly one input pixel, so valid and missing points never mix
    (averaging a valid point with a (0, 0, 0) one would invent a point between part and camera).

    Args:
        xyz: Array of shape (H, W) or (H, W, C); dtype is kept.
        size: Output side, or (height, width).

    Returns:
        Array of shape (out_h, out_w, ...) with ``xyz``'s dtype.
    """
    out_h, out_w = (size, size) if isinstance(size, int) else size
    if out_h <= 0 or out_w <= 0:
        raise InvalidInputError(f"resize_xyz: output size must be positive, got {size}.")
    rows = nearest_source_indices(xyz.shape[0], out_h)
    cols = nearest_source_indices(xyz.shape[1], out_w)
    return xyz[rows[:, None], cols[None, :]]


def foreground_mask(xyz: np.ndarray) -> np.ndarray:
    """(H, W) bool: the pixels whose three coordinates are all nonzero (docs/method.md §2)."""
    return np.all(xyz != 0, axis=-1)


def mask_xyz(xyz: np.ndarray, keep: np.ndarray) -> np.ndarray:
    """A copy of ``xyz`` with every pixel outside ``keep`` set to the missing point (0, 0, 0)."""
    return np.where(keep[..., None], xyz, np.zeros((), dtype=xyz.dtype))


def validate_xyz(
    xyz: np.ndarray, rgb_shape: tuple[int, ...] | None, path: str | Path | None
) -> np.ndarray:
    """Check that an organized map is usable next to its RGB image.

    Args:
        xyz: Candidate point map (already decoded; NaN/inf mapped to 0 by the reader).
        rgb_shape: Shape of the RGB image, (H, W) or (H, W, 3); None skips the size check.
        path: The file the map came from, named in the error (None: "XYZ point map").

    Returns:
        ``xyz`` unchanged, so the call can be chained.

    Raises:
        InvalidInputError: Not (H, W, 3), size differs from the RGB image, or no valid point.
    """
    where = str(path) if path is not None else "XYZ point map"
    if xyz.ndim != 3 or xyz.shape[2] != 3 or 0 in xyz.shape:
        raise InvalidInputError(
            f"{where}: expected an XYZ point map of shape (H, W, 3), found {xyz.shape}. "
            "Export the organized point cloud as a 3-channel float TIFF."
        )
    if rgb_shape is not None and tuple(xyz.shape[:2]) != tuple(rgb_shape[:2]):
        raise InvalidInputError(
            f"{where}: XYZ point map size (H, W) = {tuple(xyz.shape[:2])} does not match the "
            f"image size {tuple(rgb_shape[:2])}. Export the XYZ point map at the image's "
            "resolution (one 3D point per image pixel)."
        )
    if not foreground_mask(xyz).any():
        raise InvalidInputError(
            f"{where}: every point of the XYZ map is missing (all zero or NaN). "
            "Check the export, or remove the file to score this sample on RGB only."
        )
    return xyz


def organized_to_cloud(
    xyz: np.ndarray, mask: np.ndarray | None = None
) -> tuple[np.ndarray, np.ndarray]:
    """Flatten an organized map to its foreground points and their pixel indices.

    Args:
        xyz: (H, W, 3) organized map (usually already resized to the working grid).
        mask: Optional (H, W) bool, e.g. from background removal; it is intersected with the
            foreground, so a missing point never enters the cloud.

    Returns:
        (points, pixel_index): (P, 3) float32 points in row-major pixel order and (P,) int64
        ascending pixel indices ``u = row * W + col`` of the same grid (docs/method.md §2).
    """
    keep = foreground_mask(xyz)
    if mask is not None:
        if mask.shape != keep.shape:
            raise InvalidInputError(
                f"organized_to_cloud: mask shape {mask.shape} does not match the XYZ grid "
                f"{keep.shape}; resize the mask with resize_xyz first."
            )
        keep &= mask.astype(bool)
    pixel_index = np.flatnonzero(keep).astype(np.int64)
    points = xyz.reshape(-1, 3)[pixel_index].astype(np.float32, copy=False)
    return points, pixel_index


def normalize_cloud(points: np.ndarray) -> tuple[np.ndarray, np.ndarray, float]:
    """Centre a cloud on its mean, scale it to the unit ball (``pc_normalize``, docs/method.md §2).

    Args:
        points: (P, 3) foreground points, P >= 1.

    Returns:
        (normalized, centroid, scale): float32 points, the (3,) centroid and the divisor (max
        norm after centring; 1.0 for a single point, so nothing is divided by zero).
    """
    if points.ndim != 2 or points.shape[1] != 3 or points.shape[0] == 0:
        raise InvalidInputError(
            f"normalize_cloud: expected (P, 3) points with P >= 1, found {points.shape}."
        )
    centroid = points.mean(axis=0)
    centred = points - centroid
    scale = float(np.sqrt((centred**2).sum(axis=1)).max())
    scale = scale if scale > 0 else 1.0
    return (centred / scale).astype(np.float32), centroid.astype(np.float32), scale
