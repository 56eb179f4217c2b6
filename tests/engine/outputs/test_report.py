"""The defect report's data and files: verdicts, masks and areas from the decision, CSV, JSON,
PLY, the export folder, and progress.

The result is built by hand from a synthetic 2D+3D line (maps = blurred ground-truth masks,
points = the XYZ maps on the map grid), so these tests check the report, not the scoring, and
run in well under a second each. ``synthetic_result`` is shared with tests/gui/test_export.py.
"""

from __future__ import annotations

import csv
import io
import json
from datetime import datetime
from pathlib import Path

import cv2
import numpy as np
import open3d as o3d
import pytest
from PIL import Image

from engine.config import MuscConfig
from engine.data.discover import discover_dataset
from engine.data.readers import read_mask, read_xyz
from engine.data.synthetic import write_synthetic_dataset
from engine.decision import DecisionPolicy, decide
from engine.outputs.report import (
    ReportMeta,
    build_report,
    report_folder,
    report_steps,
    write_report,
)
from engine.session.results import PointScores, ScoreResult

S = 48
DECIDE = DecisionPolicy(image=0.5, pixel=0.5, min_area_px=40)
META = ReportMeta(datetime(2025, 3, 1, 14, 30, 5), software_version="9.8.7", lot="L-17",
                  operator="Dana Q")  # fmt: skip


def synthetic_result(root: Path) -> tuple[ScoreResult, object]:
    """(result, dataset) of a small synthetic 2D+3D line; the first good part has no points."""
    write_synthetic_dataset(root, n_good=4, n_per_defect=1, seed=1, with_xyz=True,
                            defects=("scratch", "spot", "bump"))  # fmt: skip
    dataset = discover_dataset(root)
    maps, scores, points, sizes = [], [], [], []
    for sample in dataset.samples:
        xyz = read_xyz(sample.xyz_path)
        size = xyz.shape[:2]
        sizes.append(size)
        mask = read_mask(sample.mask_path, size) if sample.mask_path else np.zeros(size, bool)
        blurred = cv2.GaussianBlur(mask.astype(np.float32), (0, 0), 2.0)
        square = cv2.resize(blurred / max(float(blurred.max()), 1e-6), (S, S))
        maps.append(square * 0.8 + 0.1)
        scores.append(0.9 - 0.01 * len(scores) if sample.label else 0.1 + 0.01 * len(scores))
        grid = cv2.resize(xyz, (S, S), interpolation=cv2.INTER_NEAREST).reshape(-1, 3)
        index = np.flatnonzero(np.any(grid != 0, axis=1))
        points.append(PointScores(grid[index], square.ravel()[index].astype(np.float32), index))
    # a part without a usable XYZ map gets no PLY (and, failing, no 3D picture)
    first_good = [s.label for s in dataset.samples].index(0)
    points[first_good] = None
    maps[first_good][5, 5] = 0.9  # a speck of about 20 px: below the minimum area of DECIDE
    spot = [s.defect_type for s in dataset.samples].index("spot")
    maps[spot][40:44, 4:8] = 0.9  # a second region on a defective part: areas are sums
    result = ScoreResult(samples=dataset.samples, image_sizes=sizes, modality="2d+3d",
                         image_scores=np.array(scores), max_scores=np.array(scores),
                         maps=np.array(maps, dtype=np.float32), config=MuscConfig(),
                         backbone=None, points=points, timings={"read-out": 1.5})  # fmt: skip
    return result, dataset


@pytest.fixture(scope="module")
def run(tmp_path_factory):
    return synthetic_result(tmp_path_factory.mktemp("report") / "line")


@pytest.fixture(scope="module")
def decision(run):
    return decide(run[0], DECIDE)


@pytest.fixture(scope="module")
def data(run, decision):
    result, dataset = run
    metrics = {"metrics": {"image_auroc": 1.0, "pixel_f1_max": 0.875}, "metrics_2d": {}}
    return build_report(result, metrics, dataset, decision, META)


@pytest.fixture(scope="module")
def written(tmp_path_factory, data):
    folder = tmp_path_factory.mktemp("written")
    return folder, write_report(folder, data)


def _defects(result, decision, index):
    return decision.defects(result, index, read_xyz(result.samples[index].xyz_path))


def test_rows_and_verdicts_come_from_the_decision(run, decision, data):
    result = run[0]
    fails = decision.fails(result.image_scores)
    assert [row.rank for row in data.rows] == list(range(1, len(result.samples) + 1))
    assert [row.index for row in data.rows] == [int(i) for i in result.ranking()]
    assert {r.name: r.failed for r in data.rows} == dict(zip(result.names, fails, strict=True))
    assert [p.row.name for p in data.failing] == [r.name for r in data.rows if r.failed]
    assert {p.row.name for p in data.failing} == {s.name for s in result.samples if s.label}
    for row in data.rows:
        regions = _defects(result, decision, row.index).regions
        assert row.regions == regions
        assert row.area_px == sum(r.area_px for r in regions)


