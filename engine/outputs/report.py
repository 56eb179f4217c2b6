"""The defect report of a scored run: what failed, where, how large, as HTML/CSV/JSON/PNG/PLY.

``build_report`` gathers everything once (images, overlays, defect areas); the writers only
format it. Every file is written atomically (``engine.outputs.export.atomic_path``) and an
existing file
is never replaced unless ``overwrite=True``.

Defect area in mm² (parts with an XYZ map): the XYZ map is read at the image's original size and
every pixel's surface patch is ``|dX/du x dX/dv|`` (central differences of the organised point
map, one-sided at the border). Summing it over the defect pixels (``map >= pixel threshold``)
measures the area on the surface itself, so a tilted or curved defect is not under-counted the
way a flat "pixels x pixel pitch" estimate would be. Pixels without a measured point contribute
nothing; measured pixels next to a missing point (object silhouette, holes) take the median
patch of the part, since their differences would span the gap. The full-resolution point map is
used rather than ``result.points`` because the latter lives on the coarser S x S grid and only
on the sampled foreground.
"""

from __future__ import annotations

import base64
import csv
import html
import io
import json
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import cv2
import numpy as np

from engine.data.readers import read_rgb, read_xyz
from engine.data.samples import DatasetIndex
from engine.errors import MuscError
from engine.outputs.export import atomic_path, heatmap_overlay, results_document, scores_csv
from engine.session.results import ScoreResult

REPORT_FILES = ("report.html", "report.csv", "report.json")
MASKS_DIR = "masks"
PLY_DIR = "ply"


class ReportExistsError(MuscError, FileExistsError):
    """A report file is already there and ``overwrite`` was not asked for."""


@dataclass(frozen=True)
class PartRow:
    """One sample of the ranked table."""

    index: int
    rank: int
    name: str
    score: float
    label: int | None
    defect_type: str | None
    failed: bool
    area_px: int
    area_mm2: float | None


@dataclass(frozen=True)
class FailingPart:
    """A part at or above the image threshold, with its pictures (PNG bytes)."""

    row: PartRow
    image_png: bytes
    overlay_png: bytes
    snapshot_png: bytes | None = None


@dataclass
class ReportData:
    """Everything a report shows; built by :func:`build_report`."""

    result: ScoreResult
    metrics: dict[str, dict[str, float]]
    dataset: dict[str, Any]
    image_threshold: float
    pixel_threshold: float
    rows: list[PartRow]
    failing: list[FailingPart]
    notes: dict[str, str] = field(default_factory=dict)

    def defect_mask(self, index: int) -> np.ndarray:
        """(H, W) bool defect mask of one sample at its original size."""
        return self.result.anomaly_map(index) >= self.pixel_threshold


# --------------------------------------------------------------------------- building


def _png(rgb: np.ndarray) -> bytes:
    ok, encoded = cv2.imencode(".png", rgb[..., ::-1] if rgb.ndim == 3 else rgb)
    if not ok:
        raise OSError("could not encode a PNG image")
    return encoded.tobytes()


def pixel_areas_mm2(xyz: np.ndarray) -> np.ndarray:
    """Surface area in mm² of every pixel of an organised (H, W, 3) point map in metres.

    See the module docstring for the method; missing points ((0, 0, 0)) give 0.
    """
    xyz = np.asarray(xyz, dtype=np.float64)
    valid = np.any(xyz != 0, axis=2)
    if xyz.shape[0] < 2 or xyz.shape[1] < 2 or not valid.any():
        return np.zeros(xyz.shape[:2])
    d_v, d_u = np.gradient(xyz, axis=(0, 1))
    area = np.linalg.norm(np.cross(d_u, d_v), axis=2) * 1e6  # m² -> mm²
    # A difference reaching a missing neighbour spans the gap: use the typical patch instead.
    padded = np.pad(valid, 1, mode="edge")
    interior = padded[:-2, 1:-1] & padded[2:, 1:-1] & padded[1:-1, :-2] & padded[1:-1, 2:]
    clean = valid & interior
    typical = float(np.median(area[clean])) if clean.any() else 0.0
    area = np.where(clean, area, typical)
    return np.where(valid, area, 0.0)


def _sample_image(result: ScoreResult, index: int) -> np.ndarray:
    sample = result.samples[index]
    if sample.rgb_path is not None:
        return read_rgb(sample.rgb_path)
    return np.zeros((*result.image_sizes[index], 3), dtype=np.uint8)  # 3D-only: no picture


def dataset_info(dataset: DatasetIndex | None) -> dict[str, Any]:
    """The JSON-friendly summary of a dataset the report shows."""
    if dataset is None:
        return {}
    return {
        "root": str(dataset.root),
        "layout": dataset.layout,
        "category": dataset.category,
        "samples": len(dataset.samples),
        "skipped": len(dataset.skipped),
    }


