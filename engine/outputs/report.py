"""The defect report of a scored run: a summary to sign, the ranked parts, one block per failing
part, and the files behind it (HTML, CSV, JSON, defect masks, PLY point clouds).

:func:`report_steps` gathers everything once, yielding one progress event per part so that a
worker thread can show progress and cancel: it reads each part's image, XYZ map and
ground-truth mask, cuts its defect regions with the run's :class:`~engine.decision.Decision`
(the same call the app and the CLI make, so the outline drawn, the mask exported and the area
reported are one mask), and draws the pictures. The writers (:mod:`engine.outputs.report_html`,
:mod:`engine.outputs.report_files`) only format it. Each export goes into a folder of its own
(:func:`report_folder`), so an earlier report is never overwritten; the PDF needs Qt and is
written by ``musc_gui.export``.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Generator
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

import numpy as np

import engine
from engine.data.samples import DatasetIndex
from engine.decision.batch import usable_xyz
from engine.decision.display import heatmap_levels
from engine.decision.model import Decision, Outcome, outcome
from engine.decision.regions import PartDefects, Region
from engine.outputs import report_files
from engine.outputs.report_html import render_html
from engine.outputs.report_pictures import (
    part_image,
    part_pictures,
    png_bytes,
    truth_mask,
)
from engine.outputs.snapshot import part_snapshot
from engine.progress import Progress, run_to_completion
from engine.session.results import ScoreResult

STAGE = "build report"


@dataclass(frozen=True)
class ReportMeta:
    """Who made the report, when, and for which lot.

    Attributes:
        created: When the report was made (shown, and names the export folder).
        software_version: The MuSc Inspector version that scored and reported.
        lot: Production lot or batch id, as the user typed it ("" = not given).
        operator: Who ran the inspection ("" = not given).
    """

    created: datetime
    software_version: str = engine.__version__
    lot: str = ""
    operator: str = ""


@dataclass(frozen=True)
class PartRow:
    """One part of the ranked table; verdict and regions come from the decision.

    Attributes:
        index: Position in ``result.samples``.
        rank: 1 = highest image score.
        failed: Whether the image score is at or above the decision's image cut.
        regions: The part's defect regions (``Decision.defects``), largest first.
        mask_png: The defect mask of those regions as a PNG (0 / 255, image size).
    """

    index: int
    rank: int
    name: str
    score: float
    label: int | None
    defect_type: str | None
    failed: bool
    regions: tuple[Region, ...]
    area_px: int
    area_mm2: float | None
    mask_png: bytes


@dataclass(frozen=True)
class FailingPart:
    """A failing part with its pictures (encoded JPEG or PNG bytes; see ``picture_bytes``).

    Attributes:
        row: Its row of the ranked table.
        image: The part's image (a depth picture for a 3D-only part).
        overlay: The anomaly map over the image in the app's colormap and levels.
        outline: The image with the defect mask outlined (and the ground truth, if known).
        snapshot: A 3D picture, or None without 3D points.
        snapshot_from_app: Whether the 3D picture is the app's view (else rendered here).
        has_truth: Whether a ground-truth mask is outlined.
    """

    row: PartRow
    image: bytes
    overlay: bytes
    outline: bytes
    snapshot: bytes | None = None
    snapshot_from_app: bool = False
    has_truth: bool = False


@dataclass
class ReportData:
    """Everything a report shows; built by :func:`report_steps`.

    Attributes:
        levels: (low, high) colour levels of every heatmap and 3D picture.
        warnings: Files that could not be used (the report was made without them).
    """

    result: ScoreResult
    metrics: dict[str, dict[str, float]]
    dataset: dict[str, Any]
    decision: Decision
    outcome: Outcome
    meta: ReportMeta
    rows: list[PartRow]
    failing: list[FailingPart]
    levels: tuple[float, float]
    warnings: list[str]

    @property
    def category(self) -> str:
        """The dataset's category, or "" when unknown."""
        return str(self.dataset.get("category") or "")


def dataset_info(dataset: DatasetIndex | None) -> dict[str, Any]:
    """The JSON-friendly summary of a dataset the report shows."""
    if dataset is None:
        return {}
    return {"root": str(dataset.root), "layout": dataset.layout, "category": dataset.category,
            "samples": len(dataset.samples), "skipped": len(dataset.skipped)}  # fmt: skip


