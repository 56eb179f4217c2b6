"""Known-good reference parts scored together with a batch (``--reference-good``).

A reference defines "normal" for the decision model (docs/method.md §13): it is scored with the
batch, so mutual scoring also sees more normal parts, and the thresholds come from it. It is
given as a folder (any supported layout; one category) or as a glob of image files. A file that
is already part of the batch is not added twice; it is simply marked as known-good.
"""

from __future__ import annotations

import glob
from dataclasses import replace
from pathlib import Path

from engine.data.discover import discover_dataset
from engine.data.layouts import sample_name
from engine.data.readers import TIFF_EXTENSIONS, is_image_file
from engine.data.samples import DatasetIndex, Sample
from engine.errors import InvalidInputError

PREFIX = "ref"  # reference parts' names start with this, so they never clash with the batch


def _xyz_beside(image: Path) -> Path | None:
    """The point map of ``image``: ``<stem>.tif(f)`` beside it or in ``../xyz/`` (MVTec 3D)."""
    for folder in (image.parent, image.parent.parent / "xyz"):
        for suffix in TIFF_EXTENSIONS:
            candidate = folder / f"{image.stem}{suffix}"
            if candidate.is_file() and candidate != image:
                return candidate
    return None


def reference_samples(pattern: str, exclude: tuple[Path, ...] = ()) -> list[Sample]:
    """The known-good parts named by a folder or a glob of image files.

    Raises:
        InvalidInputError: Nothing usable matches ``pattern``.
    """
    path = Path(pattern)
    if path.is_dir():
        samples = discover_dataset(path, exclude=exclude).samples
    else:
        matches = sorted(Path(p) for p in glob.glob(pattern, recursive=True))
        images = [p for p in matches if p.is_file() and is_image_file(p)
                  and p.suffix.lower() not in TIFF_EXTENSIONS]  # fmt: skip
        samples = [Sample(sample_name(p.parent.name, p.stem), p, _xyz_beside(p), label=0,
                          defect_type="good") for p in images]  # fmt: skip
    if not samples:
        raise InvalidInputError(
            f"{pattern}: no known-good images found. Give a folder of good parts or a glob "
            "such as 'good/*.png'."
        )
    return samples


def with_reference(
    dataset: DatasetIndex, pattern: str, exclude: tuple[Path, ...] = ()
) -> tuple[DatasetIndex, tuple[str, ...]]:
    """``dataset`` plus the known-good parts of ``pattern``, and the reference parts' names.

    Reference parts already in the batch (same image file) are marked, not added again.
    """
    by_file = {
        (s.rgb_path or s.xyz_path).resolve(): s.name  # type: ignore[union-attr]
        for s in dataset.samples
    }
    taken = {s.name for s in dataset.samples}
    added: list[Sample] = []
    names: list[str] = []
    for sample in reference_samples(pattern, exclude):
        key = (sample.rgb_path or sample.xyz_path).resolve()  # type: ignore[union-attr]
        if key in by_file:
            names.append(by_file[key])
            continue
        name, suffix = sample_name(PREFIX, sample.name), 2
        while name in taken:
            name, suffix = sample_name(PREFIX, sample.name, str(suffix)), suffix + 1
        taken.add(name)
        added.append(replace(sample, name=name))
        names.append(name)
    merged = DatasetIndex(dataset.root, dataset.layout, dataset.category,
                          [*dataset.samples, *added], list(dataset.skipped),
                          list(dataset.warnings))  # fmt: skip
    return merged, tuple(dict.fromkeys(names))