def build_report(
    result: ScoreResult,
    metrics: dict[str, dict[str, float]],
    dataset: dict[str, Any] | DatasetIndex | None,
    image_threshold: float,
    pixel_threshold: float,
    *,
    snapshots: dict[str, bytes] | None = None,
    notes: dict[str, str] | None = None,
) -> ReportData:
    """Gather the report of a scored run.

    Args:
        result: The scored run.
        metrics: ``engine.evaluation.evaluate.evaluate_all`` output (may hold empty dicts).
        dataset: ``DatasetIndex`` or its summary dict (see :func:`dataset_info`).
        image_threshold: A part fails when its image score is ``>=`` this.
        pixel_threshold: Map pixels ``>=`` this are defect pixels (masks, areas).
        snapshots: Optional PNG bytes of a 3D view per sample name (from the GUI).
        notes: Optional one-line remarks, e.g. how each threshold was chosen.
    """
    if isinstance(dataset, DatasetIndex) or dataset is None:
        dataset = dataset_info(dataset)
    snapshots = snapshots or {}
    low, high = float(result.maps.min()), float(result.maps.max())
    rows, failing = [], []
    for rank, index in enumerate(result.ranking(), start=1):
        index = int(index)
        sample = result.samples[index]
        score = float(result.image_scores[index])
        anomaly_map = result.anomaly_map(index)
        mask = anomaly_map >= pixel_threshold
        area_mm2 = None
        if sample.xyz_path is not None:
            xyz = read_xyz(sample.xyz_path, result.image_sizes[index])
            area_mm2 = float(pixel_areas_mm2(xyz)[mask].sum())
        row = PartRow(index, rank, sample.name, score, sample.label, sample.defect_type,
                      score >= image_threshold, int(mask.sum()), area_mm2)  # fmt: skip
        rows.append(row)
        if row.failed:
            rgb = _sample_image(result, index)
            overlay = heatmap_overlay(rgb, anomaly_map, low, high)
            failing.append(FailingPart(row, _png(rgb), _png(overlay), snapshots.get(sample.name)))
    return ReportData(result, metrics, dict(dataset), float(image_threshold),
                      float(pixel_threshold), rows, failing, dict(notes or {}))  # fmt: skip


# --------------------------------------------------------------------------- writers


def _refuse_existing(targets: list[Path], overwrite: bool) -> None:
    if overwrite:
        return
    existing = [t for t in targets if t.exists()]
    if existing:
        more = f" (and {len(existing) - 1} more)" if len(existing) > 1 else ""
        raise ReportExistsError(
            f"{existing[0]}: file already exists{more}. Choose another folder or allow overwriting."
        )


def _write_bytes(path: Path, payload: bytes, overwrite: bool) -> Path:
    path = Path(path)
    _refuse_existing([path], overwrite)
    path.parent.mkdir(parents=True, exist_ok=True)
    with atomic_path(path) as tmp:
        tmp.write_bytes(payload)
    return path


def data_uri(png: bytes) -> str:
    """PNG bytes as a ``data:`` URI, for a self-contained HTML file."""
    return "data:image/png;base64," + base64.b64encode(png).decode("ascii")


def _fmt(value: float | None, digits: int = 4) -> str:
    return "" if value is None else f"{value:.{digits}f}"


def _table(pairs: dict[str, Any]) -> str:
    cells = "".join(
        f"<tr><th align='left'>{html.escape(str(k))}</th><td>{html.escape(str(v))}</td></tr>"
        for k, v in pairs.items()
    )
    return f"<table border='1' cellspacing='0' cellpadding='3'>{cells}</table>"


