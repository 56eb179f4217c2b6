"""Eyecandies: depth back-projection against a known camera, broken side files, discovery."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from engine.data import depth_to_xyz, discover_dataset, discover_datasets, read_xyz
from engine.data.eyecandies import FOCAL_LENGTH
from engine.errors import InvalidInputError

LOW, HIGH = 0.3, 0.9  # normalization range of the depth png, metres


def rotation(axis: str, angle: float) -> np.ndarray:
    c, s = np.cos(angle), np.sin(angle)
    if axis == "x":
        return np.array([[1, 0, 0], [0, c, -s], [0, s, c]])
    return np.array([[c, 0, s], [0, 1, 0], [-s, 0, c]])


def world_to_camera() -> np.ndarray:
    """A camera ~0.6 m above the world plane z = 0, looking down and slightly sideways."""
    pose = np.eye(4)
    pose[:3, :3] = rotation("y", 0.1) @ rotation("x", np.pi - 0.2)
    pose[:3, 3] = [0.01, -0.02, 0.6]
    return pose


def write_sample(data: Path, stem: str, depth: np.ndarray, pose: np.ndarray, defect: bool) -> None:
    """Write the five files of one sample; ``depth`` in metres within [LOW, HIGH]."""
    data.mkdir(parents=True, exist_ok=True)
    height, width = depth.shape
    raw = np.round((depth - LOW) / (HIGH - LOW) * 65535).astype(np.uint16)
    Image.fromarray(raw).save(data / f"{stem}_depth.png")
    (data / f"{stem}_info_depth.yaml").write_text(f"normalization:\n  max: {HIGH}\n  min: {LOW}\n")
    np.savetxt(data / f"{stem}_pose.txt", pose)
    for light in (0, 1):  # only image_0 is used; the other lights are ignored
        Image.new("RGB", (width, height), (40 * light, 90, 120)).save(
            data / f"{stem}_image_{light}.png"
        )
    mask = np.zeros((height, width), dtype=np.uint8)
    if defect:
        mask[2:5, 3:6] = 255
    Image.fromarray(mask).save(data / f"{stem}_mask.png")


def plane_scene(height: int = 24, width: int = 32) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Depth of the world plane z = 0 seen through the camera, and its world points.

    The camera point of pixel (row j, col i) at depth d is d * r with
    r = ((i - W/2) / f, (j - H/2) / f, 1); the world point is R^T (d r - t), and z_world = 0
    gives d = (R^T t)_z / (R^T r)_z.
    """
    pose = world_to_camera()
    rot, shift = pose[:3, :3], pose[:3, 3]
    rows, cols = np.mgrid[0:height, 0:width].astype(np.float64)
    rays = np.stack(
        [(cols - width / 2) / FOCAL_LENGTH, (rows - height / 2) / FOCAL_LENGTH, np.ones_like(rows)],
        axis=-1,
    )
    depth = (rot.T @ shift)[2] / (rays @ rot)[..., 2]
    world = (depth[..., None] * rays - shift) @ rot  # R^T applied to every row vector
    return depth, world, pose


def test_back_projection_matches_the_analytic_plane(tmp_path: Path) -> None:
    depth, world, pose = plane_scene()
    assert LOW < depth.min() and depth.max() < HIGH
    write_sample(tmp_path, "000", depth, pose, defect=False)
    xyz = depth_to_xyz(tmp_path / "000_depth.png")
    assert xyz.shape == (24, 32, 3) and xyz.dtype == np.float32
    assert np.abs(xyz - world).max() < 1e-4  # 16-bit depth steps are ~9 um here
    assert np.abs(xyz[..., 2]).max() < 1e-4  # every point on the plane z = 0
    assert np.array_equal(read_xyz(tmp_path / "000_depth.png", (24, 32)), xyz)


def test_identity_pose_gives_the_camera_frame(tmp_path: Path) -> None:
    depth = np.full((6, 8), 0.5)
    depth[0, 0] = LOW  # png 0: a valid point at the near limit
    write_sample(tmp_path, "001", depth, np.eye(4), defect=False)
    xyz = depth_to_xyz(tmp_path / "001_depth.png")
    assert np.allclose(xyz[3, 4], [0, 0, 0.5], atol=1e-6)  # the principal point (W/2, H/2)
    assert np.allclose(xyz[5, 7], [3 * 0.5 / FOCAL_LENGTH, 2 * 0.5 / FOCAL_LENGTH, 0.5], atol=1e-6)
    assert np.isclose(xyz[0, 0, 2], LOW, atol=1e-6)


