"""A corpus of bad inputs: each one is reported with its file and reason, or read as documented.

Every case builds its files in ``tmp_path`` and returns the file that is at fault, a pattern of
the reason, and the messages the engine produced (reader errors, skipped files, warnings and
category failures). The bad-mask cases of evaluation live in tests/engine/evaluation and the
weights files in tests/engine/backbones/test_checkpoint_files.py.
"""

from __future__ import annotations

import logging
import os
import re
import signal
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from engine.data import discover_all, read_mask, read_rgb, read_xyz
from engine.errors import InvalidInputError
from tests.engine.data import bad_inputs as make

Case = tuple[Path, str, list[str]]


@contextmanager
def time_limit(seconds: int) -> Iterator[None]:
    """Fail instead of hanging: a corrupt TIFF page chain can keep tifffile busy for minutes."""

    def expire(signum: int, frame: object) -> None:
        raise TimeoutError(f"still reading after {seconds} s")

    previous = signal.signal(signal.SIGALRM, expire)
    signal.alarm(seconds)
    try:
        yield
    finally:
        signal.alarm(0)
        signal.signal(signal.SIGALRM, previous)


def discovery_messages(root: Path) -> list[str]:
    """Every line discovery reports: skipped files, warnings, failed categories."""
    datasets, failures = discover_all(root)
    lines = [f"{s.path}: {s.reason}" for d in datasets for s in d.skipped]
    lines += [w for d in datasets for w in d.warnings]
    return lines + [f.reason for f in failures]


def reader_message(reader: Callable[..., np.ndarray], path: Path, **kwargs: object) -> list[str]:
    try:
        reader(path, **kwargs)
    except InvalidInputError as err:
        return [str(err)]
    return []


# ----------------------------------------------------------------------------- images


def corrupt_png(tmp: Path) -> Case:
    root = make.plain_folder(tmp / "parts")
    bad = root / "part_9.png"
    bad.write_bytes(b"\x89PNG\r\n\x1a\n garbage")
    return bad, r"cannot read image header", discovery_messages(root)


def empty_png(tmp: Path) -> Case:
    root = make.plain_folder(tmp / "parts")
    bad = root / "empty.png"
    bad.write_bytes(b"")
    return bad, r"cannot read image header", discovery_messages(root)


def truncated_png(tmp: Path) -> Case:
    bad = tmp / "cut.png"
    bad.write_bytes(make.png_bytes()[:300])
    return bad, r"cannot read image \(", reader_message(read_rgb, bad)


def truncated_jpg(tmp: Path) -> Case:
    bad = tmp / "cut.jpg"
    bad.write_bytes(make.png_bytes(fmt="JPEG")[:400])
    return bad, r"(?i)cannot read image \(.*truncated", reader_message(read_rgb, bad)


def negative_16bit_tiff(tmp: Path) -> Case:
    bad = make.tiff(tmp / "s.tiff", np.array([[-5, 7]], dtype=np.int16))
    return bad, r"must lie in \[0, 65535\], found \[-5, 7\]", reader_message(read_rgb, bad)


def float_grey_out_of_range(tmp: Path) -> Case:
    bad = make.tiff(tmp / "f.tiff", np.array([[0.0, 3.0]], dtype=np.float32))
    return bad, r"float pixel values must lie in \[0, 1\]", reader_message(read_rgb, bad)


def xyz_read_as_colour(tmp: Path) -> Case:
    bad = make.xyz(tmp / "cloud.tiff")
    return (
        bad,
        r"3 float channels.*XYZ point map, not a colour image",
        reader_message(read_rgb, bad),
    )


def planar_xyz_read_as_colour(tmp: Path) -> Case:
    bad = make.tiff(
        tmp / "planar.tiff",
        np.ones((3, 6, 8), np.float32),
        photometric="rgb",
        planarconfig="separate",
    )
    return bad, r"XYZ point map, not a colour image", reader_message(read_rgb, bad)


