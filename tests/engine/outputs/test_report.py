"""The defect report: areas, HTML/CSV/JSON, masks, PLY, and refusing to overwrite.

The result is built by hand from a synthetic dataset (maps = ground-truth masks), so these tests
check the report, not the scoring, and run in well under a second each.
"""

from __future__ import annotations

import csv
import io
import json
from html.parser import HTMLParser

import numpy as np
import open3d as o3d
import pytest
from PIL import Image

from engine.config import MuscConfig
from engine.data.discover import discover_dataset
from engine.data.readers import read_mask
from engine.data.synthetic import write_synthetic_dataset
from engine.outputs.report import (
    ReportExistsError,
    build_report,
    pixel_areas_mm2,
    write_csv,
    write_html,
    write_json,
    write_masks,
    write_ply,
    write_report,
)
from engine.session.results import PointScores, ScoreResult

S = 32


@pytest.fixture(scope="module")
def result(tmp_path_factory) -> ScoreResult:
    root = tmp_path_factory.mktemp("report") / "line"
    write_synthetic_dataset(root, n_good=3, n_per_defect=1, seed=1, with_xyz=True)
    dataset = discover_dataset(root)
    samples = dataset.samples
    maps, scores, points, sizes = [], [], [], []
    rng = np.random.default_rng(0)
    for sample in samples:
        size = Image.open(sample.rgb_path).size[::-1]
        sizes.append(size)
        mask = read_mask(sample.mask_path, size) if sample.mask_path else np.zeros(size, bool)
        square = np.asarray(Image.fromarray(mask.astype(np.uint8) * 255).resize((S, S)))
        maps.append(square / 255.0 * 0.8 + 0.1)
        scores.append(0.9 if sample.label else 0.1 + 0.01 * len(scores))
        n = 50 + len(points)
        points.append(PointScores(rng.normal(size=(n, 3)).astype(np.float32),
                                  rng.random(n).astype(np.float32),
                                  rng.integers(0, S * S, n)))  # fmt: skip
    points[0] = None  # a sample without a usable XYZ map gets no PLY
    return ScoreResult(samples=samples, image_sizes=sizes, modality="2d+3d",
                       image_scores=np.array(scores), max_scores=np.array(scores),
                       maps=np.array(maps, dtype=np.float32), config=MuscConfig(),
                       backbone=None, points=points, timings={"score": 1.5})  # fmt: skip


@pytest.fixture(scope="module")
def data(result):
    metrics = {"metrics": {"image_auroc": 1.0}, "metrics_2d": {}}
    return build_report(result, metrics, {"category": "line"}, 0.5, 0.5,
                        snapshots={result.samples[-1].name: _tiny_png()},
                        notes={"image threshold": "by hand"})  # fmt: skip


def _tiny_png() -> bytes:
    buffer = io.BytesIO()
    Image.new("RGB", (4, 4), (255, 0, 0)).save(buffer, format="PNG")
    return buffer.getvalue()


def test_pixel_area_flat_tilted_and_missing():
    v, u = np.mgrid[0:5, 0:6].astype(np.float64) * 0.001  # 1 mm pitch
    flat = np.stack([u, v, np.full_like(u, 0.5)], axis=2)
    assert pixel_areas_mm2(flat) == pytest.approx(np.ones((5, 6)))
    tilted = np.stack([u, v, 0.5 + u], axis=2)  # 45 degrees around the v axis
    assert pixel_areas_mm2(tilted) == pytest.approx(np.full((5, 6), np.sqrt(2)))
    flat[2, 3] = 0.0  # a missing measurement
    area = pixel_areas_mm2(flat)
    assert area[2, 3] == 0.0
    assert area[2, 2] == pytest.approx(1.0)  # neighbour of the hole: the median patch


def test_build_report_fails_defective_parts(result, data):
    failed = {part.row.name for part in data.failing}
    assert failed == {s.name for s in result.samples if s.label}
    assert [row.rank for row in data.rows] == list(range(1, len(result.samples) + 1))
    defective = next(row for row in data.rows if row.label == 1 and row.defect_type != "good")
    assert defective.area_px > 0 and defective.area_mm2 > 0
    assert all(p.image_png.startswith(b"\x89PNG") for p in data.failing)


class _Collector(HTMLParser):
    def __init__(self):
        super().__init__()
        self.text, self.images = [], []

    def handle_data(self, data):
        self.text.append(data)

    def handle_starttag(self, tag, attrs):
        if tag == "img":
            self.images.append(dict(attrs)["src"])


def test_html_is_self_contained(tmp_path, data):
    path = write_html(tmp_path / "report.html", data)
    parser = _Collector()
    parser.feed(path.read_text(encoding="utf-8"))
    text = " ".join(parser.text)
    for part in data.failing:
        assert part.row.name in text
    assert "image_auroc" in text and "line" in text
    assert len(parser.images) == 2 * len(data.failing) + 1  # image + overlay each, 1 snapshot
    assert all(src.startswith("data:image/png;base64,") for src in parser.images)


def test_csv_and_json_list_every_sample(tmp_path, result, data):
    rows = list(csv.DictReader(io.StringIO(write_csv(tmp_path / "r.csv", data).read_text())))
    assert {r["sample"] for r in rows} == set(result.names)
    assert {r["verdict"] for r in rows} == {"pass", "fail"}
    document = json.loads(write_json(tmp_path / "r.json", data).read_text())
    assert {s["sample"] for s in document["samples"]} == set(result.names)
    assert document["image_threshold"] == 0.5 and document["metrics"] == {"image_auroc": 1.0}
    assert sorted(document["failing"]) == sorted(p.row.name for p in data.failing)


def test_masks_have_image_size(tmp_path, result):
    data = build_report(result, {}, None, 0.5, 0.2)
    paths = write_masks(tmp_path / "masks", data)
    assert len(paths) == len(result.samples)
    for index, sample in enumerate(result.samples):
        mask = np.asarray(Image.open(tmp_path / "masks" / f"{sample.name}.png"))
        assert mask.shape == tuple(result.image_sizes[index])
        if sample.label:
            assert mask.any()


def test_ply_reads_back(tmp_path, result, data):
    paths = write_ply(tmp_path / "ply", data)
    assert len(paths) == len(result.samples) - 1  # sample 0 has no points
    for path in paths:
        index = result.names.index(path.stem)
        cloud = o3d.io.read_point_cloud(str(path))
        assert len(cloud.points) == len(result.points[index].xyz)
        assert np.allclose(np.asarray(cloud.points), result.points[index].xyz, atol=1e-6)
        assert cloud.has_colors()


def test_refuses_to_overwrite(tmp_path, data):
    path = tmp_path / "report.json"
    path.write_text("keep")
    with pytest.raises(ReportExistsError, match="report.json"):
        write_json(path, data)
    assert path.read_text() == "keep"
    with pytest.raises(FileExistsError):
        write_report(tmp_path, data)
    assert not (tmp_path / "report.html").exists()  # a refusal writes nothing
    write_json(path, data, overwrite=True)
    assert json.loads(path.read_text())["samples"]


def test_write_report_writes_everything(tmp_path, result, data):
    written = write_report(tmp_path / "out", data)
    assert all(p.exists() for p in written)
    assert (tmp_path / "out" / "report.html").exists()
    assert len(list((tmp_path / "out" / "masks").glob("*.png"))) == len(result.samples)
