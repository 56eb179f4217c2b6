"""The CLI's decision contract: thresholds with how, verdicts, areas, regions, options."""
# ruff: noqa: F811  (pytest fixtures imported from cli_support are parameters here)

from __future__ import annotations

import json
from pathlib import Path

import h5py
import numpy as np
import pytest

from engine.decision.regions import part_defects
from tests.engine.cli_support import fast, make_line, read_rows, score  # noqa: F401

pytestmark = pytest.mark.usefixtures("fast")


def _document(out: Path) -> dict:
    return json.loads((out / "results.json").read_text())


def test_results_json_carries_thresholds_verdicts_and_regions(tmp_path: Path, score):
    data, out = make_line(tmp_path / "data", n_good=6), tmp_path / "out"
    code, err = score(data, out)
    assert code == 0
    document = _document(out)
    image, pixel = document["thresholds"]["image"], document["thresholds"]["pixel"]
    assert image["how"].startswith("median + 3") and pixel["how"].startswith("highest map peak")
    rows = {row["sample"]: row for row in read_rows(out)}
    fails = 0
    for entry in document["samples"]:
        failed = entry["score"] >= image["value"]
        fails += failed
        assert entry["verdict"] == ("fail" if failed else "pass")
        assert entry["defect_area_px"] == sum(r["area_px"] for r in entry["regions"])
        assert entry["defect_area_mm2"] is None  # no XYZ on this line
        assert rows[entry["sample"]]["verdict"] == entry["verdict"]
        assert int(rows[entry["sample"]]["defect_area_px"]) == entry["defect_area_px"]
    assert document["outcome"]["fail"] == fails
    assert f"{fails} fail" in err and "pixel cut" in err
    # the pixel value is in the units of maps.h5: recutting the stored map gives the same area
    with h5py.File(out / "maps.h5") as store:
        assert store.attrs["pixel_threshold"] == pytest.approx(pixel["value"])
        entry = max(document["samples"], key=lambda e: e["defect_area_px"])
        # 0.01 % of a 64 x 64 image rounds to the floor of 1 px
        recut = part_defects(store[f"maps/{entry['sample']}"][()], pixel["value"], min_area_px=1)
    assert recut.area_px == entry["defect_area_px"] > 0


def test_typed_thresholds_and_minimum_area(tmp_path: Path, score):
    data, out = make_line(tmp_path / "data"), tmp_path / "out"
    code, _ = score(data, out, "--threshold", "1e9", "--pixel-threshold", "-1",
                    "--min-area-px", "1000000")  # fmt: skip
    assert code == 0
    document = _document(out)
    assert document["thresholds"]["image"]["source"] == "user"
    assert all(e["verdict"] == "pass" for e in document["samples"])
    assert all(e["regions"] == [] and e["defect_area_px"] == 0 for e in document["samples"])
    code, _ = score(data, tmp_path / "out2", "--pixel-threshold", "-1", "--min-area-px", "1")
    whole = _document(tmp_path / "out2")["samples"][0]
    assert whole["defect_area_px"] == 64 * 64 and len(whole["regions"]) == 1


def test_max_f1_is_used_only_when_asked_and_lists_mistakes(tmp_path: Path, score):
    data = make_line(tmp_path / "data")
    code, err = score(data, tmp_path / "out", "--threshold", "max-f1")
    assert code == 0
    document = _document(tmp_path / "out")
    assert document["thresholds"]["image"]["source"] == "max-f1"
    assert document["outcome"]["false_rejects"] is not None and "escapes (ground truth)" in err


def test_max_f1_without_ground_truth_is_refused_before_scoring(tmp_path: Path, score):
    data = make_line(tmp_path / "data")
    plain = tmp_path / "plain"
    plain.mkdir()
    for image in sorted((data / "test").glob("*/*.png"))[:5]:
        (plain / f"{image.parent.name}_{image.name}").write_bytes(image.read_bytes())
    code, err = score(plain, tmp_path / "out", "--threshold", "max-f1")
    assert code == 2 and "needs ground truth" in err and not (tmp_path / "out").exists()


def test_bad_threshold_words_are_usage_errors(tmp_path: Path, score):
    with pytest.raises(SystemExit) as stop:
        score(tmp_path, tmp_path / "out", "--threshold", "best")
    assert stop.value.code == 2


def test_reference_good_parts_are_scored_with_the_batch_and_set_the_cut(tmp_path: Path, score):
    data = make_line(tmp_path / "data", n_good=6)
    reference = make_line(tmp_path / "ref", n_good=4) / "test" / "good"
    code, err = score(data, tmp_path / "out", "--reference-good", str(reference))
    assert code == 0 and "4 known-good reference parts" in err
    document = _document(tmp_path / "out")
    marked = [e for e in document["samples"] if e["known_good"]]
    assert len(marked) == 4 and all(e["sample"].startswith("ref_") for e in marked)
    image = document["thresholds"]["image"]
    assert image["source"] == "reference" and image["expected_false_reject"] == pytest.approx(0.2)
    assert image["value"] > max(e["score"] for e in marked)
    assert np.isclose(image["value"], max(e["score"] for e in marked), rtol=1e-6)


def test_reference_glob_inside_the_batch_marks_instead_of_adding(tmp_path: Path, score):
    data = make_line(tmp_path / "data", n_good=6)
    pattern = str(data / "test" / "good" / "00[0-2].png")
    code, err = score(data, tmp_path / "out", "--reference-good", pattern)
    assert code == 0
    document = _document(tmp_path / "out")
    assert len(document["samples"]) == 8  # 6 good + 2 defective, nothing added
    assert sorted(e["sample"] for e in document["samples"] if e["known_good"]) == [
        "good_000", "good_001", "good_002"
    ]  # fmt: skip


def test_reference_that_matches_nothing_names_the_pattern(tmp_path: Path, score):
    data = make_line(tmp_path / "data")
    code, err = score(data, tmp_path / "out", "--reference-good", str(tmp_path / "none*.png"))
    assert code == 2 and "none*.png: no known-good images found" in err
