"""Eyecandies: file layout and depth-to-XYZ back-projection (docs/method.md §2).

A class folder holds ``<Class>/test_public/data/`` with, per sample ``NNN``:
``NNN_image_0.png`` (the RGB used by the reference), ``NNN_depth.png`` (16-bit normalised depth),
``NNN_info_depth.yaml`` (``normalization: {min, max}`` in metres), ``NNN_pose.txt`` (4x4) and
``NNN_mask.png`` (nonzero = defect; all zero for normal samples).

The reference back-projects offline into ``*_xyz.tiff``; here the reader does it on the fly
from ``*_depth.png`` so the user's dataset folder is never modified.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import yaml
from PIL import Image

from engine.errors import InvalidInputError

FOCAL_LENGTH = 711.11  # one camera for the whole dataset (Eyecandies documentation)
DATA_DIR = Path("test_public") / "data"
DEPTH_SUFFIX = "_depth.png"
_IMAGE_SUFFIX = "_image_0.png"


@dataclass(frozen=True)
class EyecandiesFiles:
    """The files of one Eyecandies sample; optional ones are None when absent.

    Attributes:
        stem: Sample prefix, e.g. ``"007"``.
        image: ``*_image_0.png``.
        depth: ``*_depth.png``, or None.
        info: ``*_info_depth.yaml``, or None.
        pose: ``*_pose.txt``, or None.
        mask: ``*_mask.png``, or None.
    """

    stem: str
    image: Path
    depth: Path | None
    info: Path | None
    pose: Path | None
    mask: Path | None


def is_depth_png(path: str | Path) -> bool:
    """Whether ``path`` names an Eyecandies depth image (``*_depth.png``, any case)."""
    return Path(path).name.lower().endswith(DEPTH_SUFFIX)


def is_eyecandies_class(folder: Path) -> bool:
    """Whether ``folder`` looks like an Eyecandies class (``test_public/data/*_image_0.png``)."""
    data = folder / DATA_DIR
    return data.is_dir() and any(data.glob(f"*{_IMAGE_SUFFIX}"))


def list_samples(class_dir: Path) -> list[EyecandiesFiles]:
    """The samples of an Eyecandies class folder, sorted by file name.

    Args:
        class_dir: ``<root>/<Class>``.

    Returns:
        One entry per ``*_image_0.png``, with its sibling files where they exist.
    """
    data = class_dir / DATA_DIR
    found = []
    for image in sorted(data.glob(f"*{_IMAGE_SUFFIX}"), key=lambda p: p.name):
        stem = image.name[: -len(_IMAGE_SUFFIX)]

        def sibling(suffix: str, stem: str = stem) -> Path | None:
            path = data / f"{stem}{suffix}"
            return path if path.is_file() else None

        found.append(
            EyecandiesFiles(
                stem=stem,
                image=image,
                depth=sibling(DEPTH_SUFFIX),
                info=sibling("_info_depth.yaml"),
                pose=sibling("_pose.txt"),
                mask=sibling("_mask.png"),
            )
        )
    return found


def companion_files(depth_png: Path) -> tuple[Path, Path]:
    """The ``*_info_depth.yaml`` and ``*_pose.txt`` next to a ``*_depth.png``."""
    prefix = depth_png.name[: -len(DEPTH_SUFFIX)]
    return depth_png.with_name(f"{prefix}_info_depth.yaml"), depth_png.with_name(
        f"{prefix}_pose.txt"
    )


def depth_to_xyz(depth_png_path: str | Path) -> np.ndarray:
    """Back-project an Eyecandies depth image to an organized XYZ map in world coordinates.

    depth = png / 65535 * (max - min) + min (float32, as the reference), then for pixel
    (row j, column i): X = d * (K T)^-1 (i, j, 1, 1/d)^T, first three components, with
    K = [[f, 0, W/2, 0], [0, f, H/2, 0], [0, 0, 1, 0], [0, 0, 0, 1]], f = 711.11 and T the
    4x4 pose. By linearity this is (K T)^-1 (d i, d j, d, 1)^T, which needs no 1/d.

    Args:
        depth_png_path: ``*_depth.png``; its yaml and pose file must lie beside it.

    Returns:
        (H, W, 3) float32; pixels without a positive finite depth are (0, 0, 0).

    Raises:
        InvalidInputError: The png, yaml or pose file is missing or malformed.
    """
    path = Path(depth_png_path)
    info_path, pose_path = companion_files(path)
    low, high = _read_normalization(info_path)
    pose = _read_pose(pose_path)
    raw = _read_depth_png(path)
    # Same float32 arithmetic as the reference's load_and_convert_depth.
    depth = raw.astype(np.float32) / np.float32(65535.0) * np.float32(high - low) + np.float32(low)
    height, width = depth.shape
    intrinsics = np.array(
        [
            [FOCAL_LENGTH, 0.0, width / 2, 0.0],
            [0.0, FOCAL_LENGTH, height / 2, 0.0],
            [0.0, 0.0, 1.0, 0.0],
            [0.0, 0.0, 0.0, 1.0],
        ]
    )
    try:
        inverse = np.linalg.inv(intrinsics @ pose)
    except np.linalg.LinAlgError:
        raise InvalidInputError(
            f"{pose_path}: the camera pose matrix is singular. Re-export the pose file."
        ) from None
    d = depth.astype(np.float64)
    rows, cols = np.mgrid[0:height, 0:width].astype(np.float64)
    homogeneous = np.stack([d * cols, d * rows, d, np.ones_like(d)], axis=-1)
    xyz = (homogeneous @ inverse.T)[..., :3].astype(np.float32)
    invalid = ~(np.isfinite(d) & (d > 0)) | ~np.all(np.isfinite(xyz), axis=-1)
    xyz[invalid] = 0.0
    return xyz


def _read_depth_png(path: Path) -> np.ndarray:
    try:
        with Image.open(path) as img:
            img.load()
            array = np.asarray(img)
    except FileNotFoundError:
        raise InvalidInputError(f"{path}: file not found. Check the path.") from None
    except (OSError, SyntaxError, ValueError) as err:
        raise InvalidInputError(
            f"{path}: cannot read the depth image ({type(err).__name__}: {err}). "
            "Re-export the file or remove it from the folder."
        ) from None
    # Pillow decodes 16-bit grey as "I;16" (uint16) or "I" (int32) depending on its version.
    wide = array.ndim == 2 and array.dtype in (np.uint16, np.int32)
    if not wide or int(array.min()) < 0 or int(array.max()) > 65535:
        raise InvalidInputError(
            f"{path}: expected a single-channel 16-bit depth PNG, found an array of shape "
            f"{array.shape} and type {array.dtype}. Use the dataset's original *_depth.png."
        )
    return array.astype(np.uint16)


def _read_normalization(path: Path) -> tuple[float, float]:
    fix = "Restore the file from the Eyecandies download."
    if not path.is_file():
        raise InvalidInputError(
            f"{path}: file not found; the depth image beside it needs it to convert depth to "
            f"metres (normalization.min/max). {fix}"
        )
    try:
        data = yaml.safe_load(path.read_text())
        low, high = float(data["normalization"]["min"]), float(data["normalization"]["max"])
    except (OSError, yaml.YAMLError, TypeError, KeyError, ValueError) as err:
        raise InvalidInputError(
            f"{path}: expected a YAML mapping with normalization.min and normalization.max "
            f"(metres), could not read them ({type(err).__name__}: {err}). {fix}"
        ) from None
    if not (math.isfinite(low) and math.isfinite(high)) or high < low:
        raise InvalidInputError(
            f"{path}: normalization range [{low}, {high}] is not a finite range with "
            f"min <= max. {fix}"
        )
    return low, high


def _read_pose(path: Path) -> np.ndarray:
    fix = "Restore the file from the Eyecandies download."
    if not path.is_file():
        raise InvalidInputError(
            f"{path}: file not found; the depth image beside it needs the 4x4 camera pose. {fix}"
        )
    try:
        pose = np.loadtxt(path, dtype=np.float64, ndmin=2)
    except (OSError, ValueError) as err:
        raise InvalidInputError(
            f"{path}: expected a 4x4 matrix of numbers, could not parse it "
            f"({type(err).__name__}: {err}). {fix}"
        ) from None
    if pose.shape != (4, 4) or not np.all(np.isfinite(pose)):
        raise InvalidInputError(
            f"{path}: expected a 4x4 matrix of finite numbers, found shape {pose.shape}. {fix}"
        )
    return pose
