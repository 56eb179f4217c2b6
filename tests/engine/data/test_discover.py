"""Dataset discovery on small layouts built in tmp_path, plus the real MVTec 3D-AD samples."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import tifffile
from PIL import Image

from engine.data import discover_dataset, discover_datasets
from engine.errors import InvalidInputError

SHARED_DATA = (Path(__file__).resolve().parents[3] / ".." / "shared" / "data").resolve()


def write_png(path: Path, value: int = 128, size: tuple[int, int] = (8, 6)) -> Path:
    """A tiny grey RGB image of (W, H) ``size``; the parent folders are created."""
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.new("RGB", size, (value, value, value)).save(path)
    return path


def write_mask(path: Path, defect: bool, size: tuple[int, int] = (8, 6)) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    mask = np.zeros((size[1], size[0]), dtype=np.uint8)
    if defect:
        mask[2:4, 3:5] = 255
    Image.fromarray(mask).save(path)
    return path


def write_xyz(path: Path, size: tuple[int, int] = (8, 6)) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    tifffile.imwrite(path, np.ones((size[1], size[0], 3), dtype=np.float32), photometric="rgb")
    return path


def names(index) -> list[str]:
    return [s.name for s in index.samples]


def make_mvtec3d(cat: Path) -> Path:
    """3 good + 2 bent; good_002 lacks its xyz, bent_001 lacks its gt. Written in reverse order."""
    for kind, stems in (("good", ["002", "001", "000"]), ("bent", ["001", "000"])):
        for stem in stems:
            write_png(cat / "test" / kind / "rgb" / f"{stem}.png")
            if (kind, stem) != ("good", "002"):
                write_xyz(cat / "test" / kind / "xyz" / f"{stem}.tiff")
            if (kind, stem) != ("bent", "001"):
                write_mask(cat / "test" / kind / "gt" / f"{stem}.png", defect=kind != "good")
    return cat


def test_mvtec3d_category(tmp_path: Path) -> None:
    cat = make_mvtec3d(tmp_path / "gland")
    index = discover_dataset(cat)
    assert (index.layout, index.category, index.root) == ("mvtec3d", "gland", cat)
    assert names(index) == ["bent_000", "bent_001", "good_000", "good_001", "good_002"]
    assert [s.label for s in index.samples] == [1, 1, 0, 0, 0]
    assert [s.defect_type for s in index.samples] == ["bent", "bent", "good", "good", "good"]
    bent0, bent1, _, _, good2 = index.samples
    assert bent0.rgb_path == cat / "test" / "bent" / "rgb" / "000.png"
    assert bent0.xyz_path == cat / "test" / "bent" / "xyz" / "000.tiff"
    assert bent0.mask_path == cat / "test" / "bent" / "gt" / "000.png"
    assert bent1.mask_path is None and bent1.xyz_path is not None
    assert good2.xyz_path is None
    assert all(s.label is not None for s in index.samples) and index.has_xyz and index.skipped == []
    assert any("1 of 5 samples have no XYZ" in w for w in index.warnings)
    assert any("1 of 2 defective samples have no ground-truth mask" in w for w in index.warnings)


def test_test_folder_is_redirected_to_its_category(tmp_path: Path) -> None:
    cat = make_mvtec3d(tmp_path / "gland")
    assert discover_dataset(cat / "test").root == cat


def test_multi_category_root(tmp_path: Path) -> None:
    make_mvtec3d(tmp_path / "zeta")
    make_mvtec3d(tmp_path / "alpha")
    (tmp_path / "notes").mkdir()  # an unrelated folder is ignored
    indexes = discover_datasets(tmp_path)
    assert [i.category for i in indexes] == ["alpha", "zeta"]
    assert all(i.layout == "mvtec3d" and len(i.samples) == 5 for i in indexes)
    with pytest.raises(InvalidInputError, match="alpha, zeta") as err:
        discover_dataset(tmp_path)
    assert "discover_datasets" in str(err.value)


def test_mvtec_ad_layout(tmp_path: Path) -> None:
    for stem in ("002", "000", "001"):
        write_png(tmp_path / "test" / "good" / f"{stem}.jpg")
    for stem in ("001", "000"):
        write_png(tmp_path / "test" / "crack" / f"{stem}.png")
    write_mask(tmp_path / "ground_truth" / "crack" / "000_mask.png", defect=True)
    index = discover_dataset(tmp_path)
    assert index.layout == "mvtec_ad"
    assert names(index) == ["crack_000", "crack_001", "good_000", "good_001", "good_002"]
    assert [s.label for s in index.samples] == [1, 1, 0, 0, 0]
    assert index.samples[0].mask_path == tmp_path / "ground_truth" / "crack" / "000_mask.png"
    assert index.samples[1].mask_path is None
    assert all(s.xyz_path is None for s in index.samples)


def test_multi_category_mvtec_ad_root(tmp_path: Path) -> None:
    for cat in ("screw", "bottle"):
        for stem in ("0", "1"):
            write_png(tmp_path / cat / "test" / "good" / f"{stem}.png")
    indexes = discover_datasets(tmp_path)
    assert [(i.category, i.layout, len(i.samples)) for i in indexes] == [
        ("bottle", "mvtec_ad", 2),
        ("screw", "mvtec_ad", 2),
    ]


def test_flat_folder_is_unlabeled_sorted_and_ignores_junk(tmp_path: Path) -> None:
    folder = tmp_path / "line"
    for name in ("e.TIF", "d.PNG", "c.bmp", "b.jpeg", "a.jpg"):
        if name.endswith(".TIF"):
            folder.mkdir(exist_ok=True)
            tifffile.imwrite(folder / name, np.zeros((6, 8, 3), dtype=np.uint8), photometric="rgb")
        else:
            write_png(folder / name)
    write_png(folder / ".hidden.png")
    (folder / "notes.txt").write_text("not an image")
    index = discover_dataset(folder)
    assert (index.layout, index.category) == ("folder", "line")
    assert names(index) == ["a", "b", "c", "d", "e"]
    assert all(s.label is None and s.defect_type is None for s in index.samples)
    assert index.skipped == [] and index.warnings == []


def test_flat_folder_with_sibling_masks(tmp_path: Path) -> None:
    images = tmp_path / "images"
    for stem in "abcde":
        write_png(images / f"{stem}.png")
    write_mask(tmp_path / "masks" / "a.png", defect=True)
    write_mask(tmp_path / "masks" / "b_mask.png", defect=False)
    index = discover_dataset(images)
    by_name = {s.name: s for s in index.samples}
    assert by_name["a"].label == 1 and by_name["a"].mask_path == tmp_path / "masks" / "a.png"
    assert by_name["b"].label == 0 and by_name["b"].mask_path == tmp_path / "masks" / "b_mask.png"
    assert [by_name[n].label for n in "cde"] == [None, None, None]
    # Pointing at the parent of images/ + masks/ gives the same result.
    assert names(discover_dataset(tmp_path)) == list("abcde")
    assert discover_dataset(tmp_path).samples[0].label == 1


def test_typed_subfolders_with_masks(tmp_path: Path) -> None:
    root = tmp_path / "images"
    for stem in ("p2", "p1"):
        write_png(root / "OK" / f"{stem}.png")
        write_png(root / "scratch" / f"{stem}.png")
    write_png(root / "normal" / "p3.png")
    write_mask(tmp_path / "gt" / "scratch" / "p1_mask.png", defect=True)
    index = discover_dataset(root)
    assert index.layout == "folder"
    assert names(index) == ["OK_p1", "OK_p2", "normal_p3", "scratch_p1", "scratch_p2"]
    assert [s.label for s in index.samples] == [0, 0, 0, 1, 1]
    assert index.samples[3].mask_path == tmp_path / "gt" / "scratch" / "p1_mask.png"
    assert index.samples[4].mask_path is None


def test_tiff_next_to_image_is_its_point_map(tmp_path: Path) -> None:
    for stem in ("a", "b", "c"):
        write_png(tmp_path / f"{stem}.png")
    write_xyz(tmp_path / "a.tiff")
    write_xyz(tmp_path / "b.tif")
    tifffile.imwrite(tmp_path / "d.tiff", np.zeros((6, 8), dtype=np.uint8))  # alone: an image
    index = discover_dataset(tmp_path)
    assert names(index) == ["a", "b", "c", "d"]
    xyz = {s.name: s.xyz_path for s in index.samples}
    assert xyz == {"a": tmp_path / "a.tiff", "b": tmp_path / "b.tif", "c": None, "d": None}
    assert index.samples[3].rgb_path == tmp_path / "d.tiff"


def test_names_are_sanitised_and_unique(tmp_path: Path) -> None:
    for name in ("a b.png", "a_b.png", "part #1.png", "x.png", "y.png"):
        write_png(tmp_path / name)
    assert names(discover_dataset(tmp_path)) == ["a_b", "a_b_2", "part__1", "x", "y"]


def test_corrupt_file_is_skipped_and_others_found(tmp_path: Path) -> None:
    for stem in "abcde":
        write_png(tmp_path / f"{stem}.png")
    (tmp_path / "x.png").write_bytes(b"not a png")
    index = discover_dataset(tmp_path)
    assert names(index) == list("abcde")
    assert [s.path for s in index.skipped] == [tmp_path / "x.png"]
    assert "cannot read image header" in index.skipped[0].reason


def test_one_image_is_an_error(tmp_path: Path) -> None:
    write_png(tmp_path / "only.png")
    with pytest.raises(InvalidInputError, match="at least 2 samples") as err:
        discover_dataset(tmp_path)
    assert str(tmp_path) in str(err.value) and "Add more images" in str(err.value)


def test_only_corrupt_files_is_an_error(tmp_path: Path) -> None:
    (tmp_path / "x.png").write_bytes(b"not a png")
    (tmp_path / "y.png").write_bytes(b"")
    with pytest.raises(InvalidInputError, match="2 unreadable files skipped"):
        discover_dataset(tmp_path)


def test_three_images_warn(tmp_path: Path) -> None:
    for stem in "abc":
        write_png(tmp_path / f"{stem}.png")
    index = discover_dataset(tmp_path)
    assert len(index.samples) == 3
    assert any("interval average degenerates below 5 samples" in w for w in index.warnings)


def test_empty_and_missing_folders_are_errors(tmp_path: Path) -> None:
    (tmp_path / "notes.txt").write_text("no images here")
    with pytest.raises(InvalidInputError, match="no images found") as err:
        discover_dataset(tmp_path)
    assert str(tmp_path) in str(err.value) and "MVTec 3D-AD" in str(err.value)
    missing = tmp_path / "nope"
    with pytest.raises(InvalidInputError, match="folder not found") as err:
        discover_datasets(missing)
    assert str(missing) in str(err.value)
    with pytest.raises(InvalidInputError, match="is a file, not a folder"):
        discover_datasets(tmp_path / "notes.txt")


def _real_category(name: str) -> Path:
    path = SHARED_DATA / "mvtec3d" / name
    if not path.is_dir():
        pytest.skip(f"real MVTec 3D-AD samples not found at {path} (shared data absent)")
    return path


@pytest.mark.realdata
def test_real_cable_gland() -> None:
    index = discover_dataset(_real_category("cable_gland"))
    assert (index.layout, index.category, len(index.samples)) == ("mvtec3d", "cable_gland", 53)
    assert {s.defect_type for s in index.samples} == {"bent", "cut", "good", "hole", "thread"}
    assert sum(s.label == 0 for s in index.samples) == 10
    assert all(s.xyz_path is not None for s in index.samples)
    assert all(s.mask_path is not None for s in index.samples if s.label == 1)
    assert index.skipped == [] and index.warnings == []


@pytest.mark.realdata
def test_real_mvtec3d_root() -> None:
    root = _real_category("cable_gland").parent
    indexes = discover_datasets(root)
    assert [i.category for i in indexes] == ["cable_gland", "tire"]
    tire = indexes[1]
    assert len(tire.samples) == 54 and not tire.has_xyz
    assert all(s.label is not None for s in tire.samples)
    assert tire.warnings == []