def _failing_part(
    result: ScoreResult,
    row: PartRow,
    defects: PartDefects,
    xyz: np.ndarray | None,
    *,
    decision: Decision,
    levels: tuple[float, float],
    snapshots: dict[str, bytes],
    warnings: list[str],
) -> FailingPart:
    rgb = part_image(result, row.index, xyz, warnings)
    truth = truth_mask(result, row.index)
    pictures = part_pictures(rgb, result.anomaly_map(row.index), defects.mask, truth, levels)
    snapshot, from_app = snapshots.get(row.name), row.name in snapshots
    if snapshot is None:
        drawn = part_snapshot(result, row.index, decision, defects, levels)
        snapshot = None if drawn is None else png_bytes(drawn)
    return FailingPart(row, *pictures, snapshot, from_app, truth is not None and truth.any())


def report_steps(
    result: ScoreResult,
    metrics: dict[str, dict[str, float]],
    dataset: DatasetIndex | dict[str, Any] | None,
    decision: Decision,
    meta: ReportMeta,
    *,
    snapshots: dict[str, bytes] | None = None,
) -> Generator[Progress, None, ReportData]:
    """Gather the report of a scored run, one progress event ("build report") per part.

    Args:
        result: The scored run.
        metrics: ``engine.evaluation.evaluate.evaluate_all`` output (may hold empty dicts).
        dataset: ``DatasetIndex`` or its summary dict (see :func:`dataset_info`).
        decision: The run's thresholds: verdicts, regions, masks and areas all come from it.
        meta: Date, software version, lot and operator.
        snapshots: Optional PNG of the app's 3D view per part name; parts with 3D points and
            no snapshot get one rendered without OpenGL (:mod:`engine.outputs.snapshot`).
    """
    info = dict(dataset) if isinstance(dataset, dict) else dataset_info(dataset)
    levels = heatmap_levels(result.maps, decision.pixel.value)
    fails = decision.fails(result.image_scores)
    warnings: list[str] = []
    from_app = dict(snapshots or {})
    rows, failing = [], []
    order = [int(i) for i in result.ranking()]
    for rank, index in enumerate(order, start=1):
        sample = result.samples[index]
        xyz = usable_xyz(result, index, warnings)
        defects = decision.defects(result, index, xyz)
        mask_png = png_bytes(defects.mask.astype(np.uint8) * 255)
        row = PartRow(index, rank, sample.name, float(result.image_scores[index]), sample.label,
                      sample.defect_type, bool(fails[index]), defects.regions, defects.area_px,
                      defects.area_mm2, mask_png)  # fmt: skip
        rows.append(row)
        if row.failed:
            part = _failing_part(result, row, defects, xyz, decision=decision, levels=levels,
                                 snapshots=from_app, warnings=warnings)  # fmt: skip
            failing.append(part)
        yield Progress(STAGE, rank, len(order), sample.name)
    return ReportData(result, metrics, info, decision, outcome(result, decision), meta, rows,
                      failing, levels, warnings)  # fmt: skip


def build_report(
    result: ScoreResult,
    metrics: dict[str, dict[str, float]],
    dataset: DatasetIndex | dict[str, Any] | None,
    decision: Decision,
    meta: ReportMeta,
    *,
    snapshots: dict[str, bytes] | None = None,
    on_event: Callable[[Progress], None] | None = None,
) -> ReportData:
    """:func:`report_steps` run to its end (for the CLI and tests)."""
    steps = report_steps(result, metrics, dataset, decision, meta, snapshots=snapshots)
    return run_to_completion(steps, on_event)


def report_folder(parent: Path, category: str, created: datetime) -> Path:
    """Create and return a new folder ``parent/musc-report-<category>-<YYYYmmdd-HHMMSS>``.

    An existing folder is never reused: ``-2``, ``-3``, ... are appended until the name is
    free (``mkdir`` fails on an existing name, so two exports cannot both take one).
    """
    safe = re.sub(r"[^A-Za-z0-9._-]+", "_", category).strip("._") or "dataset"
    base = f"musc-report-{safe}-{created:%Y%m%d-%H%M%S}"
    parent = Path(parent)
    parent.mkdir(parents=True, exist_ok=True)
    attempt = 1
    while True:
        folder = parent / (base if attempt == 1 else f"{base}-{attempt}")
        try:
            folder.mkdir()
        except FileExistsError:
            attempt += 1
            continue
        return folder


def write_report(folder: Path, data: ReportData) -> list[Path]:
    """Write report.html (self-contained), report.csv, report.json, masks/ and ply/ into
    ``folder`` (each file atomically; the PDF needs Qt, see ``musc_gui.export``).

    Returns:
        The written files.
    """
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    written = [
        report_files.write_bytes(folder / "report.html", render_html(data).encode("utf-8")),
        report_files.write_bytes(folder / "report.csv", report_files.report_csv(data).encode()),
        report_files.write_json(folder / "report.json", data),
    ]
    written += report_files.write_masks(folder / report_files.MASKS_DIR, data)
    written += report_files.write_ply(folder / report_files.PLY_DIR, data)
    return written
