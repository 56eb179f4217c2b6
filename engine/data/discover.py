"""Find the samples of a dataset folder: MVTec 3D-AD, MVTec AD, Eyecandies, or plain folders.

Discovery only opens file headers; pixels are decoded later by :mod:`engine.data.readers`.
Everything is listed in sorted order so that results never depend on the filesystem. Folders
holding a musc output manifest, and the folders passed as ``exclude`` (the run's own output
folder), are never indexed. A fault stays with its file, or with its category: one bad
category does not stop the others (see :func:`discover_all`).
"""

from __future__ import annotations

import dataclasses
import logging
import os
from collections.abc import Sequence
from pathlib import Path
from typing import NamedTuple

from engine.data import eyecandies
from engine.data.layouts import MASK_DIR_NAMES, Scan, category_layout, sample_name, scan_category
from engine.data.listing import Walker, is_excluded_folder, resolve_all
from engine.data.samples import CategoryFailure, DatasetIndex, Sample
from engine.errors import InvalidInputError
from engine.outputs.manifest import MANIFEST_NAME, is_output_folder

__all__ = [
    "LAYOUT_HELP",
    "MASK_DIR_NAMES",
    "MIN_SAMPLES",
    "STABLE_SAMPLES",
    "DatasetList",
    "Discovery",
    "discover_all",
    "discover_dataset",
    "discover_datasets",
    "discover_parts",
    "sample_name",
]

LAYOUT_HELP = (
    "Supported layouts: (1) MVTec 3D-AD: <category>/test/<type>/rgb/*.png with optional "
    "xyz/*.tiff and gt/*.png; (2) MVTec AD: <category>/test/<type>/*.png with masks in "
    "<category>/ground_truth/<type>/<stem>_mask.png; (3) a plain folder of images (png, jpg, "
    "jpeg, bmp, tif, tiff), optionally with one subfolder per type (good/ok/normal = normal) "
    "and masks in a sibling 'masks' folder; XYZ point maps as float TIFFs named like their "
    "image, or alone for 3D-only scoring; (4) Eyecandies: <Class>/test_public/data/ with "
    "*_image_0.png, *_depth.png, *_info_depth.yaml, *_pose.txt and *_mask.png. A folder "
    "holding several categories also works."
)
MIN_SAMPLES = 2  # mutual scoring compares each sample with the others
STABLE_SAMPLES = 5  # below this the interval average of the paper has too few neighbours

PathLike = str | os.PathLike[str]
logger = logging.getLogger(__name__)


class Discovery(NamedTuple):
    """What :func:`discover_all` found: usable categories and the ones that failed."""

    datasets: list[DatasetIndex]
    failures: list[CategoryFailure]


class DatasetList(list[DatasetIndex]):
    """The usable categories, sorted by name, plus :attr:`failures` (categories left out)."""

    failures: list[CategoryFailure]

    def __init__(self, datasets: Sequence[DatasetIndex], failures: Sequence[CategoryFailure]):
        super().__init__(datasets)
        self.failures = list(failures)


def discover_all(root: PathLike, *, exclude: Sequence[PathLike] = ()) -> Discovery:
    """Index every category under ``root``, keeping each category's fault to itself.

    Args:
        root: A category folder (MVTec 3D-AD, MVTec AD or Eyecandies layout), a folder holding
            several categories, or a plain folder of images (flat or one subfolder per type).
        exclude: Folders whose contents are never indexed, e.g. the run's output folder when it
            lies inside ``root``. Folders holding a ``musc-manifest.json`` are always left out.

    Returns:
        ``(datasets, failures)``: one index per usable category sorted by name, and one
        :class:`CategoryFailure` per category (or unreadable folder) that cannot be scored,
        e.g. one with fewer than 2 usable samples.

    Raises:
        InvalidInputError: ``root`` itself is unusable: missing, a file, excluded, or a musc
            output folder.
    """
    folder = Path(root).expanduser()
    excluded = resolve_all(exclude)
    _check_root(folder, excluded)
    walker = Walker(excluded)
    found = _find_categories(folder, walker)
    datasets, failures = [], []
    for path, layout in found:
        try:
            datasets.append(_index_category(path, layout, excluded))
        except InvalidInputError as err:
            failures.append(CategoryFailure(path, path.name, str(err)))
    for skipped in walker.skipped:  # folders that could not be examined while finding layouts
        owner = next((d for d in datasets if skipped.path.is_relative_to(d.root)), None)
        if owner is not None:
            if all(s.path != skipped.path for s in owner.skipped):
                owner.skipped.append(skipped)
        elif not any(skipped.path.is_relative_to(f.root) for f in failures):
            reason = f"{skipped.path}: {skipped.reason}"
            failures.append(CategoryFailure(skipped.path, skipped.path.name, reason))
    return Discovery(
        sorted(datasets, key=lambda index: index.category),
        sorted(failures, key=lambda failure: (failure.category, str(failure.root))),
    )


