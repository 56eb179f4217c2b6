"""Readers: every supported pixel format, and a named error for every broken file."""

from __future__ import annotations

import struct
import warnings
import zlib
from pathlib import Path

import numpy as np
import pytest
import tifffile
from PIL import Image

from engine.data import Sample, load_sample_image, read_mask, read_rgb, read_xyz
from engine.errors import InvalidInputError

RGB = np.array([[[10, 20, 30], [40, 50, 60]], [[70, 80, 90], [200, 210, 220]]], dtype=np.uint8)


def png16(path: Path, array: np.ndarray) -> Path:
    """Write a 16-bit RGB (H, W, 3) PNG by hand: Pillow cannot write 48-bit PNGs."""

    def chunk(kind: bytes, data: bytes) -> bytes:
        crc = zlib.crc32(kind + data) & 0xFFFFFFFF
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", crc)

    height, width, _ = array.shape
    rows = b"".join(b"\x00" + array[y].astype(">u2").tobytes() for y in range(height))
    header = struct.pack(">IIBBBBB", width, height, 16, 2, 0, 0, 0)
    png = chunk(b"IHDR", header) + chunk(b"IDAT", zlib.compress(rows)) + chunk(b"IEND", b"")
    path.write_bytes(b"\x89PNG\r\n\x1a\n" + png)
    return path


def save(path: Path, image: Image.Image) -> Path:
    image.save(path)
    return path


def test_rgb_png_and_jpg_shapes(tmp_path: Path) -> None:
    out = read_rgb(save(tmp_path / "a.png", Image.fromarray(RGB)))
    assert out.dtype == np.uint8 and np.array_equal(out, RGB)
    assert read_rgb(save(tmp_path / "a.jpg", Image.fromarray(RGB))).shape == (2, 2, 3)
    assert np.array_equal(read_rgb(save(tmp_path / "a.bmp", Image.fromarray(RGB))), RGB)


def test_grey_is_repeated_to_three_channels(tmp_path: Path) -> None:
    grey = np.array([[0, 100], [200, 255]], dtype=np.uint8)
    out = read_rgb(save(tmp_path / "g.png", Image.fromarray(grey)))
    assert out.shape == (2, 2, 3) and np.array_equal(out[..., 1], grey)
    assert np.array_equal(out[..., 0], out[..., 2])


def test_alpha_is_dropped(tmp_path: Path) -> None:
    rgba = np.dstack([RGB, np.array([[0, 255], [128, 7]], dtype=np.uint8)])
    assert np.array_equal(read_rgb(save(tmp_path / "a.png", Image.fromarray(rgba))), RGB)
    la = Image.fromarray(np.array([[5, 6], [7, 8]], dtype=np.uint8)).convert("LA")
    assert read_rgb(save(tmp_path / "la.png", la))[..., 0].tolist() == [[5, 6], [7, 8]]


def test_palette_image(tmp_path: Path) -> None:
    image = Image.new("P", (2, 1))
    image.putpalette([255, 0, 0, 0, 0, 255] + [0] * 762)
    image.putdata([0, 1])
    assert read_rgb(save(tmp_path / "p.png", image)).tolist() == [[[255, 0, 0], [0, 0, 255]]]


def test_palette_with_transparency_reads_without_warnings(tmp_path: Path) -> None:
    image = Image.new("P", (2, 1))
    image.putpalette([255, 0, 0, 0, 0, 255] + [0] * 762)
    image.putdata([0, 1])
    path = tmp_path / "t.png"
    image.save(path, transparency=b"\x80\xff")  # per-entry alpha: read back as bytes
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # Pillow warns when such images go straight to RGB
        assert read_rgb(path).tolist() == [[[255, 0, 0], [0, 0, 255]]]


def test_16bit_grey_png_is_rounded(tmp_path: Path) -> None:
    # v * 255 / 65535: 128 -> 0.498 -> 0, 129 -> 0.502 -> 1, 257 * k -> k exactly.
    values = np.array([[0, 128, 129, 257, 32896, 65535]], dtype=np.uint16)
    image = Image.fromarray(values)
    assert image.mode.startswith("I;16")
    out = read_rgb(save(tmp_path / "g16.png", image))
    assert out[..., 0].tolist() == [[0, 0, 1, 1, 128, 255]]


def test_16bit_rgb_png_within_one_level(tmp_path: Path) -> None:
    values = np.array([[[0, 65535, 32896], [257, 1000, 60000]]], dtype=np.uint16)
    out = read_rgb(png16(tmp_path / "c16.png", values))
    expected = np.round(values.astype(np.float64) * 255 / 65535)
    assert out.shape == (1, 2, 3) and np.abs(out - expected).max() <= 1


def test_16bit_tiff_is_rounded(tmp_path: Path) -> None:
    values = np.array([[[0, 128, 129], [257, 32896, 65535]]], dtype=np.uint16)
    tifffile.imwrite(tmp_path / "c16.tiff", values, photometric="rgb")
    assert read_rgb(tmp_path / "c16.tiff").tolist() == [[[0, 0, 1], [1, 128, 255]]]


def test_tiff_grey_shapes(tmp_path: Path) -> None:
    tifffile.imwrite(tmp_path / "g.tif", np.array([[1, 2]], dtype=np.uint8))
    assert read_rgb(tmp_path / "g.tif").tolist() == [[[1, 1, 1], [2, 2, 2]]]
    tifffile.imwrite(tmp_path / "g1.tif", np.array([[[3], [4]]], dtype=np.uint8))
    assert read_rgb(tmp_path / "g1.tif").tolist() == [[[3, 3, 3], [4, 4, 4]]]


