"""scores.csv / results.json content and the map writer's fallbacks."""

from __future__ import annotations

import csv
import io
import json
from pathlib import Path

import numpy as np
import pytest

from engine.config import MuscConfig
from engine.data.samples import Sample
from engine.errors import InvalidInputError
from engine.outputs import export
from engine.outputs.export import results_document, sample_path, scores_csv, write_outputs
from engine.session.results import ScoreResult


def _result(root: Path, size: int = 8) -> ScoreResult:
    # two names sanitised from colliding stems ("a b" and "a_b"): only the path tells them apart
    samples = [
        Sample("a_b", root / "good" / "a b.png", label=0, defect_type="good"),
        Sample("a_b_2", root / "good" / "a_b.png", label=0, defect_type="good"),
        Sample("cloud", None, xyz_path=root / "xyz" / "cloud.tiff"),
    ]
    maps = np.stack([np.full((size, size), v, dtype=np.float32) for v in (0.1, 0.9, 0.5)])
    return ScoreResult(
        samples=samples,
        image_sizes=[(size, size)] * 3,
        modality="2d",
        image_scores=np.array([0.1, 0.9, 0.5]),
        max_scores=np.array([0.1, 0.9, 0.5]),
        maps=maps,
        config=MuscConfig(),
        backbone=None,
    )


def test_sample_path_is_relative_to_the_root_and_falls_back_to_xyz(tmp_path: Path) -> None:
    result = _result(tmp_path)
    assert sample_path(result.samples[0], tmp_path) == "good/a b.png"
    assert sample_path(result.samples[2], tmp_path) == "xyz/cloud.tiff"
    outside = Sample("x", Path("/elsewhere/x.png"))
    assert sample_path(outside, tmp_path) == "/elsewhere/x.png"
    assert sample_path(Sample("none", None)) == ""


def test_scores_csv_has_a_path_column_that_tells_colliding_names_apart(tmp_path: Path) -> None:
    rows = list(csv.DictReader(io.StringIO(scores_csv(_result(tmp_path), tmp_path))))
    assert list(rows[0]) == ["rank", "sample", "score", "label", "defect_type", "path"]
    assert [(r["sample"], r["path"]) for r in rows] == [
        ("a_b_2", "good/a_b.png"),
        ("cloud", "xyz/cloud.tiff"),
        ("a_b", "good/a b.png"),
    ]


def test_results_json_samples_carry_the_relative_path(tmp_path: Path) -> None:
    document = results_document(_result(tmp_path), {}, None, tmp_path)
    assert [s["path"] for s in document["samples"]] == [
        "good/a b.png",
        "good/a_b.png",
        "xyz/cloud.tiff",
    ]
    assert document["samples"][2]["xyz_path"].endswith("cloud.tiff")


def test_a_heatmap_whose_image_vanished_is_drawn_alone_and_noted(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    def gone(path: Path) -> np.ndarray:
        raise InvalidInputError(f"{path}: file not found. Restore it.")

    monkeypatch.setattr(export, "read_rgb", gone)
    out = write_outputs(tmp_path / "out", _result(tmp_path), {}, {"warnings": ["w0"]})
    document = json.loads((out / "results.json").read_text())
    assert document["warnings"][0] == "w0" and len(document["warnings"]) == 3
    assert "a_b: heatmap drawn without its image" in document["warnings"][1]
    assert "a b.png: file not found" in document["warnings"][1]
    assert sorted(p.name for p in (out / "maps").iterdir()) == [
        "a_b.png",
        "a_b_2.png",
        "cloud.png",
    ]


def test_a_heatmap_whose_image_changed_size_is_drawn_alone(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(export, "read_rgb", lambda _path: np.zeros((5, 7, 3), np.uint8))
    out = write_outputs(tmp_path / "out", _result(tmp_path), {})
    warnings = json.loads((out / "results.json").read_text())["warnings"]
    assert len(warnings) == 2 and "is now 7x5, it was 8x8 when scored" in warnings[0]
