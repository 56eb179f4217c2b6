"""Re-run on a rescanned folder: only new and changed parts are extracted, the result is fresh.

A scored line (tiny fake backbones) gains a part, loses one and has one rewritten; spies count
what goes through the backbones and which clouds are read, and the rescanned session's result
is compared with a fresh session on the new folder.
"""

from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np
import pytest

from engine.config import MuscConfig
from engine.data.discover import discover_dataset
from engine.data.synthetic import DEFECT_TYPES, DEFECT_TYPES_3D, write_synthetic_dataset
from engine.progress import run_to_completion
from engine.session import branch_3d, cache
from engine.session.cache import load_session, save_session
from engine.session.rescan import RescanSummary
from engine.session.session import InspectionSession
from engine.session.stages import Stage
from tests.engine.session.spies import Spy

BASE = MuscConfig(
    backbone="pixel_patches", backbone_3d="group_shape", num_groups=64, group_size=32,
    k_iter=16, eval_size=64, cae=False,
)  # fmt: skip
CONFIGS = {
    "2d+3d": BASE,
    "black RGB background, CAE": BASE.replace(black_rgb_background=True, cae=True),
    "3d": BASE.replace(modality="3d"),
    "2d": BASE.replace(modality="2d"),
}
FOLDERS = ("rgb", "xyz", "gt")
SUFFIX = {"rgb": "png", "xyz": "tiff", "gt": "png"}


def _write(root: Path, n_good: int) -> Path:
    defects = DEFECT_TYPES + DEFECT_TYPES_3D
    return write_synthetic_dataset(root, n_good=n_good, n_per_defect=1, seed=3, size=96,
                                   with_xyz=True, defects=defects)  # fmt: skip


