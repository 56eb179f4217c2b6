"""A part scored against a frozen bank gets the map and raw score of a batch of bank ∪ {part}.

Tiny synthetic 2D+3D line (64 px, fake 2D backbone, FPFH on 16 groups): a batch run of all
parts is the yardstick; the bank is every part but one, built from the batch's own features,
and the left-out part is then extracted alone and scored as a stream would.
"""

from __future__ import annotations

import numpy as np
import pytest

from engine.config import MuscConfig
from engine.data.discover import discover_dataset
from engine.data.synthetic import write_synthetic_dataset
from engine.decision.thresholds import Threshold
from engine.progress import run_to_completion
from engine.session.session import InspectionSession
from engine.stream.bank import Bank
from engine.stream.from_session import bank_members, session_parts
from engine.stream.part_features import extract_part
from engine.stream.scorer import StreamScorer
from tests.engine.fakes import PixelPatchBackbone

BASE = MuscConfig(
    backbone_3d="fpfh", num_groups=16, group_size=16, k_iter=8, eval_size=64, device="cpu"
)
CUT = Threshold(0.5, "test", "user")


@pytest.fixture(scope="module")
def line(tmp_path_factory: pytest.TempPathFactory):
    root = tmp_path_factory.mktemp("stream") / "line"
    write_synthetic_dataset(root, n_good=5, n_per_defect=1, size=64, seed=4, with_xyz=True,
                            defects=("scratch", "dent"))  # fmt: skip
    return discover_dataset(root)


def _stream_and_batch(line, config: MuscConfig, query: int):
    session = InspectionSession(line, config, backbone=PixelPatchBackbone())
    result = run_to_completion(session.run())
    parts = session_parts(session)
    names = [n for n in result.names if n != result.names[query]]
    members = run_to_completion(bank_members(parts, names, session))
    scorer = StreamScorer(
        session.config, session.modality, Bank(members), CUT,
        backbone=session.backbone, backbone_3d=session.backbone_3d,
    )  # fmt: skip
    return scorer.score_new(result.samples[query]), result


@pytest.mark.parametrize(
    ("modality", "cae"), [("2d", None), ("2d+3d", False), ("2d+3d", True), ("3d", None)]
)
@pytest.mark.parametrize("query", [0, 6])  # a good part and the dent
def test_map_and_raw_score_equal_the_batch_run(line, modality, cae, query) -> None:
    part, batch = _stream_and_batch(line, BASE.replace(modality=modality, cae=cae), query)
    assert part.name == batch.names[query]
    np.testing.assert_allclose(part.anomaly_map(), batch.maps[query], rtol=1e-4, atol=1e-5)
    assert part.result.raw == pytest.approx(float(batch.max_scores[query]), rel=1e-5)
    if modality == "2d+3d":
        for name in ("2d", "3d"):
            np.testing.assert_allclose(
                part.result.modality_maps[name].numpy(), batch.modality_maps[name][query],
                rtol=1e-4, atol=1e-5,
            )  # fmt: skip


def test_equivalence_holds_for_another_x_percent(line) -> None:
    part, batch = _stream_and_batch(line, BASE.replace(modality="2d", x_percent=60.0), 6)
    np.testing.assert_allclose(part.anomaly_map(), batch.maps[6], rtol=1e-4, atol=1e-5)


def test_a_streamed_part_leaves_no_fpfh_descriptors_behind(line) -> None:
    """A part on the line is never re-grouped: FPFH keeps its batch's clouds, not the stream's."""
    session = InspectionSession(line, BASE.replace(modality="3d"))
    run_to_completion(session.run())
    memo = session.backbone_3d._memo
    kept = len(memo)
    assert kept == len(session.samples)  # the batch's clouds, for its re-groups
    part = extract_part(line.samples[0], session.config, "3d", "cpu", None, session.backbone_3d)
    assert part.cloud is not None and len(memo) == kept  # the new part's entry was released
