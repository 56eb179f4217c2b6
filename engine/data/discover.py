"""Find the samples of a dataset folder: MVTec 3D-AD, MVTec AD, or a plain folder of images.

Discovery only opens file headers; pixels are decoded later by :mod:`engine.data.readers`.
Everything is listed in sorted order so that results never depend on the filesystem.
"""

from __future__ import annotations

import dataclasses
import re
from collections.abc import Callable, Iterable
from pathlib import Path

from engine.data import eyecandies
from engine.data.readers import TIFF_EXTENSIONS, is_image_file, probe_header, read_mask
from engine.data.samples import NORMAL_NAMES, DatasetIndex, Sample, SkippedFile
from engine.errors import InvalidInputError

LAYOUT_HELP = (
    "Supported layouts: (1) MVTec 3D-AD: <category>/test/<type>/rgb/*.png with optional "
    "xyz/*.tiff and gt/*.png; (2) MVTec AD: <category>/test/<type>/*.png with masks in "
    "<category>/ground_truth/<type>/<stem>_mask.png; (3) a plain folder of images (png, jpg, "
    "jpeg, bmp, tif, tiff), optionally with one subfolder per type (good/ok/normal = normal) "
    "and masks in a sibling 'masks' folder; (4) Eyecandies: <Class>/test_public/data/ with "
    "*_image_0.png, *_depth.png, *_info_depth.yaml, *_pose.txt and *_mask.png. A folder "
    "holding several categories also works."
)
MASK_DIR_NAMES = ("masks", "ground_truth", "gt")
MIN_SAMPLES = 2  # mutual scoring compares each sample with the others
STABLE_SAMPLES = 5  # below this the interval average of the paper has too few neighbours
_UNSAFE_CHARS = re.compile(r"[^A-Za-z0-9._-]")


def discover_datasets(root: str | Path) -> list[DatasetIndex]:
    """Index every category under ``root``.

    Args:
        root: A category folder (MVTec 3D-AD or MVTec AD layout), a folder holding several
            categories, or a plain folder of images (flat or one subfolder per type).

    Returns:
        One index per category, sorted by category name.

    Raises:
        InvalidInputError: ``root`` does not exist, holds no images, or a category has fewer
            than 2 usable samples.
    """
    folder = Path(root).expanduser()
    if not folder.is_dir():
        found = "is a file, not a folder" if folder.exists() else "folder not found"
        raise InvalidInputError(f"{folder}: {found}. Point at a folder of images. {LAYOUT_HELP}")
    indexes = [_index_category(path, layout) for path, layout in _find_categories(folder)]
    return sorted(indexes, key=lambda index: index.category)


def discover_dataset(root: str | Path) -> DatasetIndex:
    """Index a folder that holds exactly one category.

    Raises:
        InvalidInputError: As :func:`discover_datasets`, or ``root`` holds several categories.
    """
    indexes = discover_datasets(root)
    if len(indexes) > 1:
        names = ", ".join(index.category for index in indexes)
        raise InvalidInputError(
            f"{Path(root)}: holds {len(indexes)} categories ({names}); expected one. Point at "
            "one category folder, or use discover_datasets to index them all."
        )
    return indexes[0]


def sample_name(*parts: str) -> str:
    """Join name parts with ``_`` and replace characters outside ``[A-Za-z0-9._-]`` by ``_``."""
    return _UNSAFE_CHARS.sub("_", "_".join(parts))


def _find_categories(folder: Path) -> list[tuple[Path, str]]:
    if folder.name == "test" and _category_layout(folder.parent):
        folder = folder.parent  # the user picked <category>/test; the masks live beside it
    for inner in (eyecandies.DATA_DIR, eyecandies.DATA_DIR.parent):
        outer = folder.parent if len(inner.parts) == 1 else folder.parent.parent
        if folder == outer / inner and eyecandies.is_eyecandies_class(outer):
            folder = outer  # the user picked <Class>/test_public/data or <Class>/test_public
            break
    own = _category_layout(folder)
    if own is not None:
        return [(folder, own)]
    nested = [(sub, _category_layout(sub)) for sub in _subdirs(folder)]
    found = [(sub, layout) for sub, layout in nested if layout is not None]
    return found or [(folder, "folder")]


def _category_layout(folder: Path) -> str | None:
    if eyecandies.is_eyecandies_class(folder):
        return "eyecandies"
    types = _subdirs(folder / "test")
    if any((type_dir / "rgb").is_dir() for type_dir in types):
        return "mvtec3d"
    if any(_images(type_dir) for type_dir in types):
        return "mvtec_ad"
    return None


