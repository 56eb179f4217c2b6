"""Each parameter recomputes exactly the stages the stage spec says, and the result is right.

A scored 2D+3D session (tiny fake backbones, CAE off) is changed one field at a time. Spies on
the stage functions and on the backbones record what actually runs; the expectations below are
written out by hand, so a change to the spec or to the session has to be made on purpose.
"""

from __future__ import annotations

from dataclasses import fields

import numpy as np
import pytest
import torch

from engine.config import MuscConfig
from engine.data.discover import discover_dataset
from engine.data.synthetic import DEFECT_TYPES, DEFECT_TYPES_3D, write_synthetic_dataset
from engine.device import move_tensors
from engine.progress import run_to_completion
from engine.session import session as session_module
from engine.session.session import InspectionSession
from engine.session.stages import (
    CACHED_STAGES,
    RUN_SETTINGS,
    STAGES,
    Cost,
    Stage,
    field_cost,
    key_fields,
    stale_stages,
)
from tests.engine.session.spies import Spy

L3, E2, A2 = Stage.LOAD_3D, Stage.EXTRACT_2D, Stage.AGGREGATE_2D
G3, E3 = Stage.GROUP_3D, Stage.EXTRACT_3D
S2, S3, SC = Stage.SCORE_2D, Stage.SCORE_3D, Stage.SCORE_CAE

BASE = MuscConfig(
    backbone="pixel_patches", backbone_3d="group_shape", num_groups=64, group_size=32,
    k_iter=16, eval_size=64, cae=False,
)  # fmt: skip

# field -> (new value, the stages a run recomputes after the change), from a 2D+3D run
EXPECTED: dict[str, tuple[object, list[Stage]]] = {
    "modality": ("2d", []),  # the 2D tables are kept
    "backbone": ("pixel_patches_b", [E2, A2, S2]),
    "weights": ("/nonexistent/w.pth", [E2, A2, S2]),
    "image_size": (96, [E2, A2, S2]),
    "layers": ((0,), [E2, A2, S2]),
    "backbone_3d": ("group_shape_b", [E3, S3]),
    "weights_3d": ("/nonexistent/w3.pth", [E3, S3]),
    "bn_stats": ("running", [E3, S3]),
    "remove_background": (False, [L3, G3, E3, S3]),  # the RGB is not blacked: 2D kept
    "black_rgb_background": (True, [E2, A2, S2]),  # reads the cached clouds, reloads none
    "num_groups": (48, [L3, G3, E3, S3]),
    "group_size": (24, [L3, G3, E3, S3]),
    "k_iter": (8, [G3, E3, S3]),
    "c_thr": (0.05, [G3, E3, S3]),
    "ipg_variant": ("reference", [G3, E3, S3]),
    "cae": (True, [SC]),
    "fusion": ("scaled", []),
    "blur_sigma": (2.0, []),
    "r_list": ((1, 3), [A2, E3, S2, S3]),
    "x_percent": (60.0, []),
    "rscon_window": (3, []),
    "subsets": (2, [S2, S3]),
    "device": ("cpu", []),  # "auto" is the CPU here: nothing moves
    "precision": ("bf16", []),  # applies from the next extraction; nothing recomputed
    "seed": (7, [S2, S3]),
    "batch_size": (2, []),
    "chunk_mib": (8, []),
    "eval_size": (96, [L3, G3, E3, S3]),
}


@pytest.fixture(scope="module")
def dataset(tmp_path_factory: pytest.TempPathFactory):
    root = tmp_path_factory.mktemp("spec") / "line"
    write_synthetic_dataset(root, n_good=4, n_per_defect=1, seed=3, size=96, with_xyz=True,
                            defects=DEFECT_TYPES + DEFECT_TYPES_3D)  # fmt: skip
    return discover_dataset(root)


@pytest.fixture(scope="module")
def scored(dataset):
    """A finished 2D+3D run of BASE, as a snapshot each test resumes from."""
    with pytest.MonkeyPatch.context() as monkeypatch:
        Spy(monkeypatch)
        session = InspectionSession(dataset, BASE)
        run_to_completion(session.run())
        return session.snapshot()


def test_every_config_field_is_declared_and_expected() -> None:
    names = {f.name for f in fields(MuscConfig)}
    declared = set().union(*(spec.reads for spec in STAGES.values())) | set(RUN_SETTINGS)
    assert names == declared, "declare each config field in engine.session.stages"
    assert names == set(EXPECTED)
    assert not set(RUN_SETTINGS) & key_fields()