def discover_datasets(root: PathLike, *, exclude: Sequence[PathLike] = ()) -> DatasetList:
    """Index every usable category under ``root`` (see :func:`discover_all`).

    Returns:
        The usable categories sorted by name; categories that failed are left out, listed in
        the result's ``failures`` attribute and logged as warnings (so a caller that ignores
        the attribute still loses nothing silently; :func:`discover_all` does not log).

    Raises:
        InvalidInputError: ``root`` is unusable, or no category under it can be indexed (the
            message gives each category's reason).
    """
    datasets, failures = discover_all(root, exclude=exclude)
    if not datasets:
        raise InvalidInputError(_all_failed(Path(root), failures))
    for failure in failures:
        logger.warning("category left out: %s", failure.reason)
    return DatasetList(datasets, failures)


def discover_dataset(root: PathLike, *, exclude: Sequence[PathLike] = ()) -> DatasetIndex:
    """Index a folder that holds exactly one category.

    A folder that could not be examined beside the category is added to its warnings.

    Raises:
        InvalidInputError: As :func:`discover_datasets`, or ``root`` holds several categories.
    """
    indexes = discover_datasets(root, exclude=exclude)
    if len(indexes) > 1:
        names = ", ".join(index.category for index in indexes)
        raise InvalidInputError(
            f"{Path(root)}: holds {len(indexes)} categories ({names}); expected one. Point at "
            "one category folder, or use discover_datasets to index them all."
        )
    index = indexes[0]
    index.warnings.extend(f"left out: {failure.reason}" for failure in indexes.failures)
    return index


def discover_parts(root: PathLike, *, exclude: Sequence[PathLike] = ()) -> DatasetIndex:
    """Index a folder of one category without the sample-count check (line mode).

    Parts arrive one by one, so a folder holding 0 or 1 of them is still filling, not an
    error. Layout, sample names, labels and skipped files are what :func:`discover_dataset`
    gives for the same folder.

    Raises:
        InvalidInputError: ``root`` is unusable (as :func:`discover_all`), or it holds several
            categories.
    """
    folder = Path(root).expanduser()
    excluded = resolve_all(exclude)
    _check_root(folder, excluded)
    walker = Walker(excluded)
    found = _find_categories(folder, walker)
    if len(found) > 1:
        names = ", ".join(path.name for path, _ in found)
        raise InvalidInputError(
            f"{folder}: holds {len(found)} categories ({names}); expected one. Point at one "
            "category folder."
        )
    path, layout = found[0]
    index = _index_category(path, layout, excluded, check_counts=False)
    index.skipped.extend(s for s in walker.skipped if s not in index.skipped)
    return index


def _check_root(folder: Path, excluded: tuple[Path, ...]) -> None:
    kind = Walker().kind(folder)  # no exception for an unreadable path: it is named below
    if kind != "dir":
        found = {None: "folder not found or not readable", "file": "is a file, not a folder"}
        reason = found.get(kind, "is not a folder")
        raise InvalidInputError(f"{folder}: {reason}. Point at a folder of images. {LAYOUT_HELP}")
    if is_output_folder(folder):
        raise InvalidInputError(
            f"{folder}: is a musc output folder (it holds {MANIFEST_NAME}), not a dataset. "
            "Point at the folder of images that was scored."
        )
    if is_excluded_folder(folder, excluded):
        raise InvalidInputError(
            f"{folder}: lies in the output folder of this run. Point at the dataset folder, "
            "or choose another output folder."
        )


