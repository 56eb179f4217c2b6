"""Layout scanners: fill a :class:`DatasetIndex` from one category folder.

Only file headers are opened here; pixels are decoded later by :mod:`engine.data.readers`.
A file that cannot be used becomes a :class:`SkippedFile` with its reason; it never stops the
scan of the others.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path

from engine.data import eyecandies
from engine.data.listing import Walker
from engine.data.readers import TIFF_EXTENSIONS, probe_header, read_mask
from engine.data.samples import NORMAL_NAMES, DatasetIndex, Sample, SkippedFile
from engine.data.tiff import is_xyz_tiff
from engine.errors import InvalidInputError

MASK_DIR_NAMES = ("masks", "ground_truth", "gt")
_UNSAFE_CHARS = re.compile(r"[^A-Za-z0-9._-]")
_XYZ_AS_IMAGE = (
    "holds 3 float channels: an XYZ point map, not a colour image; left out of the images"
)


def sample_name(*parts: str) -> str:
    """Join name parts with ``_`` and replace characters outside ``[A-Za-z0-9._-]`` by ``_``."""
    return _UNSAFE_CHARS.sub("_", "_".join(parts))


@dataclass
class Scan:
    """One category being scanned.

    Attributes:
        index: Receives samples and skipped files.
        walker: Lists folders (excluded folders left out, unreadable ones recorded).
        unusable_xyz: Samples whose XYZ file exists but was skipped (already reported), so the
            summary of samples *without* an XYZ file does not count them a second time.
    """

    index: DatasetIndex
    walker: Walker
    unusable_xyz: int = 0

    def skip(self, path: Path, reason: str) -> None:
        self.index.skipped.append(SkippedFile(path, reason))

    def usable(self, paths: Iterable[Path]) -> list[Path]:
        """Paths whose header opens; the others are skipped with the reason."""
        usable = []
        for path in paths:
            reason = probe_header(path)
            if reason is None:
                usable.append(path)
            else:
                self.skip(path, reason)
        return usable

    def usable_images(self, paths: Iterable[Path]) -> list[Path]:
        """As :meth:`usable`, and an XYZ TIFF is never taken for a colour image."""
        images = []
        for path in self.usable(paths):
            if path.suffix.lower() in TIFF_EXTENSIONS and is_xyz_tiff(path):
                self.skip(path, _XYZ_AS_IMAGE)
            else:
                images.append(path)
        return images

    def first_usable(self, candidates: Iterable[Path]) -> Path | None:
        """The first existing candidate if its header opens (else it is skipped), or None."""
        path = self.walker.first_file(candidates)
        return next(iter(self.usable([path])), None) if path is not None else None

    def xyz(self, candidates: Iterable[Path]) -> Path | None:
        """As :meth:`first_usable`, counting an existing but unusable XYZ file."""
        path = self.walker.first_file(candidates)
        if path is None:
            return None
        usable = self.first_usable([path])
        self.unusable_xyz += usable is None
        return usable


@dataclass(frozen=True)
class _Group:
    """A folder of samples: its defect type (None: labels from masks) and its mask folder."""

    type_name: str | None
    folder: Path
    mask_dir: Path | None


def scan_category(folder: Path, layout: str, scan: Scan) -> None:
    """Fill ``scan.index`` with the samples of ``folder`` in ``layout``."""
    scanners: dict[str, Callable[[Path, Scan], None]] = {
        "mvtec3d": _scan_mvtec3d,
        "mvtec_ad": _scan_mvtec_ad,
        "folder": _scan_folder,
        "eyecandies": _scan_eyecandies,
    }
    scanners[layout](folder, scan)


def category_layout(folder: Path, walker: Walker) -> str | None:
    """The layout of a category folder, or None when ``folder`` is not one."""
    try:
        if eyecandies.is_eyecandies_class(folder):
            return "eyecandies"
    except OSError:
        pass  # unreadable: the listings below record the folder at fault
    types = walker.subdirs(folder / "test")
    if any(walker.is_dir(type_dir / "rgb") for type_dir in types):
        return "mvtec3d"
    if any(walker.images(type_dir) for type_dir in types):
        return "mvtec_ad"
    return None


def _scan_mvtec3d(category: Path, scan: Scan) -> None:
    walker = scan.walker
    walker.files_where_folders_belong(category / "test", "defect-type images")
    for type_dir in walker.subdirs(category / "test"):
        rgb_dir, xyz_dir, gt_dir = (type_dir / name for name in ("rgb", "xyz", "gt"))
        for sub in (rgb_dir, xyz_dir, gt_dir):
            if walker.kind(sub) == "file":
                walker.report(sub, "expected a folder here, found a file; left out")
        listed = walker.images(rgb_dir)
        for rgb in scan.usable_images(listed):
            xyz = scan.xyz([xyz_dir / f"{rgb.stem}.tiff", xyz_dir / f"{rgb.stem}.tif"])
            mask = scan.first_usable([gt_dir / f"{rgb.stem}.png"])
            scan.index.samples.append(_typed_sample(type_dir.name, rgb.stem, rgb, xyz, mask))
        stems = {path.stem for path in listed}
        for xyz in walker.images(xyz_dir):
            if xyz.stem not in stems:
                scan.skip(xyz, _orphan_reason(xyz, rgb_dir))


def _scan_eyecandies(category: Path, scan: Scan) -> None:
    """RGB ``*_image_0.png``, depth as XYZ (the reader back-projects), label from the mask."""
    try:
        listed = eyecandies.list_samples(category)
    except OSError as err:
        scan.walker.report(category / eyecandies.DATA_DIR, f"cannot open the folder ({err})")
        return
    for files in listed:
        if not scan.usable([files.image]):
            continue
        xyz = scan.xyz([files.depth]) if files.depth is not None else None
        if xyz is not None and (files.info is None or files.pose is None):
            absent = [p.name for p in eyecandies.companion_files(xyz) if not p.is_file()]
            reason = f"{' and '.join(absent)} not found beside it; sample scored on RGB only"
            scan.skip(xyz, reason)
            scan.unusable_xyz += 1
            xyz = None
        mask = scan.first_usable([files.mask]) if files.mask is not None else None
        label = _label_from_mask(mask, scan) if mask is not None else None
        kind = None if label is None else ("good" if label == 0 else "defective")
        mask = mask if label is not None else None  # an unreadable mask is already skipped
        scan.index.samples.append(
            Sample(sample_name(files.stem), files.image, xyz, mask, label, kind)
        )


def _scan_mvtec_ad(category: Path, scan: Scan) -> None:
    scan.walker.files_where_folders_belong(category / "test", "defect-type images")
    groups = [
        _Group(type_dir.name, type_dir, category / "ground_truth" / type_dir.name)
        for type_dir in scan.walker.subdirs(category / "test")
    ]
    _scan_groups(groups, scan)


def _scan_folder(folder: Path, scan: Scan) -> None:
    walker = scan.walker
    if walker.images(folder):
        _scan_groups([_Group(None, folder, _mask_dir(folder, walker))], scan)
        return
    types = [
        d
        for d in walker.subdirs(folder)
        if d.name.lower() not in MASK_DIR_NAMES and walker.images(d)
    ]
    if len(types) == 1 and types[0].name.lower() not in NORMAL_NAMES:
        # A lone subfolder (e.g. images/ next to masks/) says nothing about labels.
        _scan_groups([_Group(None, types[0], _mask_dir(types[0], walker))], scan)
        return
    mask_root = _mask_dir(folder, walker)
    groups = [
        _Group(d.name, d, mask_root / d.name if mask_root is not None else None) for d in types
    ]
    _scan_groups(groups, scan)


def _scan_groups(groups: list[_Group], scan: Scan) -> None:
    """Samples of folders that may mix images and XYZ TIFFs.

    ``a.tiff`` beside ``a.png`` is a's point map. An XYZ TIFF without an image is reported as
    an orphan, unless the category holds no colour image at all: then every XYZ map is a
    3D-only sample (no ``rgb_path``), so a folder of point maps is scored in 3D.
    """
    split = [(group, *_split_xyz(scan.walker.images(group.folder), scan)) for group in groups]
    xyz_only = not any(images for _, images, _ in split)
    for group, images, xyz_maps in split:
        if xyz_only:
            for xyz in scan.usable(xyz_maps.values()):
                scan.index.samples.append(_sample(group, None, xyz, scan))
            continue
        stems = {image.stem for image in images}
        for stem, xyz in xyz_maps.items():
            if stem not in stems:
                scan.skip(xyz, _orphan_reason(xyz, group.folder))
        for image in scan.usable_images(images):
            pair = xyz_maps.get(image.stem)
            xyz = scan.xyz([pair]) if pair is not None else None
            scan.index.samples.append(_sample(group, image, xyz, scan))


def _split_xyz(files: list[Path], scan: Scan) -> tuple[list[Path], dict[str, Path]]:
    """(images, XYZ maps by stem): a TIFF is a point map when it shares its stem with a
    non-TIFF image, or when its header says 3 float channels."""
    named = {path.stem for path in files if path.suffix.lower() not in TIFF_EXTENSIONS}
    images: list[Path] = []
    xyz_maps: dict[str, Path] = {}
    for path in files:
        is_tiff = path.suffix.lower() in TIFF_EXTENSIONS
        if not is_tiff or (path.stem not in named and not is_xyz_tiff(path)):
            images.append(path)
        elif path.stem in xyz_maps:
            first = xyz_maps[path.stem].name
            scan.skip(path, f"a second XYZ point map for {path.stem} ({first} is used); left out")
        else:
            xyz_maps[path.stem] = path
    return images, xyz_maps


def _orphan_reason(xyz: Path, image_dir: Path) -> str:
    return (
        f"XYZ point map without a matching image (expected {image_dir / xyz.stem}.png or "
        "another image with the same name); left out"
    )


def _sample(group: _Group, image: Path | None, xyz: Path | None, scan: Scan) -> Sample:
    stem = image.stem if image is not None else xyz.stem if xyz is not None else ""
    mask = None
    if group.mask_dir is not None:
        mask = scan.first_usable(_mask_candidates(group.mask_dir, stem))
    if group.type_name is not None:
        return _typed_sample(group.type_name, stem, image, xyz, mask)
    # Unlabeled images; labels come from masks (nonzero = defective) when a mask folder exists.
    label = _label_from_mask(mask, scan) if mask is not None else None
    mask = mask if label is not None else None
    return Sample(sample_name(stem), image, xyz_path=xyz, mask_path=mask, label=label)


def _label_from_mask(mask_path: Path, scan: Scan) -> int | None:
    try:
        return int(read_mask(mask_path).any())
    except InvalidInputError as err:
        scan.skip(mask_path, f"unreadable mask: {err}")
        return None


def _typed_sample(
    type_name: str, stem: str, image: Path | None, xyz: Path | None, mask: Path | None
) -> Sample:
    label = 0 if type_name.lower() in NORMAL_NAMES else 1
    name = sample_name(type_name, stem)
    return Sample(name, image, xyz_path=xyz, mask_path=mask, label=label, defect_type=type_name)


def _mask_candidates(mask_dir: Path, stem: str) -> list[Path]:
    return [mask_dir / f"{stem}_mask.png", mask_dir / f"{stem}.png"]


def _mask_dir(folder: Path, walker: Walker) -> Path | None:
    """The mask folder of an image folder: inside it, else beside it (``images/`` + ``masks/``)."""
    for base in (folder, folder.parent):
        for name in MASK_DIR_NAMES:
            candidate = base / name
            if walker.is_dir(candidate) and candidate.resolve() != folder.resolve():
                return candidate
    return None
