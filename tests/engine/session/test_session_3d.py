"""The 3D and fused branches end to end on the synthetic line, staged re-grouping, bad XYZ."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from engine.config import MuscConfig
from engine.data.discover import discover_dataset
from engine.data.synthetic import DEFECT_TYPES_3D, write_synthetic_dataset
from engine.errors import InvalidInputError
from engine.evaluation.evaluate import evaluate_all
from engine.progress import run_to_completion
from engine.session.session import InspectionSession
from tests.engine.fakes import GroupShapeBackbone

CONFIG = MuscConfig(backbone="efficientnet_lite0", backbone_3d="fpfh", num_groups=256)


@pytest.fixture(scope="module")
def dents(tmp_path_factory: pytest.TempPathFactory):
    """Parts whose only defects are dents and bumps: invisible in RGB, visible in XYZ."""
    root = tmp_path_factory.mktemp("dents") / "line"
    write_synthetic_dataset(root, n_good=10, n_per_defect=3, seed=1, with_xyz=True,
                            defects=DEFECT_TYPES_3D)  # fmt: skip
    session = InspectionSession(discover_dataset(root), CONFIG)
    return session, run_to_completion(session.run())


def test_3d_finds_dents_that_2d_cannot_see(dents) -> None:
    session, result = dents
    assert result.modality == "2d+3d" and session.uses_cae is False  # auto: off with fpfh
    metrics = evaluate_all(result)
    assert metrics["metrics_3d"]["image_auroc"] >= 0.95
    assert metrics["metrics_3d"]["pixel_auroc"] >= 0.95
    assert metrics["metrics_2d"]["image_auroc"] <= 0.7  # RGB shows nothing
    assert metrics["metrics_2d"]["pixel_auroc"] <= 0.7


def test_scaled_fusion_finds_the_dents_in_2d_plus_3d(dents) -> None:
    session, _ = dents
    # fusion is a cheap parameter: no stage reruns, only the re-score
    assert session.update(session.config.replace(fusion="scaled")) == []
    fused = evaluate_all(session.rescore())["metrics"]
    assert fused["image_auroc"] >= 0.95 and fused["pixel_auroc"] >= 0.95
    session.update(session.config.replace(fusion="sum"))


def test_point_scores_cover_the_foreground(dents) -> None:
    _, result = dents
    cloud = result.points[0]
    assert cloud is not None and cloud.xyz.shape == (cloud.scores.shape[0], 3)
    assert cloud.xyz[:, 2].min() > 0.4  # metres from the camera, not normalised units
    dent = result.names.index("dent_000")
    flat = result.maps[dent].ravel()
    assert np.isclose(flat[result.points[dent].pixel_index].max(), flat.max(), rtol=0.5)


def test_changing_c_thr_regroups_without_reloading_or_re_extracting_2d(dents) -> None:
    session, _ = dents
    loaded = session._cache["load 3D"]
    tokens = session._cache["extract 2D"]
    tables_2d = session._cache["mutual scoring 2D"]
    assert session.update(session.config.replace(c_thr=0.05, k_iter=40)) == [
        "group 3D", "extract 3D", "mutual scoring 3D",
    ]  # fmt: skip
    result = run_to_completion(session.run())
    assert session._cache["load 3D"] is loaded and session._cache["extract 2D"] is tokens
    assert session._cache["mutual scoring 2D"] is tables_2d  # without CAE the 2D tables are kept
    assert result.config.c_thr == 0.05
    session.update(CONFIG)
    run_to_completion(session.run())


def test_a_bad_xyz_map_falls_back_to_2d(tmp_path: Path) -> None:
    root = write_synthetic_dataset(tmp_path / "line", n_good=5, n_per_defect=1, with_xyz=True,
                                   defects=("dent",))  # fmt: skip
    broken = root / "test" / "good" / "xyz" / "002.tiff"
    broken.write_bytes(b"not a tiff")
    session = InspectionSession(discover_dataset(root), CONFIG)
    result = run_to_completion(session.run())
    assert len(result.samples) == 6
    assert any(s.path == broken for s in session.skipped)
    assert any("scored in 2D only" in w for w in session.warnings)
    assert result.points[result.names.index("good_002")] is None
    assert np.isfinite(result.image_scores).all()
    # re-running the 3D stages reports the bad file and the fallback once, not once per run
    session.update(CONFIG.replace(num_groups=128))
    run_to_completion(session.run())
    assert [s.path for s in session.skipped].count(broken) == 1
    assert sum("scored in 2D only" in w for w in session.warnings) == 1


def test_3d_only_needs_xyz(tmp_path: Path) -> None:
    root = write_synthetic_dataset(tmp_path / "rgb", n_good=4, n_per_defect=1)
    session = InspectionSession(discover_dataset(root), CONFIG.replace(modality="3d"))
    with pytest.raises(InvalidInputError, match="XYZ"):
        run_to_completion(session.run())


def test_a_folder_of_xyz_maps_only_is_scored_in_3d(tmp_path: Path) -> None:
    source = write_synthetic_dataset(tmp_path / "full", n_good=4, n_per_defect=1, seed=2,
                                     size=96, with_xyz=True, defects=DEFECT_TYPES_3D)  # fmt: skip
    for index, xyz in enumerate(sorted(source.rglob("xyz/*.tiff"))):
        kind = "good" if "good" in xyz.parts else "bad"
        target = tmp_path / "clouds" / kind / f"{index:03d}.tiff"
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_bytes(xyz.read_bytes())
    config = MuscConfig(num_groups=64, group_size=32, k_iter=16, eval_size=64, cae=False)
    session = InspectionSession(
        discover_dataset(tmp_path / "clouds"), config, backbone_3d=GroupShapeBackbone()
    )
    assert session.modality == "3d"  # "auto" with no colour image at all
    result = run_to_completion(session.run())
    assert result.modality == "3d" and len(result.samples) == 6
    assert all(points is not None for points in result.points)


def test_a_regroup_reuses_the_point_descriptors(dents, monkeypatch) -> None:
    """FPFH per point does not depend on the groups: a C_thr change only re-pools it."""
    from engine.backbones.fpfh import FPFHBackbone

    session, _ = dents
    described = []
    original = FPFHBackbone.point_features
    monkeypatch.setattr(
        FPFHBackbone, "point_features", lambda self, p: described.append(1) or original(self, p)
    )
    session.update(session.config.replace(c_thr=0.05, k_iter=40))
    regrouped = run_to_completion(session.run())
    assert described == []
    fresh = run_to_completion(InspectionSession(session.dataset, session.config).run())
    assert len(described) == len(fresh.names)
    assert np.allclose(regrouped.image_scores, fresh.image_scores, atol=1e-6)
    assert np.allclose(regrouped.maps, fresh.maps, atol=1e-5)
    session.update(CONFIG)
    run_to_completion(session.run())