def xyz_in_rgb_folder(tmp: Path) -> Case:
    cat = make.mvtec3d(tmp / "gland")
    bad = make.xyz(cat / "test" / "good" / "rgb" / "003.tiff")
    return bad, r"XYZ point map, not a colour image; left out", discovery_messages(cat)


def tiff_page_loop(tmp: Path) -> Case:
    bad = make.tiff_with_page_loop(tmp / "loop.tif")
    return bad, r"page chain loops", reader_message(read_rgb, bad)


def tiff_claiming_huge_size(tmp: Path) -> Case:
    bad = make.tiff_with_dims(tmp / "huge.tif", 200_000, 200_000)
    return bad, r"\(200000, 200000\).*GiB limit", reader_message(read_rgb, bad)


# ----------------------------------------------------------------------------- masks


def wrong_size_mask(tmp: Path) -> Case:
    bad = make.mask(tmp / "m.png", defect=True, size=(5, 4))
    found = reader_message(read_mask, bad, shape=(6, 8))
    return bad, r"mask size \(H, W\) = \(4, 5\) does not match the image size \(6, 8\)", found


def truncated_mask_in_flat_folder(tmp: Path) -> Case:
    root = make.plain_folder(tmp / "parts")
    for i in range(5):
        make.mask(root / "masks" / f"part_{i}.png", defect=i == 0, size=(64, 64))
    bad = root / "masks" / "part_3.png"
    bad.write_bytes(make.png_bytes()[:200])
    return bad, r"unreadable mask: .*cannot read image", discovery_messages(root)


def garbage_mask_in_mvtec3d(tmp: Path) -> Case:
    cat = make.mvtec3d(tmp / "gland")
    bad = cat / "test" / "crack" / "gt" / "001.png"
    bad.write_bytes(b"no png at all")
    return bad, r"cannot read image header", discovery_messages(cat)


# ----------------------------------------------------------------------------- XYZ maps


def nan_only_xyz(tmp: Path) -> Case:
    bad = make.tiff(tmp / "nan.tiff", np.full((6, 8, 3), np.nan, np.float32))
    return bad, r"every point of the XYZ map is missing", reader_message(read_xyz, bad)


def empty_xyz_file(tmp: Path) -> Case:
    cat = make.mvtec3d(tmp / "gland")
    bad = cat / "test" / "good" / "xyz" / "001.tiff"
    bad.write_bytes(b"")
    return bad, r"not a TIFF file", discovery_messages(cat)


def two_channel_xyz(tmp: Path) -> Case:
    bad = make.tiff(tmp / "two.tiff", np.ones((6, 8, 2), np.float32), photometric="minisblack")
    return bad, r"shape \(H, W, 3\), found \(6, 8, 2\)", reader_message(read_xyz, bad)


def xyz_header_only(tmp: Path) -> Case:
    cat = make.mvtec3d(tmp / "gland")
    bad = make.truncate(cat / "test" / "good" / "xyz" / "002.tiff", keep=8)
    return bad, r"past the end of the file .*truncated", discovery_messages(cat)


def xyz_truncated_body(tmp: Path) -> Case:
    bad = make.truncate(make.xyz(tmp / "half.tiff", size=(64, 64)))
    return bad, r"cannot read XYZ point map \(.*\)", reader_message(read_xyz, bad)


def orphan_xyz(tmp: Path) -> Case:
    root = make.plain_folder(tmp / "parts", with_xyz=True)
    bad = make.xyz(root / "stray.tiff")
    return bad, r"XYZ point map without a matching image", discovery_messages(root)


def orphan_xyz_in_mvtec3d(tmp: Path) -> Case:
    cat = make.mvtec3d(tmp / "gland")
    bad = make.xyz(cat / "test" / "good" / "xyz" / "007.tiff")
    return bad, r"XYZ point map without a matching image", discovery_messages(cat)


# ----------------------------------------------------------------------------- folders