@pytest.mark.parametrize("name", list(EXPECTED))
def test_changing_a_field_recomputes_exactly_what_the_spec_says(dataset, scored, monkeypatch, name):
    value, expected = EXPECTED[name]
    spy = Spy(monkeypatch)
    session = InspectionSession.from_snapshot(dataset, scored)
    assert session.pending() == []
    new_config = BASE.replace(**{name: value})
    assert session.update(new_config) == expected
    result = run_to_completion(session.run())
    assert spy.stages == expected
    assert (spy.backbone_2d_calls > 0) == (E2 in expected)
    assert (spy.backbone_3d_calls > 0) == (E3 in expected)
    # what the spec derives agrees with the hand-written expectation
    derived = stale_stages({name}, new_config)
    assert set(expected) <= derived | {SC}
    # and the kept stages are still right: a fresh run with the new config gives the same result
    fresh = run_to_completion(InspectionSession(dataset, new_config).run())
    np.testing.assert_allclose(result.image_scores, fresh.image_scores, rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(result.maps, fresh.maps, rtol=1e-4, atol=1e-6)


def test_remove_background_re_extracts_2d_only_when_the_rgb_background_is_blacked(
    dataset, monkeypatch
) -> None:
    Spy(monkeypatch)
    session = InspectionSession(dataset, BASE.replace(black_rgb_background=True))
    run_to_completion(session.run())
    stale = session.update(session.config.replace(remove_background=False))
    assert stale == [L3, E2, A2, G3, E3, S2, S3]


def test_num_groups_never_calls_the_2d_backbone_and_x_percent_no_backbone_or_scoring(
    dataset, scored, monkeypatch
) -> None:
    spy = Spy(monkeypatch)
    session = InspectionSession.from_snapshot(dataset, scored)
    session.update(BASE.replace(x_percent=12.0))
    run_to_completion(session.run())
    assert spy.stages == [] and spy.backbone_2d_calls == spy.backbone_3d_calls == 0
    session.update(BASE.replace(num_groups=40))
    run_to_completion(session.run())
    assert spy.backbone_2d_calls == 0 and spy.backbone_3d_calls > 0
    assert E2 not in spy.stages and A2 not in spy.stages and S2 not in spy.stages


def test_costs_follow_the_most_expensive_stage_a_field_is_read_by() -> None:
    assert field_cost("x_percent") is Cost.LIVE
    assert field_cost("fusion") is Cost.LIVE
    assert field_cost("subsets") is Cost.RESCORE
    assert field_cost("c_thr") is Cost.REGROUP  # SNAMD-3D reads it too, downstream of IPG
    assert field_cost("r_list") is Cost.REEXTRACT  # SNAMD-2D and (3D backbone +) SNAMD-3D
    assert field_cost("k_iter") is Cost.REGROUP
    assert field_cost("backbone") is Cost.REEXTRACT
    assert field_cost("device") is Cost.NONE and field_cost("batch_size") is Cost.NONE
    live = {f.name for f in fields(MuscConfig) if field_cost(f.name) is Cost.LIVE}
    assert live == {"x_percent", "rscon_window", "blur_sigma", "fusion"}


def test_cache_key_holds_every_field_a_cached_stage_reads() -> None:
    assert key_fields() == {
        "modality", "backbone", "weights", "image_size", "layers", "backbone_3d", "weights_3d",
        "bn_stats", "remove_background", "black_rgb_background", "num_groups", "group_size",
        "k_iter", "c_thr", "ipg_variant", "cae", "r_list", "subsets", "seed", "eval_size",
    }  # fmt: skip
    assert list(CACHED_STAGES) == [L3, E2, A2, G3, E3, S2, S3, SC]


def test_a_stage_and_its_label_are_the_same_key() -> None:
    assert {Stage.EXTRACT_2D: 1}["extract 2D"] == 1
    assert f"{Stage.SCORE_2D}" == "mutual scoring 2D"


def test_moving_to_another_device_keeps_every_stage(dataset, scored, monkeypatch) -> None:
    """The move itself, on the "meta" device (CI has no GPU; the cuda tests run it for real)."""
    Spy(monkeypatch)
    session = InspectionSession.from_snapshot(dataset, scored)
    before = session.snapshot().stages
    session._move_to(torch.device("meta"))
    after = session.snapshot().stages
    assert set(after) == set(before)
    assert after[A2][0].device.type == "meta"
    assert after[L3][session.samples[0].name].points.device.type == "meta"
    assert after[S2][0].cumsum_2d.device.type == "meta"
    assert after[E2].samples is before[E2].samples  # objects without tensors are kept


def test_move_tensors_copies_only_what_holds_tensors() -> None:
    plain = {"a": [1, 2], "b": ("x",)}
    assert move_tensors(plain, torch.device("meta")) is plain
    moved = move_tensors({"t": [torch.ones(2)], "n": 3}, torch.device("meta"))
    assert moved["t"][0].device.type == "meta" and moved["n"] == 3


def test_update_to_another_device_moves_instead_of_recomputing(dataset, scored, monkeypatch):
    """``device="cuda"`` stands for the "meta" device here, so CI checks update()'s move path."""
    spy = Spy(monkeypatch)
    fake_devices = {"cuda": torch.device("meta"), "cpu": torch.device("cpu")}
    monkeypatch.setattr(
        session_module, "resolve_device", lambda name: fake_devices.get(name, fake_devices["cpu"])
    )
    session = InspectionSession.from_snapshot(dataset, scored)
    info = session.snapshot().backbone_info
    assert session.update(BASE.replace(device="cuda")) == []
    stages = session.snapshot().stages
    assert stages[A2][0].device.type == "meta" and stages[S3][0].cumsum_3d.device.type == "meta"
    assert session.snapshot().backbone_info == info  # the result still names its backbone
    assert spy.stages == []
