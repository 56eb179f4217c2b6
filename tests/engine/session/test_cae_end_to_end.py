"""Cross-modal enhancement through the whole session on a tiny synthetic 2D+3D line.

Six 64 x 64 parts (four good, a dent, a bump) with XYZ maps, the fake 2D backbone (two layers on
an 8 x 8 grid) and FPFH on 16 groups of 16 points: a run takes well under a second. The CAE tables
the session caches are recomputed here from its cached features with a loop transcription of the
reference (B §5.2). The distances come from the engine's own (float32) mutual-scoring primitive,
which test_stages_2d/3d check against brute force: the fake backbone's 2D distances on this line
are ~1e-3, where float32 and float64 distances differ enough to reorder the rank transfer.
"""

from __future__ import annotations

import numpy as np
import pytest
import torch

from engine.config import MuscConfig
from engine.data.discover import discover_dataset
from engine.data.synthetic import write_synthetic_dataset
from engine.method import mutual_scoring
from engine.progress import run_to_completion
from engine.session.session import InspectionSession
from engine.session.stages import Stage
from tests.engine.fakes import PixelPatchBackbone
from tests.engine.method.test_stages_3d import _enhance_reference

CONFIG = MuscConfig(
    backbone_3d="fpfh",
    num_groups=16,
    group_size=16,
    k_iter=8,
    eval_size=64,
    cae=True,
    device="cpu",
)


@pytest.fixture(scope="module")
def line(tmp_path_factory: pytest.TempPathFactory):
    root = tmp_path_factory.mktemp("cae") / "line"
    write_synthetic_dataset(root, n_good=4, n_per_defect=1, size=64, seed=1, with_xyz=True,
                            defects=("dent", "bump"))  # fmt: skip
    return discover_dataset(root)


@pytest.fixture(scope="module")
def with_cae(line):
    session = InspectionSession(line, CONFIG, backbone=PixelPatchBackbone())
    assert session.uses_cae and Stage.SCORE_CAE in session.pending()
    return session, run_to_completion(session.run())


@pytest.fixture(scope="module")
def without_cae(line):
    session = InspectionSession(line, CONFIG.replace(cae=False), backbone=PixelPatchBackbone())
    return session, run_to_completion(session.run())


def test_the_cae_stage_runs_and_feeds_the_read_out(with_cae) -> None:
    session, result = with_cae
    assert Stage.SCORE_CAE in session._cache
    assert Stage.SCORE_2D not in session._cache and Stage.SCORE_3D not in session._cache
    (table,) = session._cache[Stage.SCORE_CAE]
    assert table.indices == table.indices_3d == list(range(6))  # every part has a cloud
    assert table.cumsum_2d.shape == (6, 64, 5) and table.cumsum_3d.shape == (6, 16, 5)
    assert result.modality == "2d+3d" and np.isfinite(result.image_scores).all()


def _distances(features: torch.Tensor, unit_norm: bool) -> np.ndarray:
    """(N, L, N-1): nearest-patch distance of every patch to every other sample."""
    table = mutual_scoring.patch_to_sample_distances(features, 64, unit_norm=unit_norm)
    return mutual_scoring.drop_self(run_to_completion(table)).double().numpy()


def _patch_of_groups(session: InspectionSession) -> list[np.ndarray]:
    """2D patch (8 x 8 grid) of each group centre's pixel on the 64 x 64 map grid, by hand."""
    clouds = session._cache[Stage.LOAD_3D]
    patches = []
    for sample in session.samples:
        cloud = clouds[sample.name]
        pixels = cloud.pixel_index[cloud.basis.center_idx].numpy()
        rows, cols = pixels // 64, pixels % 64
        patches.append((rows // 8) * 8 + cols // 8)
    return patches


def test_cae_tables_equal_a_transcription_of_the_reference(with_cae) -> None:
    session, _ = with_cae
    layers_2d = session._cache[Stage.AGGREGATE_2D]
    layers_3d = session._cache[Stage.EXTRACT_3D]
    assert len(layers_2d) == 2 and len(layers_3d) == 1
    distances_2d = [_distances(layer, unit_norm=True) for layer in layers_2d]
    distances_3d = _distances(layers_3d[0], unit_norm=False)
    patches = _patch_of_groups(session)
    # two rounds: 2D layer t is paired with the only 3D layer; the tables average the rounds
    expected_2d = np.zeros((6, 64, 5))
    expected_3d = np.zeros((6, 16, 5))
    for layer in distances_2d:
        for query in range(6):
            a, b = _enhance_reference(layer[query], distances_3d[query], patches[query])
            expected_2d[query] += np.cumsum(np.sort(a, axis=1), axis=1) / 2
            expected_3d[query] += np.cumsum(np.sort(b, axis=1), axis=1) / 2
    (table,) = session._cache[Stage.SCORE_CAE]
    assert np.allclose(table.cumsum_2d.numpy(), expected_2d, atol=1e-6)
    assert np.allclose(table.cumsum_3d.numpy(), expected_3d, atol=1e-6)


def test_cae_redistributes_each_querys_own_distances(with_cae, without_cae) -> None:
    (enhanced,) = with_cae[0]._cache[Stage.SCORE_CAE]
    (plain_2d,) = without_cae[0]._cache[Stage.SCORE_2D]
    (plain_3d,) = without_cae[0]._cache[Stage.SCORE_3D]
    # A' = (A + a permutation of A) / 2: the total of each query's distances is unchanged ...
    totals = lambda cumsum: cumsum[..., -1].sum(dim=1)  # noqa: E731
    assert torch.allclose(totals(enhanced.cumsum_2d), totals(plain_2d.cumsum_2d), rtol=1e-5)
    assert torch.allclose(totals(enhanced.cumsum_3d), totals(plain_3d.cumsum_3d), rtol=1e-5)
    # ... but the distances move between patches and references, so the scores change
    assert not torch.allclose(enhanced.cumsum_2d, plain_2d.cumsum_2d, atol=1e-3)
    assert not torch.allclose(enhanced.cumsum_3d, plain_3d.cumsum_3d, atol=1e-4)
    assert not np.allclose(with_cae[1].max_scores, without_cae[1].max_scores, atol=1e-4)