def name_collisions(tmp: Path) -> Case:
    root = tmp / "parts"
    for name in ("a b", "a+b", "a_b", "c", "d"):
        make.png(root / f"{name}.png")
    found = discovery_messages(root)
    first = re.escape(str(root / "a b.png"))
    return root / "a_b.png", rf"name 'a_b' is already taken by {first}.*'a_b_3'", found


def broken_link_type_folder(tmp: Path) -> Case:
    cat = make.mvtec_ad(tmp / "screw")
    bad = cat / "test" / "dent"
    os.symlink(tmp / "nowhere", bad)
    return bad, r"broken link to .*nowhere", discovery_messages(cat)


def file_where_type_folder_belongs(tmp: Path) -> Case:
    cat = make.mvtec3d(tmp / "gland")
    bad = cat / "test" / "hole"
    bad.write_text("not a folder")
    return (
        bad,
        r"expected a folder of defect-type images here, found a file",
        discovery_messages(cat),
    )


def file_where_rgb_folder_belongs(tmp: Path) -> Case:
    cat = make.mvtec3d(tmp / "gland")
    bad = cat / "test" / "hole" / "rgb"
    bad.parent.mkdir()
    bad.write_text("not a folder")
    return bad, r"expected a folder here, found a file", discovery_messages(cat)


def one_sample_category(tmp: Path) -> Case:
    make.mvtec_ad(tmp / "root" / "fine")
    bad = tmp / "root" / "lonely"
    make.png(bad / "test" / "good" / "000.png")
    found = discovery_messages(tmp / "root")
    assert [d.category for d in discover_all(tmp / "root").datasets] == ["fine"]
    return bad, r"needs at least 2 samples, found 1 usable", found


CASES = [
    corrupt_png,
    empty_png,
    truncated_png,
    truncated_jpg,
    negative_16bit_tiff,
    float_grey_out_of_range,
    xyz_read_as_colour,
    planar_xyz_read_as_colour,
    xyz_in_rgb_folder,
    tiff_page_loop,
    tiff_claiming_huge_size,
    wrong_size_mask,
    truncated_mask_in_flat_folder,
    garbage_mask_in_mvtec3d,
    nan_only_xyz,
    empty_xyz_file,
    two_channel_xyz,
    xyz_header_only,
    xyz_truncated_body,
    orphan_xyz,
    orphan_xyz_in_mvtec3d,
    name_collisions,
    broken_link_type_folder,
    file_where_type_folder_belongs,
    file_where_rgb_folder_belongs,
    one_sample_category,
]


