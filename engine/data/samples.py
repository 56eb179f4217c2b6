"""Typed description of a discovered dataset: its samples and the files that were skipped."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

NORMAL_NAMES = frozenset({"good", "ok", "normal"})


@dataclass(frozen=True)
class Sample:
    """One part to score.

    Attributes:
        name: Unique, filesystem-safe id inside its dataset, e.g. ``"bent_006"``.
        rgb_path: Colour or grey image; None for a 3D-only sample.
        xyz_path: Organized XYZ point map on the RGB pixel grid, if any.
        mask_path: Ground-truth defect mask, if any (nonzero = defect).
        label: 0 normal, 1 defective, None unknown (unlabeled data).
        defect_type: Folder name the label came from ("good", "scratch", ...), if any.
    """

    name: str
    rgb_path: Path | None
    xyz_path: Path | None = None
    mask_path: Path | None = None
    label: int | None = None
    defect_type: str | None = None


@dataclass(frozen=True)
class SkippedFile:
    """A file that was found but cannot be used, with the reason in words."""

    path: Path
    reason: str


@dataclass
class DatasetIndex:
    """Everything discovery found in one category folder.

    Attributes:
        root: The folder the user pointed at (or one category inside it).
        layout: ``"mvtec3d"``, ``"mvtec_ad"``, ``"eyecandies"`` or ``"folder"``.
        category: Category name (folder name) for multi-category roots, else the folder name.
        samples: Usable samples, in sorted order.
        skipped: Files found but not usable.
        warnings: Human-readable remarks (e.g. fewer than 5 samples).
    """

    root: Path
    layout: str
    category: str
    samples: list[Sample] = field(default_factory=list)
    skipped: list[SkippedFile] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)

    @property
    def has_xyz(self) -> bool:
        """True when at least one sample has an XYZ point map."""
        return any(s.xyz_path is not None for s in self.samples)


@dataclass(frozen=True)
class CategoryFailure:
    """A category that could not be indexed; the other categories of the folder are unaffected.

    Attributes:
        root: The category folder (or the unreadable folder that may have held one).
        category: Its name, as :attr:`DatasetIndex.category` would have been.
        reason: One line naming the folder and the fault, e.g. too few usable samples.
    """

    root: Path
    category: str
    reason: str