def test_masks_are_the_decision_masks(run, decision, data, written):
    result, (folder, paths) = run[0], written
    assert {p.name for p in paths if p.parent.name == "masks"} == {
        f"{name}.png" for name in result.names
    }
    for index, sample in enumerate(result.samples):
        mask = np.asarray(Image.open(folder / "masks" / f"{sample.name}.png")) > 0
        expected = _defects(result, decision, index).mask
        assert mask.shape == tuple(result.image_sizes[index])
        assert np.array_equal(mask, expected), sample.name
        assert mask.any() == bool(sample.label)
    assert max(len(row.regions) for row in data.rows) == 2
    speck = result.labels.index(0)  # its map reaches the cut, in a region below the minimum area
    assert (result.anomaly_map(speck) >= decision.pixel.value).any()


def test_csv_areas_are_the_sums_of_the_regions(run, decision, written):
    result, folder = run[0], written[0]
    rows = list(csv.DictReader(io.StringIO((folder / "report.csv").read_text())))
    assert [r["sample"] for r in rows] == [result.names[i] for i in result.ranking()]
    fails = dict(zip(result.names, decision.fails(result.image_scores), strict=True))
    for line in rows:
        defects = _defects(result, decision, result.names.index(line["sample"]))
        assert line["verdict"] == ("fail" if fails[line["sample"]] else "pass")
        assert int(line["defect_regions"]) == len(defects.regions)
        assert int(line["defect_area_px"]) == sum(r.area_px for r in defects.regions)
        mm2 = sum(r.area_mm2 for r in defects.regions)
        assert float(line["defect_area_mm2"]) == pytest.approx(mm2, abs=1e-4)
        if defects.regions:
            assert mm2 > 0


def test_json_holds_thresholds_outcome_and_regions(run, decision, written):
    result, folder = run[0], written[0]
    document = json.loads((folder / "report.json").read_text())
    assert document["thresholds"]["image"]["value"] == decision.image.value
    assert document["thresholds"]["pixel"]["how"] == decision.pixel.how
    assert document["outcome"] == {"pass": 4, "fail": 3, "false_rejects": [], "escapes": []}
    assert document["report"] == {"created": "2025-03-01T14:30:05", "software_version": "9.8.7",
                                  "lot": "L-17", "operator": "Dana Q"}  # fmt: skip
    by_name = {entry["sample"]: entry for entry in document["samples"]}
    for index, name in enumerate(result.names):
        regions = _defects(result, decision, index).regions
        assert by_name[name]["regions"] == [r.as_dict() for r in regions]


def test_ply_reads_back(run, written):
    result, folder = run[0], written[0]
    paths = sorted((folder / "ply").glob("*.ply"))
    assert len(paths) == len(result.samples) - 1  # one part has no points
    for path in paths:
        index = result.names.index(path.stem)
        cloud = o3d.io.read_point_cloud(str(path))
        assert np.allclose(np.asarray(cloud.points), result.points[index].xyz, atol=1e-6)
        assert cloud.has_colors()


def test_html_is_self_contained(written, data):
    html = (written[0] / "report.html").read_text(encoding="utf-8")
    sources = [chunk.split("'")[0] for chunk in html.split("<img src='")[1:]]
    with_points = [p for p in data.failing if p.snapshot is not None]
    assert len(with_points) == len(data.failing)  # every failing part has 3D points here
    assert len(sources) == 3 * len(data.failing) + len(with_points)
    assert all(src.startswith(("data:image/png;base64,", "data:image/jpeg;base64,"))
               for src in sources)  # fmt: skip


def test_report_steps_yield_one_event_per_part(run, decision, data):
    result, dataset = run
    steps = report_steps(result, data.metrics, dataset, decision, META)
    events = []
    while True:
        try:
            events.append(next(steps))
        except StopIteration as stop:
            built = stop.value
            break
    assert [(e.stage, e.done, e.total) for e in events] == [
        ("build report", n, len(result.samples)) for n in range(1, len(result.samples) + 1)
    ]
    assert [row.name for row in built.rows] == [row.name for row in data.rows]


def test_report_folder_is_always_new(tmp_path):
    created = datetime(2025, 3, 1, 14, 30, 5)
    first = report_folder(tmp_path / "exports", "cable gland/A", created)
    assert first.name == "musc-report-cable_gland_A-20250301-143005" and first.is_dir()
    (first / "report.html").write_text("first export")
    second = report_folder(tmp_path / "exports", "cable gland/A", created)
    third = report_folder(tmp_path / "exports", "cable gland/A", created)
    assert second.name == first.name + "-2" and third.name == first.name + "-3"
    assert (first / "report.html").read_text() == "first export"
    assert report_folder(tmp_path, "", created).name == "musc-report-dataset-20250301-143005"