@pytest.mark.parametrize("case", CASES, ids=lambda case: case.__name__)
def test_bad_input_names_file_and_reason(
    case: Callable[[Path], Case], tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    with caplog.at_level(logging.DEBUG, logger="tifffile"), time_limit(20):
        bad, reason, messages = case(tmp_path)
    naming = [m for m in messages if str(bad) in m]
    assert naming, f"no message names {bad}: {messages}"
    assert any(re.search(reason, m) for m in naming), f"{reason!r} not in {naming}"
    assert len(naming) == 1, f"{bad} is reported more than once: {naming}"
    assert all("\n" not in m for m in messages)
    # tifffile's own log lines are folded into our message, never printed beside it.
    assert [r.getMessage() for r in caplog.records if r.name == "tifffile"] == []


# ----------------------------------------------------------------------------- accepted input


def test_16bit_grey_png_is_read_not_rejected(tmp_path: Path) -> None:
    values = np.array([[0, 257, 65535]], dtype=np.uint16)
    Image.fromarray(values).save(tmp_path / "g16.png")
    assert read_rgb(tmp_path / "g16.png")[0, :, 0].tolist() == [0, 1, 255]


def test_partly_infinite_xyz_keeps_the_finite_points(tmp_path: Path) -> None:
    array = make.xyz_array()
    array[0, 0, 1], array[1, 1, 2] = np.inf, -np.inf
    out = read_xyz(make.tiff(tmp_path / "inf.tiff", array))
    assert out[0, 0].tolist() == [0, 0, 0] and out[1, 1].tolist() == [0, 0, 0]
    assert np.isfinite(out).all() and out[2, 2].tolist() == array[2, 2].tolist()


def test_corrupt_xyz_gives_one_message_and_no_xyz_summary(tmp_path: Path) -> None:
    cat = make.mvtec3d(tmp_path / "gland")
    bad = make.truncate(cat / "test" / "good" / "xyz" / "000.tiff", keep=8)
    (index,) = discover_all(cat).datasets
    assert [s.path for s in index.skipped] == [bad]
    assert not any("XYZ" in w for w in index.warnings)  # the skipped line says it all
    sample = next(s for s in index.samples if s.name == "good_000")
    assert sample.xyz_path is None and sample.rgb_path is not None


def test_xyz_only_folder_yields_3d_samples(tmp_path: Path) -> None:
    for kind in ("good", "bad"):
        for i in range(3):
            make.xyz(tmp_path / "clouds" / kind / f"{i}.tiff", seed=i)
    (index,) = discover_all(tmp_path / "clouds").datasets
    assert [s.name for s in index.samples] == [
        f"{k}_{i}" for k in ("bad", "good") for i in range(3)
    ]
    assert all(s.rgb_path is None and s.xyz_path is not None for s in index.samples)
    assert [s.label for s in index.samples] == [1, 1, 1, 0, 0, 0]
    assert index.has_xyz and index.skipped == []


def test_name_collisions_stay_unique(tmp_path: Path) -> None:
    for name in ("a b", "a+b", "a_b"):
        make.png(tmp_path / "parts" / f"{name}.png")
    (index,) = discover_all(tmp_path / "parts").datasets
    assert [(s.name, s.rgb_path.name) for s in index.samples] == [  # type: ignore[union-attr]
        ("a_b", "a b.png"),
        ("a_b_2", "a+b.png"),
        ("a_b_3", "a_b.png"),
    ]
    renames = [w for w in index.warnings if "already taken" in w]
    assert len(renames) == 2
    assert str(tmp_path / "parts" / "a+b.png") in renames[0] and "'a_b_2'" in renames[0]


def test_unreadable_type_folder_is_named_and_the_rest_indexed(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """We run as root, where chmod 000 changes nothing: the listing itself is made to fail."""
    cat = make.mvtec_ad(tmp_path / "screw")
    locked = cat / "test" / "scratch"
    real_scandir = os.scandir

    def scandir(path: os.PathLike[str] | str):  # type: ignore[no-untyped-def]
        if Path(path) == locked:
            raise PermissionError(13, "Permission denied", str(path))
        return real_scandir(path)

    monkeypatch.setattr(os, "scandir", scandir)
    (index,) = discover_all(cat).datasets
    assert [s.name for s in index.samples] == ["good_000", "good_001", "good_002"]
    assert [s.path for s in index.skipped] == [locked]
    assert "Permission denied" in index.skipped[0].reason


def test_unsearchable_folder_is_named_not_its_child(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Without search permission on test/crack, ``stat(test/crack/rgb)`` fails: the message
    must name test/crack (which the user can fix), not the rgb path inside it."""
    cat = make.mvtec3d(tmp_path / "gland")
    locked = cat / "test" / "crack"
    real_stat = os.stat

    def stat(path: os.PathLike[str] | str, *args: object, **kwargs: object) -> os.stat_result:
        if Path(path).is_relative_to(locked) and Path(path) != locked:
            raise PermissionError(13, "Permission denied", str(path))
        return real_stat(path, *args, **kwargs)  # type: ignore[arg-type]

    monkeypatch.setattr(os, "stat", stat)
    (index,) = discover_all(cat).datasets
    assert {s.defect_type for s in index.samples} == {"good"}
    assert locked in [s.path for s in index.skipped]
    assert all(not s.path.is_relative_to(locked / "rgb") for s in index.skipped)
