"""discover_all / discover_datasets: outputs are never indexed, one bad category stays alone."""

from __future__ import annotations

import json
import logging
from pathlib import Path

import pytest

from engine.data import (
    CategoryFailure,
    DatasetList,
    discover_all,
    discover_dataset,
    discover_datasets,
)
from engine.errors import InvalidInputError
from engine.outputs.manifest import MANIFEST_NAME
from tests.engine.data import bad_inputs as make


def write_manifest(folder: Path, tool: str = "musc-inspector") -> None:
    folder.mkdir(parents=True, exist_ok=True)
    (folder / MANIFEST_NAME).write_text(json.dumps({"tool": tool, "files": {}}))


def fake_outputs(folder: Path) -> Path:
    """What a run writes: heatmap PNGs that discovery would otherwise take for parts."""
    for i in range(3):
        make.png(folder / f"part_{i}_heatmap.png", value=200)
    return folder


def test_excluded_output_folder_inside_a_plain_folder_is_ignored(tmp_path: Path) -> None:
    root = make.plain_folder(tmp_path / "parts")
    out = fake_outputs(root / "results")  # no manifest yet: an interrupted or running run
    (index,) = discover_all(root, exclude=[out]).datasets
    assert all("results" not in str(s.rgb_path) for s in index.samples)
    assert len(index.samples) == 5 and index.skipped == []
    # Without the exclusion the heatmaps would have been scored: the guard matters.
    assert len(discover_all(root).datasets[0].samples) == 5  # flat images win over subfolders
    typed = tmp_path / "typed"
    make.plain_folder(typed / "good")
    make.plain_folder(typed / "bad")
    fake_outputs(typed / "out")
    names = {
        s.defect_type for s in discover_all(typed, exclude=[typed / "out"]).datasets[0].samples
    }
    assert names == {"good", "bad"}
    assert "out" in {s.defect_type for s in discover_all(typed).datasets[0].samples}


def test_exclude_accepts_relative_and_symlinked_paths(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    typed = tmp_path / "typed"
    make.plain_folder(typed / "good")
    make.plain_folder(typed / "bad")
    fake_outputs(typed / "out")
    (tmp_path / "link").symlink_to(typed / "out")
    monkeypatch.chdir(tmp_path)
    for exclude in ("typed/out", tmp_path / "link"):
        (index,) = discover_all("typed", exclude=[exclude]).datasets
        assert {s.defect_type for s in index.samples} == {"good", "bad"}


def test_folder_with_manifest_is_never_indexed(tmp_path: Path) -> None:
    typed = tmp_path / "typed"
    make.plain_folder(typed / "good")
    make.plain_folder(typed / "bad")
    write_manifest(fake_outputs(typed / "old_run"))
    (index,) = discover_all(typed).datasets
    assert {s.defect_type for s in index.samples} == {"good", "bad"}
    # A manifest written by another tool is not ours: that folder stays a folder of parts.
    write_manifest(typed / "old_run", tool="something-else")
    assert "old_run" in {s.defect_type for s in discover_all(typed).datasets[0].samples}


def test_multi_category_root_skips_output_category(tmp_path: Path) -> None:
    make.mvtec_ad(tmp_path / "screw")
    out = tmp_path / "results"
    make.mvtec_ad(out / "screw")  # e.g. a copy of the layout written by a report
    write_manifest(out)
    datasets, failures = discover_all(tmp_path)
    assert [d.category for d in datasets] == ["screw"] and failures == []
    assert datasets[0].root == tmp_path / "screw"


def test_root_that_is_an_output_folder_is_refused(tmp_path: Path) -> None:
    out = fake_outputs(tmp_path / "results")
    write_manifest(out)
    with pytest.raises(
        InvalidInputError, match=rf"{out}: is a musc output folder.*{MANIFEST_NAME}"
    ):
        discover_all(out)
    with pytest.raises(InvalidInputError, match="lies in the output folder of this run"):
        discover_all(make.plain_folder(tmp_path / "parts"), exclude=[tmp_path])


def test_one_bad_category_does_not_stop_the_others(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    make.mvtec_ad(tmp_path / "a_fine")
    make.mvtec3d(tmp_path / "b_fine")
    make.png(tmp_path / "c_lonely" / "test" / "good" / "000.png")
    lonely_bad = tmp_path / "d_broken" / "test" / "good"
    make.png(lonely_bad / "000.png")
    (lonely_bad / "001.png").write_bytes(b"junk")
    datasets, failures = discover_all(tmp_path)
    assert [d.category for d in datasets] == ["a_fine", "b_fine"]
    assert [(f.category, f.root) for f in failures] == [
        ("c_lonely", tmp_path / "c_lonely"),
        ("d_broken", tmp_path / "d_broken"),
    ]
    assert "found 1 usable" in failures[0].reason
    assert "(1 unreadable files skipped)" in failures[1].reason
    assert caplog.records == []  # discover_all hands the failures over; it does not log
    with caplog.at_level(logging.WARNING, logger="engine.data.discover"):
        listed = discover_datasets(tmp_path)
    logged = [r.getMessage() for r in caplog.records]
    assert len(logged) == 2 and "c_lonely" in logged[0] and "d_broken" in logged[1]
    assert isinstance(listed, DatasetList) and isinstance(listed, list)
    assert [d.category for d in listed] == ["a_fine", "b_fine"]
    assert listed.failures == failures


def test_all_categories_failing_raises_with_every_reason(tmp_path: Path) -> None:
    make.png(tmp_path / "x" / "test" / "good" / "000.png")
    make.png(tmp_path / "y" / "test" / "good" / "000.png")
    with pytest.raises(InvalidInputError) as err:
        discover_datasets(tmp_path)
    message = str(err.value)
    assert "no category can be scored" in message and "\n" not in message
    assert str(tmp_path / "x") in message and str(tmp_path / "y") in message


def test_single_category_failure_keeps_its_message(tmp_path: Path) -> None:
    make.png(tmp_path / "one" / "a.png")
    with pytest.raises(InvalidInputError, match=r"one: mutual scoring needs at least 2 samples"):
        discover_dataset(tmp_path / "one")
    empty = tmp_path / "empty"
    empty.mkdir()
    with pytest.raises(InvalidInputError, match=r"empty: no images found"):
        discover_datasets(empty)
    datasets, failures = discover_all(empty)
    assert datasets == [] and [f.category for f in failures] == ["empty"]


def test_discover_dataset_reports_a_failed_neighbour_as_warning(tmp_path: Path) -> None:
    make.mvtec_ad(tmp_path / "fine")
    make.png(tmp_path / "lonely" / "test" / "good" / "000.png")
    index = discover_dataset(tmp_path)
    assert index.category == "fine"
    assert any(w.startswith("left out: ") and "lonely" in w for w in index.warnings)


def test_unreadable_category_folder_is_a_failure(tmp_path: Path) -> None:
    make.mvtec_ad(tmp_path / "fine")
    make.mvtec_ad(tmp_path / "other")
    (tmp_path / "gone").symlink_to(tmp_path / "nowhere")
    datasets, failures = discover_all(tmp_path)
    assert [d.category for d in datasets] == ["fine", "other"]
    assert failures == [
        CategoryFailure(
            tmp_path / "gone",
            "gone",
            f"{tmp_path / 'gone'}: broken link to {tmp_path / 'nowhere'} (target not found); "
            "left out",
        )
    ]