def render_html(data: ReportData, image_src: Callable[[str, bytes], str] | None = None) -> str:
    """The report as HTML.

    Args:
        data: The report.
        image_src: Maps (key, PNG bytes) to an ``<img src>``; default a base64 data URI. Keys
            are ``"<sample>/image"``, ``"<sample>/overlay"``, ``"<sample>/snapshot"`` (Qt's
            renderer registers them as resources instead).
    """
    src = image_src or (lambda _key, png: data_uri(png))
    result = data.result
    out = ["<html><head><meta charset='utf-8'><title>MuSc defect report</title></head><body>",
           "<h1>MuSc defect report</h1>"]  # fmt: skip
    n_fail = len(data.failing)
    out.append(f"<p><b>{n_fail}</b> of {len(data.rows)} parts fail "
               f"(image score &ge; {data.image_threshold:.4f}).</p>")  # fmt: skip
    out.append("<h2>Dataset</h2>" + _table(data.dataset or {"dataset": "unknown"}))
    thresholds = {"image threshold": f"{data.image_threshold:.6f}",
                  "pixel threshold": f"{data.pixel_threshold:.6f}", **data.notes}  # fmt: skip
    out.append("<h2>Thresholds</h2>" + _table(thresholds))
    models = {"modality": result.modality,
              "2D backbone": result.backbone.name if result.backbone else "-",
              "3D backbone": result.backbone_3d.name if result.backbone_3d else "-"}  # fmt: skip
    out.append("<h2>Models</h2>" + _table(models))
    out.append("<h2>Configuration</h2>" + _table(result.config.to_dict()))
    if result.timings:
        out.append("<h2>Timings (s)</h2>"
                   + _table({k: f"{v:.3f}" for k, v in result.timings.items()}))  # fmt: skip
    for key, values in data.metrics.items():
        if values:
            title = {"metrics": "Metrics"}.get(key, key.replace("metrics_", "Metrics ").upper())
            out.append(f"<h2>{html.escape(title)}</h2>"
                       + _table({k: f"{v:.4f}" for k, v in values.items()}))  # fmt: skip
    out.append("<h2>Ranked parts</h2><table border='1' cellspacing='0' cellpadding='3'>"
               "<tr><th>rank</th><th>part</th><th>score</th><th>label</th><th>type</th>"
               "<th>verdict</th><th>defect px</th><th>defect mm&sup2;</th></tr>")  # fmt: skip
    for row in data.rows:
        verdict = "<b>FAIL</b>" if row.failed else "pass"
        label = "" if row.label is None else row.label
        out.append(f"<tr><td>{row.rank}</td><td>{html.escape(row.name)}</td>"
                   f"<td>{row.score:.4f}</td><td>{label}</td>"
                   f"<td>{html.escape(row.defect_type or '')}</td><td>{verdict}</td>"
                   f"<td>{row.area_px}</td><td>{_fmt(row.area_mm2, 2)}</td></tr>")  # fmt: skip
    out.append("</table>")
    if data.failing:
        out.append("<h2>Failing parts</h2>")
    for part in data.failing:
        row = part.row
        name = html.escape(row.name)
        area = f"{row.area_px} px" + (f", {row.area_mm2:.2f} mm&sup2;" if row.area_mm2 else "")
        out.append(f"<h3 id='part-{name}'>#{row.rank} {name}</h3>"
                   f"<p>score {row.score:.4f}; defect area {area}</p><p>")  # fmt: skip
        pictures = [("image", part.image_png), ("overlay", part.overlay_png),
                    ("snapshot", part.snapshot_png)]  # fmt: skip
        for kind, png in pictures:
            if png is not None:
                out.append(f"<img src='{src(f'{row.name}/{kind}', png)}' width='256' "
                           f"alt='{name} {kind}'> ")  # fmt: skip
        out.append("</p>")
    out.append("</body></html>")
    return "\n".join(out)


def write_html(path: str | Path, data: ReportData, *, overwrite: bool = False) -> Path:
    """Write the self-contained HTML report (images inlined as data URIs)."""
    return _write_bytes(Path(path), render_html(data).encode("utf-8"), overwrite)


def report_csv(data: ReportData) -> str:
    """``engine.outputs.export.scores_csv`` plus verdict and defect-area columns."""
    by_name = {row.name: row for row in data.rows}
    reader = csv.reader(io.StringIO(scores_csv(data.result)))
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n")
    writer.writerow([*next(reader), "verdict", "defect_area_px", "defect_area_mm2"])
    for line in reader:
        row = by_name[line[1]]
        verdict = "fail" if row.failed else "pass"
        writer.writerow([*line, verdict, row.area_px, _fmt(row.area_mm2, 4)])
    return buffer.getvalue()


def write_csv(path: str | Path, data: ReportData, *, overwrite: bool = False) -> Path:
    """Write the ranked table with verdicts and defect areas as CSV."""
    return _write_bytes(Path(path), report_csv(data).encode("utf-8"), overwrite)


def report_document(data: ReportData) -> dict[str, Any]:
    """``engine.outputs.export.results_document`` plus dataset, thresholds, verdicts and areas."""
    extra = {
        "dataset": data.dataset,
        "image_threshold": data.image_threshold,
        "pixel_threshold": data.pixel_threshold,
        "threshold_notes": data.notes,
        "failing": [part.row.name for part in data.failing],
    }
    document = results_document(data.result, data.metrics, extra)
    by_name = {row.name: row for row in data.rows}
    for entry in document["samples"]:
        row = by_name[entry["sample"]]
        entry.update(rank=row.rank, failed=row.failed, defect_area_px=row.area_px,
                     defect_area_mm2=row.area_mm2)  # fmt: skip
    return document


