"""Defect regions of every part of a run under one decision (CLI, report, exports).

Each part's map is cut at its image size; parts with an XYZ map get areas in mm² and heights
(the point map is read again here, at full resolution: ``ScoreResult.points`` holds only the
sampled foreground on the coarser map grid).
"""

from __future__ import annotations

from collections.abc import Generator

import numpy as np

from engine.data.readers import read_xyz
from engine.decision.model import Decision
from engine.decision.regions import PartDefects
from engine.errors import InvalidInputError
from engine.progress import Progress
from engine.session.results import ScoreResult

STAGE = "defect regions"


def part_xyz(result: ScoreResult, index: int) -> np.ndarray | None:
    """The part's (H, W, 3) point map at its image size, or None without one.

    Raises:
        InvalidInputError: The XYZ file can no longer be read (the message names it).
    """
    path = result.samples[index].xyz_path
    if path is None or result.modality == "2d":
        return None
    return read_xyz(path, result.image_sizes[index])


def usable_xyz(result: ScoreResult, index: int, warnings: list[str]) -> np.ndarray | None:
    """:func:`part_xyz`, or None with a line in ``warnings`` when the file cannot be read now.

    The scores are still valid without it: the part just gets areas in px only.
    """
    try:
        return part_xyz(result, index)
    except (InvalidInputError, OSError) as error:
        warnings.append(f"{result.samples[index].name}: defect areas in px only ({error})")
        return None


def batch_defects(
    result: ScoreResult, decision: Decision, warnings: list[str] | None = None
) -> Generator[Progress, None, list[PartDefects]]:
    """Every part's defect regions, yielding one progress event per part.

    A part whose XYZ map cannot be read any more gets pixel areas only, with a line in
    ``warnings``: the scores are still valid, so the run is not lost.
    """
    found: list[PartDefects] = []
    total = len(result.samples)
    notes = warnings if warnings is not None else []
    for index in range(total):
        found.append(decision.defects(result, index, usable_xyz(result, index, notes)))
        yield Progress(STAGE, index + 1, total, result.samples[index].name)
    return found