def test_zero_depth_is_missing(tmp_path: Path) -> None:
    raw = np.full((3, 3), 30000, np.uint16)
    raw[0, 0] = 0  # depth = min = 0: no measurement (1/d would be infinite)
    Image.fromarray(raw).save(tmp_path / "a_depth.png")
    (tmp_path / "a_info_depth.yaml").write_text("normalization: {min: 0.0, max: 1.0}\n")
    np.savetxt(tmp_path / "a_pose.txt", np.eye(4))
    xyz = depth_to_xyz(tmp_path / "a_depth.png")
    assert xyz[0, 0].tolist() == [0, 0, 0]
    assert np.all(xyz.reshape(-1, 3)[1:] != 0)  # odd size: no pixel sits on the optical axis


@pytest.mark.parametrize(
    ("name", "content", "message"),
    [
        ("a_info_depth.yaml", None, r"a_info_depth\.yaml: file not found"),
        ("a_info_depth.yaml", "normalization: {min: 0.1}\n", r"a_info_depth\.yaml: expected"),
        ("a_info_depth.yaml", "normalization: [1, 2\n", r"a_info_depth\.yaml: expected"),
        ("a_info_depth.yaml", "normalization: {min: 2, max: 1}\n", r"a_info_depth\.yaml.*min <="),
        ("a_pose.txt", None, r"a_pose\.txt: file not found"),
        ("a_pose.txt", "1 0 0\n0 1 0\n0 0 1\n", r"a_pose\.txt: expected a 4x4.*\(3, 3\)"),
        ("a_pose.txt", "1 0 x 0\n", r"a_pose\.txt: expected a 4x4"),
        ("a_pose.txt", "0 0 0 0\n" * 4, r"a_pose\.txt: the camera pose matrix is singular"),
    ],
)
def test_broken_side_files_name_the_file(
    tmp_path: Path, name: str, content: str | None, message: str
) -> None:
    Image.fromarray(np.full((2, 2), 100, np.uint16)).save(tmp_path / "a_depth.png")
    (tmp_path / "a_info_depth.yaml").write_text("normalization: {min: 0.2, max: 1.0}\n")
    np.savetxt(tmp_path / "a_pose.txt", np.eye(4))
    if content is None:
        (tmp_path / name).unlink()
    else:
        (tmp_path / name).write_text(content)
    with pytest.raises(InvalidInputError, match=message):
        read_xyz(tmp_path / "a_depth.png")


def test_eight_bit_depth_is_rejected(tmp_path: Path) -> None:
    Image.fromarray(np.full((2, 2), 100, np.uint8)).save(tmp_path / "a_depth.png")
    (tmp_path / "a_info_depth.yaml").write_text("normalization: {min: 0.2, max: 1.0}\n")
    np.savetxt(tmp_path / "a_pose.txt", np.eye(4))
    with pytest.raises(InvalidInputError, match=r"a_depth\.png: expected a single-channel 16-bit"):
        depth_to_xyz(tmp_path / "a_depth.png")


def make_class(root: Path, name: str, stems: tuple[str, ...] = ("002", "000", "001")) -> Path:
    depth, _, pose = plane_scene(6, 8)
    for stem in stems:
        write_sample(root / name / "test_public" / "data", stem, depth, pose, defect=stem == "001")
    return root / name


def test_discovery_of_a_class(tmp_path: Path) -> None:
    cls = make_class(tmp_path, "CandyCane")
    data = cls / "test_public" / "data"
    for picked in (cls, cls / "test_public", data):
        index = discover_dataset(picked)
        assert (index.layout, index.category, index.root) == ("eyecandies", "CandyCane", cls)
    assert [s.name for s in index.samples] == ["000", "001", "002"]
    assert [s.label for s in index.samples] == [0, 1, 0]
    assert [s.defect_type for s in index.samples] == ["good", "defective", "good"]
    first = index.samples[0]
    assert first.rgb_path == data / "000_image_0.png"
    assert first.xyz_path == data / "000_depth.png"
    assert first.mask_path == data / "000_mask.png"
    assert all(s.label is not None for s in index.samples) and index.has_xyz and index.skipped == []
    assert read_xyz(first.xyz_path, (6, 8)).shape == (6, 8, 3)


def test_discovery_of_several_classes_and_a_missing_pose(tmp_path: Path) -> None:
    make_class(tmp_path, "Lollipop")
    make_class(tmp_path, "Confetto", ("000", "001", "002", "003", "004"))
    (tmp_path / "Lollipop" / "test_public" / "data" / "002_pose.txt").unlink()
    indexes = discover_datasets(tmp_path)
    assert [(i.category, i.layout, len(i.samples)) for i in indexes] == [
        ("Confetto", "eyecandies", 5),
        ("Lollipop", "eyecandies", 3),
    ]
    lollipop = indexes[1]
    assert lollipop.samples[2].xyz_path is None
    assert [s.path.name for s in lollipop.skipped] == ["002_depth.png"]
    assert "002_pose.txt not found" in lollipop.skipped[0].reason
    # One message per fault: the skipped depth file says it all, no second summary line.
    assert "scored on RGB only" in lollipop.skipped[0].reason
    assert not any("no XYZ point map" in w for w in lollipop.warnings)