def write_json(path: str | Path, data: ReportData, *, overwrite: bool = False) -> Path:
    """Write the run, thresholds, verdicts and areas as JSON."""
    text = json.dumps(report_document(data), indent=2) + "\n"
    return _write_bytes(Path(path), text.encode("utf-8"), overwrite)


def write_masks(folder: str | Path, data: ReportData, *, overwrite: bool = False) -> list[Path]:
    """Write ``<sample>.png`` defect masks (255 = ``map >= pixel threshold``) at image size."""
    folder = Path(folder)
    targets = [folder / f"{row.name}.png" for row in data.rows]
    _refuse_existing(targets, overwrite)
    for row, target in zip(data.rows, targets, strict=True):
        mask = data.defect_mask(row.index).astype(np.uint8) * 255
        _write_bytes(target, _png(mask), overwrite=True)
    return targets


def ply_bytes(xyz: np.ndarray, rgb: np.ndarray) -> bytes:
    """A binary little-endian PLY of points (float32 x, y, z) with uint8 colours."""
    vertex = np.empty(len(xyz), dtype=[("x", "<f4"), ("y", "<f4"), ("z", "<f4"),
                                       ("red", "u1"), ("green", "u1"), ("blue", "u1")])  # fmt: skip
    for axis, name in enumerate("xyz"):
        vertex[name] = xyz[:, axis]
    for channel, name in enumerate(("red", "green", "blue")):
        vertex[name] = rgb[:, channel]
    header = (
        "ply\nformat binary_little_endian 1.0\ncomment MuSc anomaly scores (jet)\n"
        f"element vertex {len(xyz)}\nproperty float x\nproperty float y\nproperty float z\n"
        "property uchar red\nproperty uchar green\nproperty uchar blue\nend_header\n"
    )
    return header.encode("ascii") + vertex.tobytes()


def write_ply(folder: str | Path, data: ReportData, *, overwrite: bool = False) -> list[Path]:
    """Write ``<sample>.ply`` point clouds coloured by 3D score (jet, one scale for all parts).

    Samples without 3D points are skipped. Written by hand rather than with open3d, whose
    writer picks the format from the file name and so cannot write to a temporary name.
    """
    folder = Path(folder)
    clouds = [(row, data.result.points[row.index]) for row in data.rows
              if data.result.points and data.result.points[row.index] is not None]  # fmt: skip
    targets = [folder / f"{row.name}.ply" for row, _ in clouds]
    _refuse_existing(targets, overwrite)
    if not clouds:
        return []
    low = min(float(c.scores.min()) for _, c in clouds)
    high = max(float(c.scores.max()) for _, c in clouds)
    span = max(high - low, 1e-12)
    for (_, cloud), target in zip(clouds, targets, strict=True):
        levels = np.clip((cloud.scores - low) / span * 255.0, 0, 255).astype(np.uint8)
        colours = cv2.applyColorMap(levels.reshape(-1, 1), cv2.COLORMAP_JET)[:, 0, ::-1]
        _write_bytes(target, ply_bytes(cloud.xyz, colours), overwrite=True)
    return targets


def report_targets(folder: str | Path, data: ReportData) -> list[Path]:
    """Every file a full export into ``folder`` writes (to ask before overwriting)."""
    folder = Path(folder)
    names = [folder / name for name in (*REPORT_FILES, "report.pdf")]
    names += [folder / MASKS_DIR / f"{row.name}.png" for row in data.rows]
    has_points = data.result.points
    names += [folder / PLY_DIR / f"{row.name}.ply" for row in data.rows
              if has_points and has_points[row.index] is not None]  # fmt: skip
    return names


def write_report(folder: str | Path, data: ReportData, *, overwrite: bool = False) -> list[Path]:
    """Write HTML, CSV, JSON, masks and PLY into ``folder`` (the PDF needs Qt: see musc_gui).

    Checks every target first, so a refusal writes nothing.
    """
    folder = Path(folder)
    targets = [t for t in report_targets(folder, data) if t.name != "report.pdf"]
    _refuse_existing(targets, overwrite)
    folder.mkdir(parents=True, exist_ok=True)
    written = [
        write_html(folder / "report.html", data, overwrite=True),
        write_csv(folder / "report.csv", data, overwrite=True),
        write_json(folder / "report.json", data, overwrite=True),
    ]
    written += write_masks(folder / MASKS_DIR, data, overwrite=True)
    written += write_ply(folder / PLY_DIR, data, overwrite=True)
    return written