def _index_category(folder: Path, layout: str) -> DatasetIndex:
    index = DatasetIndex(root=folder, layout=layout, category=folder.name)
    scanners: dict[str, Callable[[Path, DatasetIndex], None]] = {
        "mvtec3d": _scan_mvtec3d,
        "mvtec_ad": _scan_mvtec_ad,
        "folder": _scan_folder,
        "eyecandies": _scan_eyecandies,
    }
    scanners[layout](folder, index)
    index.samples = _unique_names(index.samples)
    _check_counts(index)
    index.warnings.extend(_missing_file_warnings(index.samples))
    return index


def _scan_mvtec3d(category: Path, index: DatasetIndex) -> None:
    for type_dir in _subdirs(category / "test"):
        for rgb in _usable(_images(type_dir / "rgb"), index):
            xyz_dir, gt_dir = type_dir / "xyz", type_dir / "gt"
            xyz = _first_usable([xyz_dir / f"{rgb.stem}.tiff", xyz_dir / f"{rgb.stem}.tif"], index)
            mask = _first_usable([gt_dir / f"{rgb.stem}.png"], index)
            index.samples.append(_typed_sample(type_dir.name, rgb, xyz, mask))


def _scan_eyecandies(category: Path, index: DatasetIndex) -> None:
    """RGB ``*_image_0.png``, depth as XYZ (the reader back-projects), label from the mask."""
    for files in eyecandies.list_samples(category):
        if not _usable([files.image], index):
            continue
        xyz = _first_usable([files.depth], index) if files.depth is not None else None
        if xyz is not None and (files.info is None or files.pose is None):
            absent = [p.name for p in eyecandies.companion_files(xyz) if not p.is_file()]
            reason = f"{' and '.join(absent)} not found beside it; sample scored on RGB only"
            index.skipped.append(SkippedFile(xyz, reason))
            xyz = None
        mask = _first_usable([files.mask], index) if files.mask is not None else None
        label = _label_from_mask(mask, index) if mask is not None else None
        kind = None if label is None else ("good" if label == 0 else "defective")
        mask = mask if label is not None else None  # an unreadable mask is already skipped
        index.samples.append(Sample(sample_name(files.stem), files.image, xyz, mask, label, kind))


def _scan_mvtec_ad(category: Path, index: DatasetIndex) -> None:
    for type_dir in _subdirs(category / "test"):
        mask_dir = category / "ground_truth" / type_dir.name
        for image in _usable(_images(type_dir), index):
            mask = _first_usable(_mask_candidates(mask_dir, image.stem), index)
            index.samples.append(_typed_sample(type_dir.name, image, None, mask))


def _scan_folder(folder: Path, index: DatasetIndex) -> None:
    files = _images(folder)
    if files:
        _scan_flat(files, _mask_dir(folder), index)
        return
    types = [d for d in _subdirs(folder) if d.name.lower() not in MASK_DIR_NAMES and _images(d)]
    if len(types) == 1 and types[0].name.lower() not in NORMAL_NAMES:
        # A lone subfolder (e.g. images/ next to masks/) says nothing about labels.
        _scan_flat(_images(types[0]), _mask_dir(types[0]), index)
        return
    mask_root = _mask_dir(folder)
    for type_dir in types:
        for image, xyz in _pair_xyz(_images(type_dir), index):
            mask = None
            if mask_root is not None:
                mask = _first_usable(_mask_candidates(mask_root / type_dir.name, image.stem), index)
            index.samples.append(_typed_sample(type_dir.name, image, xyz, mask))


def _scan_flat(files: list[Path], mask_dir: Path | None, index: DatasetIndex) -> None:
    """Unlabeled images; labels come from masks (nonzero = defective) when a mask folder exists."""
    for image, xyz in _pair_xyz(files, index):
        mask, label = None, None
        if mask_dir is not None:
            mask = _first_usable(_mask_candidates(mask_dir, image.stem), index)
            label = _label_from_mask(mask, index) if mask is not None else None
            mask = mask if label is not None else None
        sample = Sample(sample_name(image.stem), image, xyz_path=xyz, mask_path=mask, label=label)
        index.samples.append(sample)


def _pair_xyz(files: list[Path], index: DatasetIndex) -> list[tuple[Path, Path | None]]:
    """Split a folder's files into (image, xyz): ``a.tiff`` next to ``a.png`` is a's point map."""
    tiffs: dict[str, Path] = {}
    for path in files:
        if path.suffix.lower() in TIFF_EXTENSIONS:
            tiffs.setdefault(path.stem, path)
    paired = {path.stem for path in files if path.suffix.lower() not in TIFF_EXTENSIONS}
    xyz_files = {tiffs[stem] for stem in paired if stem in tiffs}
    pairs = []
    for image in _usable([path for path in files if path not in xyz_files], index):
        is_tiff = image.suffix.lower() in TIFF_EXTENSIONS
        xyz = None if is_tiff else tiffs.get(image.stem)
        pairs.append((image, _first_usable([xyz], index) if xyz is not None else None))
    return pairs


