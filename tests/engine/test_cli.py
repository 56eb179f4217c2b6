"""The ``musc`` command line on the synthetic line with the offline backbone."""

from __future__ import annotations

import csv
import json
from pathlib import Path

import h5py
import pytest

from engine.cli import main
from engine.data.synthetic import write_synthetic_dataset

METRIC_KEYS = {
    "image_auroc", "image_ap", "image_f1_max", "pixel_auroc", "pixel_ap", "pixel_f1_max",
    "aupro", "pro_cflow",
}  # fmt: skip


@pytest.fixture(scope="module")
def scored(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("cli")
    data = write_synthetic_dataset(root / "data", n_good=10, n_per_defect=2, seed=3)
    out = root / "out"
    code = main(["score", str(data), "--out", str(out), "--backbone", "efficientnet_lite0"])
    assert code == 0
    return out


def test_scores_csv_is_ranked(scored: Path) -> None:
    with open(scored / "scores.csv", newline="") as handle:
        rows = list(csv.DictReader(handle))
    assert list(rows[0]) == ["rank", "sample", "score", "label", "defect_type", "path",
                             "verdict", "defect_area_px", "defect_area_mm2"]  # fmt: skip
    assert rows[0]["path"].startswith("test/") and rows[0]["path"].endswith(".png")
    assert len(rows) == 16
    scores = [float(r["score"]) for r in rows]
    assert scores == sorted(scores, reverse=True)
    assert [int(r["rank"]) for r in rows] == list(range(1, 17))
    # the planted defects should dominate the top of the ranking
    assert sum(r["label"] == "1" for r in rows[:6]) >= 4


def test_results_json_has_config_backbone_timings_and_metrics(scored: Path) -> None:
    document = json.loads((scored / "results.json").read_text())
    assert document["config"]["x_percent"] == 30.0 and document["config"]["rscon_window"] == 7
    assert document["backbone"]["name"] == "efficientnet_lite0"
    assert "package" in document["backbone"]["weights_source"]
    assert {"extract 2D", "mutual scoring 2D", "read-out"} <= set(document["timings_s"])
    assert set(document["metrics"]) == METRIC_KEYS
    assert all(0.0 <= v <= 1.0 for v in document["metrics"].values())
    assert document["metrics"]["image_auroc"] > 0.8
    assert len(document["samples"]) == 16


def test_maps_are_written_per_sample_at_original_size(scored: Path) -> None:
    pngs = sorted(p.stem for p in (scored / "maps").glob("*.png"))
    assert len(pngs) == 16 and "good_000" in pngs
    with h5py.File(scored / "maps.h5") as store:
        assert store["maps/scratch_000"].shape == (256, 256)
    assert not list(scored.glob(".*tmp"))  # atomic writes leave no temporaries


def test_missing_dataset_exits_nonzero_with_one_line(tmp_path: Path, capsys) -> None:
    code = main(["score", str(tmp_path / "nowhere"), "--out", str(tmp_path / "o")])
    assert code == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "nowhere" in err[0]


def test_unwritable_output_fails_before_scoring(tmp_path: Path, capsys) -> None:
    data = write_synthetic_dataset(tmp_path / "data", n_good=3, n_per_defect=1)
    # /proc refuses new folders even to root, so this holds in CI too
    assert main(["score", str(data), "--out", "/proc/musc-out"]) == 2
    err = capsys.readouterr().err
    assert "not writable" in err and "/proc/musc-out" in err and "extract" not in err


def test_output_path_that_is_a_file_is_reported(tmp_path: Path, capsys) -> None:
    data = write_synthetic_dataset(tmp_path / "data", n_good=3, n_per_defect=1)
    blocker = tmp_path / "file.txt"
    blocker.write_text("x")
    args = ["score", str(data), "--out", str(blocker), "--backbone", "efficientnet_lite0"]
    assert main(args) == 2
    assert "file.txt" in capsys.readouterr().err


def test_backbones_lists_the_registry(capsys) -> None:
    assert main(["backbones"]) == 0
    out = capsys.readouterr().out
    assert "dino_vitb8" in out and "efficientnet_lite0" in out


def test_xyz_data_is_scored_in_2d_plus_3d_with_per_modality_metrics(tmp_path: Path) -> None:
    data = write_synthetic_dataset(tmp_path / "data", n_good=6, n_per_defect=1, with_xyz=True,
                                   defects=("dent", "scratch"))  # fmt: skip
    out = tmp_path / "out"
    args = ["score", str(data), "--out", str(out), "--backbone", "efficientnet_lite0",
            "--backbone-3d", "fpfh"]  # fmt: skip
    assert main(args) == 0
    document = json.loads((out / "results.json").read_text())
    assert document["modality"] == "2d+3d" and document["backbone_3d"]["name"] == "fpfh"
    assert document["cae_used"] is False
    for key in ("metrics", "metrics_2d", "metrics_3d"):
        assert set(document[key]) == METRIC_KEYS
    with h5py.File(out / "maps.h5") as store:
        xyz, score = store["points/dent_000/xyz"], store["points/dent_000/score"]
        assert xyz.shape == (score.shape[0], 3) and score.shape[0] > 1000


def test_demo_scores_the_bundled_line_in_2d_plus_3d(tmp_path: Path) -> None:
    assert main(["demo", "--out", str(tmp_path)]) == 0
    document = json.loads((tmp_path / "results" / "results.json").read_text())
    assert document["modality"] == "2d+3d" and len(document["samples"]) == 27
    # fusion beats each modality alone on the line's mix of RGB-only and 3D-only defects
    fused = document["metrics"]["image_auroc"]
    assert fused > document["metrics_2d"]["image_auroc"] and fused > 0.75