@pytest.fixture(scope="module")
def spare(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The same line with one more good part (good_004), to copy into the line under test."""
    return _write(tmp_path_factory.mktemp("spare") / "line", n_good=5)


@pytest.fixture
def line(tmp_path: Path) -> Path:
    return _write(tmp_path / "line", n_good=4)


def _files(root: Path, kind: str, index: str) -> list[Path]:
    return [root / "test" / kind / folder / f"{index}.{SUFFIX[folder]}" for folder in FOLDERS]


def _add(line: Path, spare: Path) -> None:
    for source, target in zip(_files(spare, "good", "004"), _files(line, "good", "004"),
                              strict=True):  # fmt: skip
        shutil.copy(source, target)


def _change(line: Path, spare: Path) -> None:
    """good_001 becomes another part: spare good_004's image and point map."""
    for source, target in zip(_files(spare, "good", "004")[:2], _files(line, "good", "001")[:2],
                              strict=True):  # fmt: skip
        shutil.copy(source, target)


def _remove(line: Path) -> None:
    for path in _files(line, "good", "002"):
        path.unlink()


def _clouds_read(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    names: list[str] = []
    load = branch_3d.load_cloud

    def spied(sample, *args, **kwargs):
        names.append(sample.name)
        return load(sample, *args, **kwargs)

    monkeypatch.setattr(branch_3d, "load_cloud", spied)
    return names


def _fresh(root: Path, config: MuscConfig) -> tuple[InspectionSession, object]:
    session = InspectionSession(discover_dataset(root), config)
    return session, run_to_completion(session.run())


def _assert_same(result, fresh, rtol: float = 1e-5) -> None:
    assert result.names == fresh.names
    np.testing.assert_allclose(result.image_scores, fresh.image_scores, rtol=rtol, atol=1e-6)
    np.testing.assert_allclose(result.maps, fresh.maps, rtol=rtol * 10, atol=1e-6)
    assert list(result.ranking()) == list(fresh.ranking())


@pytest.mark.parametrize("name", list(CONFIGS))
def test_only_new_and_changed_parts_are_extracted(line, spare, monkeypatch, name) -> None:
    config = CONFIGS[name]
    spy = Spy(monkeypatch)
    session = InspectionSession(discover_dataset(line), config)
    run_to_completion(session.run())
    _add(line, spare)
    _change(line, spare)
    _remove(line)
    read = _clouds_read(monkeypatch)
    spy.images.clear()
    spy.backbone_3d_calls = 0

    summary = session.rescan(discover_dataset(line))
    assert summary == RescanSummary(
        added=("good_004",),
        removed=("good_002",),
        changed=("good_001",),
        kept=("bump_000", "dent_000", "good_000", "good_003", "missing_000", "scratch_000",
              "spot_000"),
    )  # fmt: skip
    assert not summary.unchanged and session.result is None
    result = run_to_completion(session.run())

    modality = session.modality
    assert len(spy.images) == (2 if "2d" in modality else 0)  # good_001 and good_004 only
    assert spy.backbone_3d_calls == (2 if "3d" in modality else 0)
    assert sorted(read) == (["good_001", "good_004"] if config.black_rgb_background or "3d"
                            in modality else [])  # fmt: skip
    fresh_session, fresh = _fresh(line, config)
    _assert_same(result, fresh)
    assert set(session.warnings) == set(fresh_session.warnings)
    assert set(session.skipped) == set(fresh_session.skipped)


def test_an_unchanged_folder_recomputes_nothing(line, monkeypatch) -> None:
    spy = Spy(monkeypatch)
    session = InspectionSession(discover_dataset(line), BASE)
    before = run_to_completion(session.run())
    spy.stages.clear()
    summary = session.rescan(discover_dataset(line))
    assert summary.unchanged and len(summary.kept) == 9
    assert session.pending() == []
    _assert_same(run_to_completion(session.run()), before, rtol=0)
    assert spy.stages == []


def test_removing_parts_needs_no_backbone(line, monkeypatch) -> None:
    Spy(monkeypatch)
    session = InspectionSession(discover_dataset(line), BASE)
    run_to_completion(session.run())
    _remove(line)
    session._backbone = session._backbone_3d = None  # as if restored: none may be built
    summary = session.rescan(discover_dataset(line))
    assert summary.removed == ("good_002",) and not summary.added and not summary.changed
    result = run_to_completion(session.run())
    assert session.backbone is None and session.backbone_3d is None
    _assert_same(result, _fresh(line, BASE)[1])


def test_a_change_of_config_after_the_rescan_drops_the_kept_pieces_it_invalidates(
    line, spare, monkeypatch
) -> None:
    Spy(monkeypatch)
    session = InspectionSession(discover_dataset(line), BASE)
    run_to_completion(session.run())
    _add(line, spare)
    session.rescan(discover_dataset(line))
    config = BASE.replace(c_thr=0.05, r_list=(1, 3))
    assert Stage.GROUP_3D in session.update(config)
    _assert_same(run_to_completion(session.run()), _fresh(line, config)[1])


def test_a_session_restored_with_stripped_tokens_extracts_only_the_new_part(
    line, spare, monkeypatch, tmp_path
) -> None:
    """The app's case: a big line restored from the cache (tokens not stored), one part added."""
    monkeypatch.setenv("MUSC_CACHE_DIR", str(tmp_path / "cache"))
    monkeypatch.setattr(cache, "TOKENS_LIMIT_BYTES", 0)
    spy = Spy(monkeypatch)
    session = InspectionSession(discover_dataset(line), BASE)
    run_to_completion(session.run())
    save_session(session)
    restored = load_session(discover_dataset(line), BASE)
    assert restored._cache[Stage.EXTRACT_2D].stripped
    _add(line, spare)
    spy.images.clear()
    spy.backbone_3d_calls = 0
    assert restored.rescan(discover_dataset(line)).added == ("good_004",)
    result = run_to_completion(restored.run())
    assert len(spy.images) == 1 and spy.backbone_3d_calls == 1
    assert restored._cache[Stage.EXTRACT_2D].stripped
    # the kept parts' features went through the cache's float16: close, not equal
    fresh = _fresh(line, BASE)[1]
    assert result.names == fresh.names
    assert np.corrcoef(result.maps.ravel(), fresh.maps.ravel())[0, 1] >= 0.9999
    assert list(result.ranking()) == list(fresh.ranking())
