"""Read images, defect masks and XYZ point maps into plain numpy arrays.

Every failure becomes an :class:`~engine.errors.InvalidInputError` that names the file, so the
CLI and GUI can show it as-is.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
from PIL import Image

from engine.data.eyecandies import depth_to_xyz, is_depth_png
from engine.data.samples import Sample
from engine.data.tiff import describe, is_xyz_layout, read_tiff, tiff_header
from engine.data.xyz import validate_xyz
from engine.errors import InvalidInputError

IMAGE_EXTENSIONS = frozenset({".png", ".jpg", ".jpeg", ".bmp", ".tif", ".tiff"})
TIFF_EXTENSIONS = frozenset({".tif", ".tiff"})
_FIX = "Re-export the file or remove it from the folder."


def is_image_file(path: Path) -> bool:
    """Whether ``path`` is a visible file with a supported image extension (case-insensitive)."""
    return path.is_file() and not path.name.startswith(".") and _suffix(path) in IMAGE_EXTENSIONS


def probe_header(path: Path) -> str | None:
    """Open only the header of an image file.

    Args:
        path: Image file (png, jpg, jpeg, bmp, tif, tiff).

    Returns:
        None when the header can be read, else the reason in words (pixels are not decoded,
        so a truncated body is only caught by the readers).
    """
    try:
        if _suffix(path) in TIFF_EXTENSIONS:
            tiff_header(path)
        else:
            with Image.open(path) as img:
                if img.width == 0 or img.height == 0:
                    return "image has zero size"
    except InvalidInputError as err:
        return str(err)
    # Decoders raise a zoo of types on corrupt input (see engine.data.tiff); all of them mean
    # "this file is unusable", and discovery must go on with the other files.
    except Exception as err:
        return f"cannot read image header ({describe(err)})"
    return None


def read_rgb(path: str | Path) -> np.ndarray:
    """Read a colour or grey image as RGB.

    8- and 16-bit, grey, grey+alpha, RGB, RGBA and palette images are accepted; alpha is
    dropped. 16-bit data is scaled by 255/65535 with rounding, float data must lie in [0, 1].
    Pillow decodes 16-bit *colour* PNGs to their high byte, which is at most one level away
    from the rounded value. Three float channels are an XYZ point map, never a colour image,
    and are refused (float grey and float RGBA are read).

    Args:
        path: png, jpg, jpeg or bmp (read with Pillow) or tif/tiff (read with tifffile).

    Returns:
        Array of shape (H, W, 3), dtype uint8.

    Raises:
        InvalidInputError: The file cannot be read or holds no usable image.
    """
    path = Path(path)
    array = _load_array(path)
    if is_xyz_layout(array.shape, array.dtype):
        raise InvalidInputError(
            f"{path}: holds 3 float channels {array.shape}, an XYZ point map, not a colour "
            "image. Put it beside its image with the same name (e.g. 000.png + 000.tiff), or "
            "use it as 3D data."
        )
    array = _to_hwc(array, path)
    return _to_uint8(array[..., :3], path)


def read_mask(path: str | Path, shape: tuple[int, int] | None = None) -> np.ndarray:
    """Read a ground-truth mask; any nonzero value is a defect (masks may hold class ids).

    Args:
        path: Mask image (usually a uint8 png with 0 and 255/254/...).
        shape: Expected (H, W), normally the image's; None skips the check.

    Returns:
        Boolean array of shape (H, W).

    Raises:
        InvalidInputError: The file cannot be read or its size differs from ``shape``.
    """
    path = Path(path)
    array = _to_hwc(_load_array(path), path)
    # An alpha channel is usually opaque everywhere; only the grey/colour channels carry the mask.
    colour_channels = 1 if array.shape[2] <= 2 else 3
    channels = array[..., :colour_channels]
    mask = np.any(np.nan_to_num(channels) != 0, axis=2)
    _check_shape(path, mask.shape, shape, "mask")
    return mask


def read_xyz(path: str | Path, shape: tuple[int, int] | None = None) -> np.ndarray:
    """Read an organized XYZ point map (one 3D point per image pixel).

    Args:
        path: TIFF file of shape (H, W, 3), e.g. MVTec 3D-AD ``xyz/*.tiff``, or an Eyecandies
            ``*_depth.png`` (back-projected with its ``*_info_depth.yaml`` and ``*_pose.txt``).
        shape: Expected (H, W), normally the RGB image's; None skips the check.

    Returns:
        float32 array (H, W, 3); points with any NaN/inf coordinate (or one beyond the float32
        range) become (0, 0, 0), the marker of a missing measurement.

    Raises:
        InvalidInputError: Unreadable file, not H x W x 3, size differs from ``shape``, or no
            valid point at all.
    """
    path = Path(path)
    if is_depth_png(path):
        return validate_xyz(depth_to_xyz(path), shape, path)
    try:
        array = read_tiff(path)
    except FileNotFoundError:
        raise InvalidInputError(f"{path}: file not found. Check the path.") from None
    except InvalidInputError as err:
        raise InvalidInputError(f"{path}: cannot read XYZ point map ({err}). {_FIX}") from None
    if array.ndim == 3 and array.shape[2] == 3 and 0 not in array.shape:
        if not np.issubdtype(array.dtype, np.number) or np.iscomplexobj(array):
            raise InvalidInputError(f"{path}: unsupported XYZ data type {array.dtype}. {_FIX}")
        # Coordinates beyond the float32 range become inf and so count as missing, like NaN.
        with np.errstate(over="ignore", invalid="ignore"):
            array = array.astype(np.float32)
        array[~np.all(np.isfinite(array), axis=2)] = 0.0
    return validate_xyz(array, shape, path)


def load_sample_image(sample: Sample) -> np.ndarray:
    """Read a sample's RGB image as (H, W, 3) uint8.

    Raises:
        InvalidInputError: The sample has no RGB image or it cannot be read.
    """
    if sample.rgb_path is None:
        raise InvalidInputError(
            f"sample {sample.name}: has no RGB image (3D-only). Use its XYZ map instead."
        )
    return read_rgb(sample.rgb_path)


def _suffix(path: Path) -> str:
    return path.suffix.lower()


def _load_array(path: Path) -> np.ndarray:
    """Decode all pixels of an image file into an array in its native dtype."""
    try:
        if _suffix(path) in TIFF_EXTENSIONS:
            return read_tiff(path)
        with Image.open(path) as img:
            img.load()
            return _pil_to_array(img)
    except FileNotFoundError:
        raise InvalidInputError(f"{path}: file not found. Check the path.") from None
    except InvalidInputError as err:
        raise InvalidInputError(f"{path}: cannot read image ({err}). {_FIX}") from None
    # Pillow raises a zoo of types on corrupt input (OSError, SyntaxError, struct.error,
    # DecompressionBombError ...); all of them mean "this file is unusable".
    except Exception as err:
        raise InvalidInputError(f"{path}: cannot read image ({describe(err)}). {_FIX}") from None


def _pil_to_array(img: Image.Image) -> np.ndarray:
    # Palette and exotic modes are expanded by Pillow; the numeric ones keep full precision.
    if img.mode in ("P", "PA"):
        img = img.convert("RGBA" if "transparency" in img.info or img.mode == "PA" else "RGB")
    elif img.mode == "1":
        img = img.convert("L")
    elif img.mode not in ("L", "LA", "RGB", "RGBA", "F") and not img.mode.startswith("I"):
        img = img.convert("RGB")
    array = np.asarray(img)
    if img.mode.startswith("I;16"):
        array = array.astype(np.uint16)
    return array


def _to_hwc(array: np.ndarray, path: Path) -> np.ndarray:
    """Bring a 2D, (H, W, C) or planar (C, H, W) array to (H, W, C) with C in 1..4."""
    if array.ndim == 3 and array.shape[2] > 4 and 1 <= array.shape[0] <= 4:
        array = np.moveaxis(array, 0, 2)  # planar TIFF
    if array.ndim == 2:
        array = array[:, :, None]
    if array.ndim != 3 or not 1 <= array.shape[2] <= 4:
        raise InvalidInputError(
            f"{path}: expected a 2D image with 1 to 4 channels, found an array of shape "
            f"{array.shape}. {_FIX}"
        )
    if 0 in array.shape:
        raise InvalidInputError(f"{path}: image has zero size {array.shape[:2]}. {_FIX}")
    return array


def _to_uint8(array: np.ndarray, path: Path) -> np.ndarray:
    """Scale an (H, W, 1..4) array to uint8 RGB: grey is repeated, grey+alpha loses alpha."""
    if array.shape[2] == 2:
        array = array[..., :1]
    if array.shape[2] == 1:
        array = np.repeat(array, 3, axis=2)
    dtype = array.dtype
    if dtype == np.uint8:
        return np.ascontiguousarray(array)
    if dtype == np.bool_:
        return array.astype(np.uint8) * 255
    if np.issubdtype(dtype, np.integer):
        low, high = int(array.min()), int(array.max())
        if low < 0 or high > 65535:
            raise InvalidInputError(
                f"{path}: integer pixel values must lie in [0, 65535], found [{low}, {high}]. "
                "Re-export the image as 8- or 16-bit."
            )
        # Integer arithmetic so 65535 -> 255 and 32767.5 rounds half up, without float error.
        return ((array.astype(np.uint32) * 255 + 32767) // 65535).astype(np.uint8)
    if np.issubdtype(dtype, np.floating):
        values = np.nan_to_num(array.astype(np.float64), nan=0.0, posinf=0.0, neginf=0.0)
        low, high = float(values.min()), float(values.max())
        if low < -1e-6 or high > 1 + 1e-6:
            raise InvalidInputError(
                f"{path}: float pixel values must lie in [0, 1], found [{low:g}, {high:g}]. "
                "Re-export the image as 8-bit, 16-bit or float in [0, 1]."
            )
        return np.round(np.clip(values, 0.0, 1.0) * 255.0).astype(np.uint8)
    raise InvalidInputError(f"{path}: unsupported pixel type {dtype}. {_FIX}")


def _check_shape(
    path: Path, found: tuple[int, ...], expected: tuple[int, int] | None, what: str
) -> None:
    if expected is not None and tuple(found) != tuple(expected):
        raise InvalidInputError(
            f"{path}: {what} size (H, W) = {tuple(found)} does not match the image size "
            f"{tuple(expected)}. Export the {what} at the image's resolution."
        )