def test_float_tiff_in_unit_range(tmp_path: Path) -> None:
    tifffile.imwrite(tmp_path / "f.tiff", np.array([[0.0, 0.5, 1.0, 0.2]], dtype=np.float32))
    assert read_rgb(tmp_path / "f.tiff")[..., 0].tolist() == [[0, 128, 255, 51]]


def test_float_tiff_out_of_range_is_rejected(tmp_path: Path) -> None:
    tifffile.imwrite(tmp_path / "f.tiff", np.array([[0.0, 3.0]], dtype=np.float32))
    with pytest.raises(InvalidInputError, match=r"f\.tiff.*\[0, 1\]"):
        read_rgb(tmp_path / "f.tiff")


def test_negative_integers_are_rejected(tmp_path: Path) -> None:
    tifffile.imwrite(tmp_path / "s.tiff", np.array([[-5, 7]], dtype=np.int16))
    with pytest.raises(InvalidInputError, match=r"s\.tiff.*\[-5, 7\]"):
        read_rgb(tmp_path / "s.tiff")


def test_truncated_and_garbage_files_name_the_file(tmp_path: Path) -> None:
    full = save(tmp_path / "full.png", Image.fromarray(np.full((64, 64, 3), 9, np.uint8)))
    data = full.read_bytes()
    (tmp_path / "cut.png").write_bytes(data[: len(data) // 2])
    with pytest.raises(InvalidInputError, match=r"cut\.png: cannot read image"):
        read_rgb(tmp_path / "cut.png")
    (tmp_path / "junk.png").write_bytes(b"not a png")
    with pytest.raises(InvalidInputError, match=r"junk\.png: cannot read image"):
        read_rgb(tmp_path / "junk.png")
    (tmp_path / "junk.tiff").write_bytes(b"not a tiff")
    with pytest.raises(InvalidInputError, match=r"junk\.tiff"):
        read_rgb(tmp_path / "junk.tiff")
    with pytest.raises(InvalidInputError, match=r"absent\.png: file not found"):
        read_rgb(tmp_path / "absent.png")


def test_mask_nonzero_class_ids_are_defects(tmp_path: Path) -> None:
    ids = np.array([[0, 255], [254, 0], [0, 252]], dtype=np.uint8)
    mask = read_mask(save(tmp_path / "m.png", Image.fromarray(ids)), shape=(3, 2))
    assert mask.dtype == bool and mask.tolist() == [[False, True], [True, False], [False, True]]
    rgba = np.zeros((1, 2, 4), dtype=np.uint8)
    rgba[..., 3] = 255  # opaque alpha must not count as defect
    rgba[0, 1, 0] = 255
    assert read_mask(save(tmp_path / "c.png", Image.fromarray(rgba))).tolist() == [[False, True]]


def test_mask_shape_mismatch(tmp_path: Path) -> None:
    path = save(tmp_path / "m.png", Image.fromarray(np.zeros((3, 2), dtype=np.uint8)))
    with pytest.raises(InvalidInputError, match=r"m\.png.*\(3, 2\).*\(4, 5\)"):
        read_mask(path, shape=(4, 5))


def write_tiff(path: Path, array: np.ndarray) -> Path:
    photometric = "rgb" if array.ndim == 3 and array.shape[2] == 3 else "minisblack"
    tifffile.imwrite(path, array, photometric=photometric)
    return path


def test_xyz_nan_points_become_zero(tmp_path: Path) -> None:
    xyz = np.array([[[1, 2, 3], [np.nan, 5, 6]], [[7, np.inf, 9], [0.1, 0.2, 0.7]]], np.float32)
    out = read_xyz(write_tiff(tmp_path / "p.tiff", xyz), shape=(2, 2))
    assert out.dtype == np.float32 and out.shape == (2, 2, 3)
    assert out[0, 1].tolist() == [0, 0, 0] and out[1, 0].tolist() == [0, 0, 0]
    assert out[0, 0].tolist() == [1, 2, 3]


def test_xyz_wrong_shapes(tmp_path: Path) -> None:
    with pytest.raises(InvalidInputError, match=r"d2\.tiff.*\(H, W, 3\).*\(2, 2\)"):
        read_xyz(write_tiff(tmp_path / "d2.tiff", np.ones((2, 2), np.float32)))
    with pytest.raises(InvalidInputError, match=r"c4\.tiff.*\(2, 2, 4\)"):
        read_xyz(write_tiff(tmp_path / "c4.tiff", np.ones((2, 2, 4), np.float32)))
    with pytest.raises(InvalidInputError, match=r"ok\.tiff.*\(2, 2\).*\(3, 3\)"):
        read_xyz(write_tiff(tmp_path / "ok.tiff", np.ones((2, 2, 3), np.float32)), shape=(3, 3))


def test_xyz_all_missing(tmp_path: Path) -> None:
    xyz = np.zeros((2, 2, 3), np.float32)
    xyz[0, 0] = np.nan
    with pytest.raises(InvalidInputError, match=r"z\.tiff: every point .* missing"):
        read_xyz(write_tiff(tmp_path / "z.tiff", xyz))


def test_load_sample_image(tmp_path: Path) -> None:
    path = save(tmp_path / "a.png", Image.fromarray(RGB))
    assert np.array_equal(load_sample_image(Sample("a", path)), RGB)
    with pytest.raises(InvalidInputError, match="sample b: has no RGB image"):
        load_sample_image(Sample("b", None))
