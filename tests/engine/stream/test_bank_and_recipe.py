"""Bank policies, the recipe round trip, and the refusal of a recipe made with other weights."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest
import torch

from engine.config import MuscConfig
from engine.data.discover import discover_dataset
from engine.data.synthetic import write_synthetic_dataset
from engine.decision.model import decide
from engine.decision.thresholds import Threshold, robust_cut
from engine.errors import InvalidInputError
from engine.progress import run_to_completion
from engine.session.session import InspectionSession
from engine.stream.bank import Bank, BankMember
from engine.stream.part_readout import PartTables
from engine.stream.recipe import check_backbones, load_recipe, save_recipe
from engine.stream.recipe_create import make_recipe
from engine.stream.scorer import StreamScorer
from tests.engine.fakes import PixelPatchBackbone

CONFIG = MuscConfig(
    backbone="pixel_patches", backbone_3d="fpfh", num_groups=16, group_size=16, k_iter=8,
    eval_size=64, device="cpu",
)  # fmt: skip


def _member(name: str, value: float = 0.0) -> BankMember:
    layer = torch.full((4, 3), value)
    return BankMember(name, [layer], None, PartTables())


def test_a_rolling_bank_takes_passing_parts_only_and_drops_the_oldest() -> None:
    bank = Bank([_member("a"), _member("b"), _member("c")], "rolling", rolling_size=3)
    assert not bank.offer(_member("bad", 9.0), "fail")
    assert "bad" not in bank and len(bank) == 3
    assert bank.offer(_member("d", 1.0), "pass")
    assert bank.names.count("a") == 0 and sorted(bank.names) == ["b", "c", "d"]
    refs, _ = bank.references()
    # the buffers hold exactly the members' features, in slot order
    for slot, name in enumerate(bank.names):
        expected = 1.0 if name == "d" else 0.0
        assert torch.equal(refs[0][slot], torch.full((4, 3), expected))


def test_a_pinned_bank_never_changes_by_itself() -> None:
    bank = Bank([_member("a"), _member("b")], "pinned")
    assert not bank.offer(_member("c"), "pass")
    assert bank.names == ["a", "b"]


def test_both_keeps_the_core_and_rolls_the_rest() -> None:
    bank = Bank([_member("a"), _member("b")], "both", rolling_size=1)
    assert bank.offer(_member("c"), "pass") and bank.offer(_member("d"), "pass")
    assert sorted(bank.names) == ["a", "b", "d"]


def test_pin_and_unpin() -> None:
    bank = Bank([_member("a"), _member("b"), _member("c")], "pinned")
    bank.pin(_member("x", 2.0))
    assert "x" in bank and len(bank) == 4
    assert torch.equal(bank.references()[0][0][3], torch.full((4, 3), 2.0))
    bank.unpin("a")  # a pinned-only bank: unpinning removes
    assert "a" not in bank
    bank.unpin("b")
    assert sorted(bank.names) == ["c", "x"]
    with pytest.raises(InvalidInputError, match="fewer than 2"):
        bank.unpin("c")
    rolling = Bank([_member("a"), _member("b")], "rolling", rolling_size=2)
    rolling.pin(_member("a"))
    assert rolling.offer(_member("c"), "pass") and rolling.offer(_member("d"), "pass")
    assert "a" in rolling and "b" not in rolling  # the pinned one stayed


@pytest.fixture(scope="module")
def made(tmp_path_factory: pytest.TempPathFactory):
    root = tmp_path_factory.mktemp("recipe") / "line"
    write_synthetic_dataset(root, n_good=6, n_per_defect=1, size=64, seed=8)
    dataset = discover_dataset(root)
    config = CONFIG.replace(modality="2d")
    session = InspectionSession(dataset, config, backbone=PixelPatchBackbone())
    made = run_to_completion(make_recipe(dataset, config, bank_size=5, session=session))
    return made, session, dataset


def test_the_bank_holds_passing_parts_only(made) -> None:
    result, _, _ = made
    recipe = result.recipe
    batch = result.batch
    verdicts = decide(batch).verdicts(batch.image_scores)
    scores = dict(zip(batch.names, batch.image_scores, strict=True))
    passing = [n for n, v in zip(batch.names, verdicts, strict=True) if v == "pass"]
    assert 2 <= len(recipe.members) < len(batch.names)  # some parts fail this batch's cut
    assert [m.name for m in recipe.members] == sorted(passing, key=scores.get)[:5]
    assert recipe.image_cut.source == "auto"
    # the label-free stream cut comes from the bank parts' own stream scores only
    members = [result.stream_scores[m.name] for m in recipe.members]
    assert recipe.image_cut.value == pytest.approx(robust_cut(members))
    assert recipe.image_cut.value != pytest.approx(robust_cut(list(result.stream_scores.values())))
    assert set(recipe.calibration["stream_scores"]) == set(result.batch.names)


def test_recipe_round_trip_scores_the_same(made, tmp_path) -> None:
    result, session, dataset = made
    path = save_recipe(result.recipe, tmp_path / "line.musc-recipe.h5")
    loaded = load_recipe(path)
    assert loaded.config == result.recipe.config and loaded.image_cut == result.recipe.image_cut
    assert [m.name for m in loaded.members] == [m.name for m in result.recipe.members]
    newcomer = next(s for s in dataset.samples if s.name not in loaded.calibration["bank"])
    scores = []
    for recipe in (result.recipe, loaded):
        scorer = StreamScorer(recipe.config, recipe.modality, Bank(recipe.members),
                              recipe.image_cut, backbone=session.backbone)  # fmt: skip
        scores.append(scorer.score_new(newcomer))
    assert scores[0].score == pytest.approx(scores[1].score, rel=1e-6)
    np.testing.assert_allclose(scores[0].anomaly_map(), scores[1].anomaly_map(), rtol=1e-6)
    # the stream score of a part outside the bank equals its calibration score
    assert scores[0].score == pytest.approx(result.stream_scores[newcomer.name], rel=1e-5)


def test_a_recipe_made_with_other_weights_is_refused(made, tmp_path) -> None:
    recipe = made[0].recipe
    other = dataclasses.replace(recipe.backbone, weights_source="file other.pth")
    with pytest.raises(InvalidInputError, match="other networks or weights"):
        check_backbones(recipe, other, None, "line.h5")
    check_backbones(recipe, recipe.backbone, None)  # the same: accepted


def test_an_unreadable_recipe_names_the_file(tmp_path) -> None:
    bad = tmp_path / "bad.h5"
    bad.write_bytes(b"not hdf5")
    with pytest.raises(InvalidInputError, match="bad.h5"):
        load_recipe(bad)


def test_verdicts_follow_the_cut_and_rescore_needs_no_extraction(made) -> None:
    result, session, dataset = made
    recipe = result.recipe
    backbone = session.backbone
    scorer = StreamScorer(recipe.config, recipe.modality, Bank(recipe.members),
                          Threshold(0.0, "all fail", "user"), backbone=backbone)  # fmt: skip
    part = scorer.score_new(dataset.samples[-1])
    assert part.verdict == "fail"
    calls = backbone.calls
    before = part.score
    scorer.rescore(x_percent=70.0, image_cut=Threshold(1e9, "none fail", "user"))
    assert backbone.calls == calls and part.verdict == "pass" and part.score != before