def _label_from_mask(mask_path: Path, index: DatasetIndex) -> int | None:
    try:
        return int(read_mask(mask_path).any())
    except InvalidInputError as err:
        index.skipped.append(SkippedFile(mask_path, f"unreadable mask: {err}"))
        return None


def _typed_sample(type_name: str, image: Path, xyz: Path | None, mask: Path | None) -> Sample:
    label = 0 if type_name.lower() in NORMAL_NAMES else 1
    name = sample_name(type_name, image.stem)
    return Sample(name, image, xyz_path=xyz, mask_path=mask, label=label, defect_type=type_name)


def _mask_candidates(mask_dir: Path, stem: str) -> list[Path]:
    return [mask_dir / f"{stem}_mask.png", mask_dir / f"{stem}.png"]


def _mask_dir(folder: Path) -> Path | None:
    """The mask folder of an image folder: inside it, else beside it (``images/`` + ``masks/``)."""
    for base in (folder, folder.parent):
        for name in MASK_DIR_NAMES:
            candidate = base / name
            if candidate.is_dir() and candidate.resolve() != folder.resolve():
                return candidate
    return None


def _subdirs(folder: Path) -> list[Path]:
    return [p for p in _listing(folder) if p.is_dir() and not p.name.startswith(".")]


def _images(folder: Path) -> list[Path]:
    return [p for p in _listing(folder) if is_image_file(p)]


def _listing(folder: Path) -> list[Path]:
    """Entries of ``folder`` sorted by name (never filesystem order); [] if it is no folder."""
    if not folder.is_dir():
        return []
    try:
        return sorted(folder.iterdir(), key=lambda p: p.name)
    except OSError as err:
        raise InvalidInputError(
            f"{folder}: cannot list the folder ({err.strerror or err}). Check its permissions."
        ) from None


def _usable(paths: Iterable[Path], index: DatasetIndex) -> list[Path]:
    """Paths whose header opens; the others are recorded in ``index.skipped``."""
    usable = []
    for path in paths:
        reason = probe_header(path)
        if reason is None:
            usable.append(path)
        else:
            index.skipped.append(SkippedFile(path, reason))
    return usable


def _first_usable(candidates: list[Path], index: DatasetIndex) -> Path | None:
    """The first existing candidate if its header opens (else it is skipped), or None."""
    for path in candidates:
        if path.is_file():
            return next(iter(_usable([path], index)), None)
    return None


def _unique_names(samples: list[Sample]) -> list[Sample]:
    # Sanitising can map two stems to one name ("a b", "a_b"); suffix later ones in sorted order.
    seen: set[str] = set()
    unique = []
    for sample in samples:
        name, counter = sample.name, 2
        while name in seen:
            name, counter = f"{sample.name}_{counter}", counter + 1
        seen.add(name)
        unique.append(dataclasses.replace(sample, name=name) if name != sample.name else sample)
    return unique


def _check_counts(index: DatasetIndex) -> None:
    count = len(index.samples)
    if count == 0 and not index.skipped:
        raise InvalidInputError(f"{index.root}: no images found. {LAYOUT_HELP}")
    if count < MIN_SAMPLES:
        skipped = f" ({len(index.skipped)} unreadable files skipped)" if index.skipped else ""
        raise InvalidInputError(
            f"{index.root}: mutual scoring needs at least {MIN_SAMPLES} samples, found "
            f"{count} usable{skipped}. Add more images of the same product to the folder."
        )
    if count < STABLE_SAMPLES:
        index.warnings.append(
            f"{index.root}: only {count} samples; the interval average degenerates below "
            f"{STABLE_SAMPLES} samples; results may be unstable. Add more images if you can."
        )


def _missing_file_warnings(samples: list[Sample]) -> list[str]:
    """One line per kind of partly missing file (only when some samples do have that file)."""
    warnings = []
    without_xyz = sum(s.xyz_path is None for s in samples)
    if 0 < without_xyz < len(samples):
        warnings.append(
            f"{without_xyz} of {len(samples)} samples have no XYZ point map; "
            "they are scored on RGB only."
        )
    defective = [s for s in samples if s.label == 1]
    without_mask = sum(s.mask_path is None for s in defective)
    if any(s.mask_path is not None for s in samples) and without_mask:
        warnings.append(
            f"{without_mask} of {len(defective)} defective samples have no ground-truth mask; "
            "pixel-level metrics leave them out."
        )
    return warnings
