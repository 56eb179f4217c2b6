"""The machine-readable files of a defect report: CSV, JSON, defect masks and PLY point clouds.

Every value comes from :class:`engine.outputs.report.ReportData` (verdicts and regions from the
run's decision); nothing is recomputed here. Files are written atomically
(:func:`engine.outputs.export.atomic_path`). The keys of report.json follow results.json.
"""

from __future__ import annotations

import csv
import io
import json
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from engine.outputs.export import Verdicts, atomic_path, results_document, scores_csv
from engine.outputs.snapshot import point_colours

if TYPE_CHECKING:
    from engine.outputs.report import PartRow, ReportData

MASKS_DIR = "masks"
PLY_DIR = "ply"


def write_bytes(path: Path, payload: bytes) -> Path:
    """Write ``payload`` to ``path`` atomically (parent folders are created)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    with atomic_path(path) as tmp:
        tmp.write_bytes(payload)
    return path


def _fmt(value: float | None, digits: int = 4) -> str:
    return "" if value is None else f"{value:.{digits}f}"


def max_height_mm(row: PartRow) -> float | None:
    """The region height (or depth, negative) of largest magnitude, None when none is known."""
    heights = [r.height_mm for r in row.regions if r.height_mm is not None]
    return max(heights, key=abs) if heights else None


def _root(data: ReportData) -> Path | None:
    root = data.dataset.get("root")
    return Path(root) if root else None


def report_csv(data: ReportData) -> str:
    """``engine.outputs.export.scores_csv`` plus verdict, region count, areas and height."""
    by_name = {row.name: row for row in data.rows}
    reader = csv.reader(io.StringIO(scores_csv(data.result, _root(data))))
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n")
    header = next(reader)[:6]  # rank, sample, score, label, defect_type, path
    writer.writerow([*header, "verdict", "defect_regions", "defect_area_px",
                     "defect_area_mm2", "max_height_mm"])  # fmt: skip
    for line in reader:
        row = by_name[line[1]]
        writer.writerow([*line[:6], "fail" if row.failed else "pass", len(row.regions),
                         row.area_px, _fmt(row.area_mm2), _fmt(max_height_mm(row))])  # fmt: skip
    return buffer.getvalue()


def report_document(data: ReportData) -> dict[str, Any]:
    """``engine.outputs.export.results_document`` plus report, decision, outcome and regions."""
    meta = data.meta
    extra = {
        "report": {
            "created": meta.created.isoformat(timespec="seconds"),
            "software_version": meta.software_version,
            "lot": meta.lot,
            "operator": meta.operator,
        },  # fmt: skip
        "dataset": data.dataset,
        "colour_levels": list(data.levels),
        "failing": [part.row.name for part in data.failing],
        "warnings": list(data.warnings),
    }
    by_index = sorted(data.rows, key=lambda row: row.index)
    verdicts = Verdicts(data.decision, by_index)
    document = results_document(data.result, data.metrics, extra, _root(data), verdicts)
    for entry, row in zip(document["samples"], by_index, strict=True):
        entry["rank"] = row.rank
    return document


def write_json(path: Path, data: ReportData) -> Path:
    """Write :func:`report_document` as indented JSON."""
    return write_bytes(path, (json.dumps(report_document(data), indent=2) + "\n").encode())


def write_masks(folder: Path, data: ReportData) -> list[Path]:
    """Write ``<part>.png`` defect masks (255 = defect region, image size) for every part."""
    return [write_bytes(Path(folder) / f"{row.name}.png", row.mask_png) for row in data.rows]


def ply_bytes(xyz: np.ndarray, rgb: np.ndarray, values: np.ndarray) -> bytes:
    """A binary little-endian PLY: float32 x, y, z, uint8 colours and the float32 map value."""
    vertex = np.empty(len(xyz), dtype=[("x", "<f4"), ("y", "<f4"), ("z", "<f4"),
                                       ("red", "u1"), ("green", "u1"), ("blue", "u1"),
                                       ("anomaly", "<f4")])  # fmt: skip
    for axis, name in enumerate("xyz"):
        vertex[name] = xyz[:, axis]
    for channel, name in enumerate(("red", "green", "blue")):
        vertex[name] = rgb[:, channel]
    vertex["anomaly"] = values
    header = (
        "ply\nformat binary_little_endian 1.0\n"
        "comment MuSc anomaly map value per point (inferno, grey below the pixel cut)\n"
        f"element vertex {len(xyz)}\nproperty float x\nproperty float y\nproperty float z\n"
        "property uchar red\nproperty uchar green\nproperty uchar blue\n"
        "property float anomaly\nend_header\n"
    )
    return header.encode("ascii") + vertex.tobytes()


def write_ply(folder: Path, data: ReportData) -> list[Path]:
    """Write ``<part>.ply`` for every part with 3D points, coloured like the report's 3D
    pictures: the anomaly map at each point's pixel, at the report's levels.

    Written by hand rather than with open3d, whose writer picks the format from the file name
    and so cannot write to a temporary name.
    """
    result, cut = data.result, data.decision.pixel.value
    written = []
    for row in data.rows:
        cloud = result.points[row.index] if result.points else None
        if cloud is None:
            continue
        values = np.asarray(result.maps[row.index], dtype=np.float64).ravel()[cloud.pixel_index]
        colours = point_colours(values, data.levels, cut)
        payload = ply_bytes(cloud.xyz, colours, values)
        written.append(write_bytes(Path(folder) / f"{row.name}.ply", payload))
    return written
