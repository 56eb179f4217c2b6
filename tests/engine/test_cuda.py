"""The engine on a CUDA GPU: same scores and maps as on the CPU, and moving a scored session to
the GPU recomputes nothing.

Every test here is marked ``cuda`` and skips without a GPU (``torch.cuda.is_available()`` is
False), so CI on CPUs stays green; ``bash bench/device_check.sh`` runs them on a GPU machine.
The session is the fast one of the stage-spec tests: a small synthetic 2D+3D line and the
fake backbones of tests/engine/fakes.py, so the GPU time goes to the engine's own tensor code
(SNAMD, point groups, mutual scoring, CAE, read-out), which is what differs between devices.
"""

from __future__ import annotations

import numpy as np
import pytest
import torch

from engine.config import MuscConfig
from engine.data.discover import discover_dataset
from engine.data.synthetic import DEFECT_TYPES, DEFECT_TYPES_3D, write_synthetic_dataset
from engine.progress import run_to_completion
from engine.session.results import ScoreResult
from engine.session.session import InspectionSession
from engine.session.stages import Stage
from tests.engine.fakes import GroupShapeBackbone, PixelPatchBackbone

DEVICE = "cuda"
pytestmark = [
    pytest.mark.cuda,
    pytest.mark.skipif(
        not torch.cuda.is_available(), reason="no CUDA GPU (torch.cuda.is_available() is False)"
    ),
]

CONFIG = MuscConfig(
    backbone="pixel_patches", backbone_3d="group_shape", num_groups=64, group_size=32,
    k_iter=16, eval_size=64,
)  # fmt: skip
# float32 on another device sums in another order: equal up to this, relative to the range
RTOL = 1e-4


@pytest.fixture(scope="module")
def dataset(tmp_path_factory: pytest.TempPathFactory):
    root = tmp_path_factory.mktemp("cuda") / "line"
    write_synthetic_dataset(root, n_good=4, n_per_defect=1, seed=3, size=96, with_xyz=True,
                            defects=DEFECT_TYPES + DEFECT_TYPES_3D)  # fmt: skip
    return discover_dataset(root)


def _session(dataset, device: str, **changes) -> InspectionSession:
    """A session on ``device`` with the fake backbones (the 2D one's weights moved there)."""
    backbone = PixelPatchBackbone(64)
    backbone.device = torch.device(device)
    backbone.projection = backbone.projection.to(device)
    config = CONFIG.replace(device=device, **changes)
    return InspectionSession(dataset, config, backbone=backbone, backbone_3d=GroupShapeBackbone())


def _close(name: str, got: np.ndarray, want: np.ndarray) -> None:
    got, want = np.asarray(got, np.float64), np.asarray(want, np.float64)
    assert got.shape == want.shape, name
    scale = max(float(np.abs(want).max()), 1e-12)
    np.testing.assert_allclose(got, want, rtol=RTOL, atol=RTOL * scale, err_msg=name)


def _assert_same(got: ScoreResult, want: ScoreResult) -> None:
    assert [s.name for s in got.samples] == [s.name for s in want.samples]
    assert got.modality == want.modality
    _close("image scores", got.image_scores, want.image_scores)
    _close("maps", got.maps, want.maps)
    assert set(got.modality_scores) == set(want.modality_scores)
    for name in want.modality_scores:
        _close(f"{name} scores", got.modality_scores[name], want.modality_scores[name])
        _close(f"{name} maps", got.modality_maps[name], want.modality_maps[name])
    for index, sample in enumerate(want.samples):
        _close(f"{sample.name} map", got.anomaly_map(index), want.anomaly_map(index))
        if want.points[index] is not None:
            _close(f"{sample.name} points", got.points[index].scores, want.points[index].scores)
    assert sorted(got.ranking()[:3]) == sorted(want.ranking()[:3])  # the worst parts agree


def _devices(session: InspectionSession) -> dict[str, str]:
    """The device of one tensor of each cached stage."""
    stages = session.snapshot().stages
    first_cloud = next(iter(stages[Stage.LOAD_3D].values()))
    out = {
        "load 3D": first_cloud.points.device.type,
        "aggregate 2D": stages[Stage.AGGREGATE_2D][0].device.type,
    }
    if Stage.SCORE_2D in stages:
        out["score 2D"] = stages[Stage.SCORE_2D][0].cumsum_2d.device.type
        out["score 3D"] = stages[Stage.SCORE_3D][0].cumsum_3d.device.type
    if Stage.SCORE_CAE in stages:
        out["score CAE"] = stages[Stage.SCORE_CAE][0].cumsum_2d.device.type
    return out


@pytest.mark.parametrize("cae", [False, True], ids=["separate", "cae"])
def test_scores_and_maps_on_the_gpu_equal_the_cpu(dataset, cae: bool) -> None:
    cpu = run_to_completion(_session(dataset, "cpu", cae=cae).run())
    session = _session(dataset, DEVICE, cae=cae)
    gpu = run_to_completion(session.run())
    devices = _devices(session)
    assert set(devices.values()) == {DEVICE}, devices  # it really ran on the GPU
    assert gpu.modality == "2d+3d"
    _assert_same(gpu, cpu)
    # the cheap re-scores agree too
    _assert_same(session.rescore(x_percent=20.0, rscon_window=3),
                 _session_rescored(dataset, cae, x_percent=20.0, rscon_window=3))  # fmt: skip


def _session_rescored(dataset, cae: bool, **changes) -> ScoreResult:
    session = _session(dataset, "cpu", cae=cae)
    run_to_completion(session.run())
    return session.rescore(**changes)


def test_moving_a_scored_session_to_the_gpu_recomputes_nothing(dataset) -> None:
    session = _session(dataset, "cpu")
    cpu = run_to_completion(session.run())
    assert session.update(session.config.replace(device=DEVICE)) == []
    devices = _devices(session)
    assert set(devices.values()) == {DEVICE}, devices
    assert session.pending() == []
    # the read-out works on the moved tensors and gives the CPU's answer
    _assert_same(session.rescore(), cpu)
    # a run finds every stage cached: it does not rebuild a backbone (the fake ones are not
    # registered by name, so a rebuild would fail) and returns the same result
    _assert_same(run_to_completion(session.run()), cpu)
    # and back to the CPU, again without recomputing
    assert session.update(session.config.replace(device="cpu")) == []
    assert set(_devices(session).values()) == {"cpu"}
    _assert_same(session.rescore(), cpu)


def test_point_searches_on_the_gpu_pick_the_cpu_paths_points() -> None:
    """FPS and KNN: the CPU runs numpy and a KD-tree, the GPU torch kernels; the same indices."""
    from engine.method.point_search import farthest_point_sample, knn

    gen = torch.Generator().manual_seed(0)
    uv = torch.rand(6000, 2, generator=gen)
    cloud = torch.cat([uv, 0.1 * torch.sin(5 * uv[:, :1]) + 0.01 * torch.rand(6000, 1)], 1)
    centres = farthest_point_sample(cloud, 512)
    assert torch.equal(farthest_point_sample(cloud.to(DEVICE), 512).cpu(), centres)
    for query, points, k in ((cloud[centres], cloud, 256), (cloud, cloud[centres], 3)):
        idx, dist = knn(query, points, k)
        idx_gpu, dist_gpu = knn(query.to(DEVICE), points.to(DEVICE), k)
        assert torch.equal(idx_gpu.cpu(), idx) and torch.equal(dist_gpu.cpu(), dist)