def _all_failed(root: Path, failures: list[CategoryFailure]) -> str:
    if len(failures) == 1:
        return failures[0].reason
    if not failures:
        return f"{root}: no images found. {LAYOUT_HELP}"
    return f"{root}: no category can be scored: " + " | ".join(f.reason for f in failures)


def _find_categories(folder: Path, walker: Walker) -> list[tuple[Path, str]]:
    if folder.name == "test" and category_layout(folder.parent, walker):
        folder = folder.parent  # the user picked <category>/test; the masks live beside it
    for inner in (eyecandies.DATA_DIR, eyecandies.DATA_DIR.parent):
        outer = folder.parent if len(inner.parts) == 1 else folder.parent.parent
        if folder == outer / inner and eyecandies.is_eyecandies_class(outer):
            folder = outer  # the user picked <Class>/test_public/data or <Class>/test_public
            break
    own = category_layout(folder, walker)
    if own is not None:
        return [(folder, own)]
    nested = [(sub, category_layout(sub, walker)) for sub in walker.subdirs(folder)]
    found = [(sub, layout) for sub, layout in nested if layout is not None]
    return found or [(folder, "folder")]


def _index_category(
    folder: Path, layout: str, excluded: tuple[Path, ...], check_counts: bool = True
) -> DatasetIndex:
    index = DatasetIndex(root=folder, layout=layout, category=folder.name)
    scan = Scan(index, Walker(excluded))
    scan_category(folder, layout, scan)
    index.skipped.extend(s for s in scan.walker.skipped if s not in index.skipped)
    index.samples, renames = _unique_names(index.samples)
    index.warnings.extend(renames)
    if check_counts:
        _check_counts(index)
    index.warnings.extend(_missing_file_warnings(index.samples, scan.unusable_xyz))
    return index


def _sample_file(sample: Sample) -> Path:
    return sample.rgb_path or sample.xyz_path or Path(sample.name)


def _unique_names(samples: list[Sample]) -> tuple[list[Sample], list[str]]:
    """Samples with unique names, and one warning per rename naming both files.

    Sanitising can map several stems to one name (``a b``, ``a+b``, ``a_b`` -> ``a_b``); later
    ones in sorted order get a numeric suffix, and the user is told which file got which name.
    """
    holders: dict[str, Sample] = {}
    unique, warnings = [], []
    for sample in samples:
        name, counter = sample.name, 2
        while name in holders:
            name, counter = f"{sample.name}_{counter}", counter + 1
        if name != sample.name:
            first = holders[sample.name]
            warnings.append(
                f"{_sample_file(sample)}: its sample name {sample.name!r} is already taken by "
                f"{_sample_file(first)} (names keep only letters, digits, '.', '_', '-'); "
                f"it is named {name!r} instead."
            )
            sample = dataclasses.replace(sample, name=name)
        holders[name] = sample
        unique.append(sample)
    return unique, warnings


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


def _missing_file_warnings(samples: list[Sample], unusable_xyz: int) -> list[str]:
    """One line per kind of partly missing file (only when some samples do have that file).

    XYZ files that exist but are unusable are already reported one by one as skipped files,
    so they are not counted again here.
    """
    warnings = []
    without_xyz = sum(s.xyz_path is None for s in samples) - unusable_xyz
    if 0 < without_xyz and any(s.xyz_path is not None for s in samples):
        warnings.append(
            f"{without_xyz} of {len(samples)} samples have no XYZ point map file; "
            "they are scored on RGB only."
        )
    defective = [s for s in samples if s.label == 1]
    without_mask = sum(s.mask_path is None for s in defective)
    if any(s.mask_path is not None for s in samples) and without_mask:
        warnings.append(
            f"{without_mask} of {len(defective)} defective samples have no ground-truth mask "
            "(or an unreadable one); pixel-level metrics leave them out."
        )
    return warnings
