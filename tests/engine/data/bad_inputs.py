"""Builders of bad input files for the corpus tests (kept apart so the tests stay readable)."""

from __future__ import annotations

import io
import struct
from pathlib import Path

import numpy as np
import tifffile
from PIL import Image

SIZE = (8, 6)  # (W, H) of every test image


def png(path: Path, value: int = 128, size: tuple[int, int] = SIZE) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.new("RGB", size, (value, value, value)).save(path)
    return path


def png_bytes(value: int = 128, size: tuple[int, int] = (64, 64), fmt: str = "PNG") -> bytes:
    buffer = io.BytesIO()
    noise = np.random.default_rng(value).integers(0, 255, (size[1], size[0], 3), dtype=np.uint8)
    Image.fromarray(noise).save(buffer, fmt)
    return buffer.getvalue()


def mask(path: Path, defect: bool, size: tuple[int, int] = SIZE) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    array = np.zeros((size[1], size[0]), dtype=np.uint8)
    if defect:
        array[1:3, 2:5] = 255
    Image.fromarray(array).save(path)
    return path


def tiff(path: Path, array: np.ndarray, **kwargs: object) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    if array.ndim == 3 and array.shape[2] == 3:
        kwargs.setdefault("photometric", "rgb")
    tifffile.imwrite(path, array, **kwargs)  # type: ignore[arg-type]
    return path


def xyz_array(size: tuple[int, int] = SIZE, seed: int = 0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    return (rng.random((size[1], size[0], 3)) + 0.1).astype(np.float32)


def xyz(path: Path, size: tuple[int, int] = SIZE, seed: int = 0) -> Path:
    return tiff(path, xyz_array(size, seed))


def plain_folder(folder: Path, count: int = 5, with_xyz: bool = False) -> Path:
    for i in range(count):
        png(folder / f"part_{i}.png", value=40 + i)
        if with_xyz:
            xyz(folder / f"part_{i}.tiff", seed=i)
    return folder


def mvtec3d(category: Path, good: int = 3, bad: int = 2) -> Path:
    for kind, count in (("good", good), ("crack", bad)):
        for i in range(count):
            stem = f"{i:03d}"
            png(category / "test" / kind / "rgb" / f"{stem}.png", value=50 + i)
            xyz(category / "test" / kind / "xyz" / f"{stem}.tiff", seed=i)
            mask(category / "test" / kind / "gt" / f"{stem}.png", defect=kind != "good")
    return category


def mvtec_ad(category: Path, good: int = 3, bad: int = 2) -> Path:
    for kind, count in (("good", good), ("scratch", bad)):
        for i in range(count):
            png(category / "test" / kind / f"{i:03d}.png", value=60 + i)
            if kind != "good":
                mask(category / "ground_truth" / kind / f"{i:03d}_mask.png", defect=True)
    return category


def truncate(path: Path, keep: int | None = None) -> Path:
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2 if keep is None else keep])
    return path


def tiff_with_dims(path: Path, width: int, height: int) -> Path:
    """A small valid TIFF whose header then claims ``width`` x ``height`` pixels."""
    tiff(path, np.zeros((4, 4), np.uint8))
    data = bytearray(path.read_bytes())
    (ifd,) = struct.unpack("<I", data[4:8])
    (count,) = struct.unpack("<H", data[ifd : ifd + 2])
    for i in range(count):
        entry = ifd + 2 + 12 * i
        tag = struct.unpack("<H", data[entry : entry + 2])[0]
        if tag in (256, 257):  # ImageWidth, ImageLength: rewrite as one LONG
            value = width if tag == 256 else height
            data[entry + 2 : entry + 12] = struct.pack("<HII", 4, 1, value)
    path.write_bytes(bytes(data))
    return path


def tiff_with_page_loop(path: Path) -> Path:
    """A TIFF whose second page points back to the first: tifffile would walk it for minutes."""
    tiff(path, np.zeros((4, 4), np.uint8))
    tifffile.imwrite(path, np.zeros((4, 4), np.uint8), append=True)
    data = bytearray(path.read_bytes())
    (first,) = struct.unpack("<I", data[4:8])
    offset = first
    for _ in range(2):  # find the next-IFD field of the second page
        (count,) = struct.unpack("<H", data[offset : offset + 2])
        field = offset + 2 + 12 * count
        (offset,) = struct.unpack("<I", data[field : field + 4])
    data[field : field + 4] = struct.pack("<I", first)
    path.write_bytes(bytes(data))
    return path
