"""Extraction on Ray actors (backbones built by name in each actor) equals the local run, also
when an actor's process is lost mid-extraction."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pytest
import torch

from engine.config import MuscConfig
from engine.data.discover import discover_dataset
from engine.data.synthetic import write_synthetic_dataset
from engine.progress import run_to_completion
from engine.session.session import InspectionSession
from engine.session.stages import Stage

CONFIG = MuscConfig(backbone="efficientnet_lite0", image_size=64, backbone_3d="fpfh",
                    num_groups=64, precision="fp32")  # fmt: skip


@pytest.fixture(scope="module")
def line(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("actors") / "line"
    return write_synthetic_dataset(root, n_good=6, n_per_defect=1, size=64, seed=5,
                                   with_xyz=True)  # fmt: skip


def test_actor_extraction_and_ray_scoring_equal_the_local_run(ray_local, line: Path) -> None:
    from engine.cluster.ray_compute import RayCompute

    local_session = InspectionSession(discover_dataset(line), CONFIG)
    local = run_to_completion(local_session.run())
    # the same clouds and groups (loaded here in both runs), everything after them on Ray
    snapshot = local_session.snapshot()
    kept = {Stage.LOAD_3D, Stage.GROUP_3D}
    snapshot.stages = {k: v for k, v in snapshot.stages.items() if k in kept}
    snapshot.backbone_info = snapshot.backbone_3d_info = None
    session = InspectionSession.from_snapshot(discover_dataset(line), snapshot)
    session.distances = RayCompute(actors=2)
    events = []
    cluster = run_to_completion(session.run(), events.append)
    assert session.backbone is None and session.backbone_3d is None  # they lived in the actors
    assert (cluster.backbone, cluster.backbone_3d) == (local.backbone, local.backbone_3d)
    assert [e.done for e in events if e.stage == "extract 2D"][-1] == len(local.samples)
    assert [e.done for e in events if e.stage == "extract 3D"][-1] == len(local.samples)
    for stage in (Stage.AGGREGATE_2D, Stage.EXTRACT_3D):
        ours, theirs = session.snapshot().stages[stage], local_session.snapshot().stages[stage]
        for mine, reference in zip(ours, theirs, strict=True):
            torch.testing.assert_close(mine, reference, rtol=1e-4, atol=1e-5)
    assert cluster.names == local.names
    assert np.corrcoef(local.maps.ravel(), cluster.maps.ravel())[0, 1] >= 0.9999
    assert np.array_equal(np.argsort(local.image_scores), np.argsort(cluster.image_scores))


def _dies_on_a_second_chunk(marker: str) -> type:
    """An extractor whose process exits on its second chunk, in one actor only, once (the first
    actor to get there creates ``marker``). A class defined here travels by value to the
    workers; the restarted actor counts from zero again, so the retried chunk succeeds."""
    from engine.cluster.extract_actors import Extractor

    class DiesOnce(Extractor):
        chunks = 0

        def extract_2d(self, samples, foregrounds):
            self.chunks += 1
            if self.chunks == 2:
                try:
                    os.close(os.open(marker, os.O_CREAT | os.O_EXCL))
                except FileExistsError:
                    pass
                else:
                    os._exit(1)  # the actor's worker process is lost, as on a crashed node
            return super().extract_2d(samples, foregrounds)

    return DiesOnce


def test_a_lost_extraction_actor_is_restarted_and_its_chunk_retried(
    ray_local, line: Path, tmp_path: Path
) -> None:
    from engine.cluster.ray_compute import RayCompute

    config = CONFIG.replace(modality="2d")
    local_session = InspectionSession(discover_dataset(line), config)
    local = run_to_completion(local_session.run())
    marker = tmp_path / "died"
    # 2 actors, 4 chunks of the 9 parts: one actor at least gets a second chunk, and dies there
    backend = RayCompute(actors=2, extractor=_dies_on_a_second_chunk(str(marker)))
    session = InspectionSession(discover_dataset(line), config, distances=backend)
    events = []
    cluster = run_to_completion(session.run(), events.append)
    assert marker.exists()  # an actor's process really died mid-extraction
    done = [e.done for e in events if e.stage == "extract 2D"]
    assert done == sorted(done) and done[-1] == len(local.samples)
    ours = session.snapshot().stages[Stage.AGGREGATE_2D]
    for mine, reference in zip(ours, local_session.snapshot().stages[Stage.AGGREGATE_2D],
                               strict=True):  # fmt: skip
        torch.testing.assert_close(mine, reference, rtol=1e-4, atol=1e-5)
    assert cluster.names == local.names
    assert np.array_equal(np.argsort(local.image_scores), np.argsort(cluster.image_scores))
