"""Bad categories, finished runs that must be kept, and what ``musc score`` writes.

Each case builds its input in code (see :mod:`tests.engine.cli_support`) and checks the exit
status, the message and the files written.
"""

from __future__ import annotations

import json
import os
import stat
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from engine import cli
from engine.outputs import export, staging
from engine.outputs.manifest import MANIFEST_NAME, is_output_folder
from tests.engine.cli_support import (
    fast,
    file_tree,
    make_line,
    read_rows,
    score,
    single_sample_category,
    staging_leftovers,
    truncate_body,
    umask_022,
)

__all__ = ["fast", "score", "umask_022"]  # fixtures, used by name


# --------------------------------------------------------------------------- bad categories


def test_a_category_with_one_sample_is_reported_and_the_other_written(
    tmp_path: Path, score, fast
) -> None:
    root = tmp_path / "root"
    make_line(root / "bolt")
    lone = single_sample_category(root / "nut")
    code, err = score(root, tmp_path / "out")
    assert code == 3
    assert str(lone) in err and "at least 2" in err and "exit 3" in err
    assert (
        len(read_rows(tmp_path / "out" / "bolt")) == 6 and not (tmp_path / "out" / "nut").exists()
    )
    manifest = json.loads((tmp_path / "out" / MANIFEST_NAME).read_text())
    assert manifest["categories"] == ["bolt"]
    assert [f["category"] for f in manifest["failed"]] == ["nut"]


def test_a_category_whose_images_do_not_decode_is_reported_and_the_other_written(
    tmp_path: Path, score, fast
) -> None:
    root = tmp_path / "root"
    make_line(root / "bolt")
    nut = make_line(root / "nut")
    for image in (nut / "test").rglob("*.png"):
        if image.name != "000.png" or image.parent.name != "good":
            truncate_body(image)
    code, err = score(root, tmp_path / "out")
    assert code == 3 and "nut: failed, not written" in err and str(nut) in err
    assert (tmp_path / "out" / "bolt" / "scores.csv").exists()
    failed = json.loads((tmp_path / "out" / MANIFEST_NAME).read_text())["failed"]
    assert failed[0]["path"] == str(nut) and "at least 2" in failed[0]["reason"]


def test_an_unreadable_category_folder_is_reported_and_the_other_written(
    tmp_path: Path, score, fast, monkeypatch: pytest.MonkeyPatch
) -> None:
    root = tmp_path / "root"
    make_line(root / "bolt")
    nut = make_line(root / "nut")
    real_scandir = os.scandir

    def scandir(path: str | Path = ".") -> object:
        # chmod 000 cannot stop root (CI), so the refusal is simulated where discovery lists
        if Path(path) == nut / "test":
            raise PermissionError(13, "Permission denied")
        return real_scandir(path)

    monkeypatch.setattr(os, "scandir", scandir)
    code, err = score(root, tmp_path / "out")
    assert code == 3 and f"{nut / 'test'}" in err and "Permission denied" in err
    assert (tmp_path / "out" / "bolt" / "scores.csv").exists()
    assert not (tmp_path / "out" / "nut").exists()


def test_when_every_category_fails_the_previous_output_stays(tmp_path: Path, score, fast) -> None:
    good_root, bad_root = tmp_path / "good", tmp_path / "bad"
    make_line(good_root / "bolt"), make_line(good_root / "nut")
    out = tmp_path / "out"
    assert score(good_root, out)[0] == 0
    before = file_tree(out)
    for name in ("bolt", "nut"):
        line = make_line(bad_root / name)
        for image in (line / "test").rglob("*.png"):
            truncate_body(image)
    code, err = score(bad_root, out)
    assert code == 2 and "none of the 2 categories" in err
    assert file_tree(out) == before and staging_leftovers(tmp_path) == []


# --------------------------------------------------------------------------- a finished run is kept


def test_failing_metrics_still_write_the_outputs_with_the_error(
    tmp_path: Path, score, fast, monkeypatch: pytest.MonkeyPatch
) -> None:
    def broken(_result: object, **_kwargs: object) -> None:
        raise ValueError("mask 7 has shape (3, 3)")

    monkeypatch.setattr(cli, "evaluate_all", broken)
    data, out = make_line(tmp_path / "data"), tmp_path / "out"
    code, err = score(data, out)
    assert code == 0 and "metrics not computed" in err and "mask 7 has shape" in err
    document = json.loads((out / "results.json").read_text())
    assert document["metrics_error"] == "ValueError: mask 7 has shape (3, 3)"
    assert "metrics" not in document and len(read_rows(out)) == 6
    assert len(list((out / "maps").glob("*.png"))) == 6


def test_a_broken_ground_truth_mask_does_not_lose_the_run(tmp_path: Path, score, fast) -> None:
    data, out = make_line(tmp_path / "data"), tmp_path / "out"
    truncate_body(data / "ground_truth" / "scratch" / "000_mask.png")
    code, err = score(data, out)
    assert code == 0 and "000_mask.png" in err
    assert len(read_rows(out)) == 6 and is_output_folder(out)


def test_an_image_gone_before_writing_still_gets_its_heatmap(
    tmp_path: Path, score, fast, monkeypatch: pytest.MonkeyPatch
) -> None:
    real = export.read_rgb

    def read(path: Path) -> np.ndarray:
        if Path(path).name == "000.png" and Path(path).parent.name == "spot":
            raise export.InvalidInputError(f"{path}: file not found")
        return real(path)

    monkeypatch.setattr(export, "read_rgb", read)
    data, out = make_line(tmp_path / "data"), tmp_path / "out"
    assert score(data, out)[0] == 0
    warnings = json.loads((out / "results.json").read_text())["warnings"]
    assert any("spot_000: heatmap drawn without its image" in w for w in warnings)
    assert (out / "maps" / "spot_000.png").exists()


def test_a_failed_swap_keeps_both_sets(
    tmp_path: Path, score, fast, monkeypatch: pytest.MonkeyPatch
) -> None:
    data, out = make_line(tmp_path / "data"), tmp_path / "out"
    assert score(data, out)[0] == 0
    before = file_tree(out)
    real_rename = os.rename

    def rename(source: str | Path, destination: str | Path) -> None:
        if Path(destination) == out and ".musc-tmp." in str(source):
            raise OSError(18, "Invalid cross-device link")
        real_rename(source, destination)

    monkeypatch.setattr(staging.os, "rename", rename)
    code, err = score(data, out)
    assert code == 2 and "could not be replaced" in err and f"{out}.new-{os.getpid()}" in err
    assert file_tree(out) == before and is_output_folder(f"{out}.new-{os.getpid()}")


def test_ctrl_c_while_writing_keeps_the_previous_output(
    tmp_path: Path, score, fast, monkeypatch: pytest.MonkeyPatch
) -> None:
    data, out = make_line(tmp_path / "data"), tmp_path / "out"
    assert score(data, out)[0] == 0
    before = file_tree(out)
    real = export.overlay
    calls: list[int] = []

    def interrupted(*args: object) -> np.ndarray:
        calls.append(1)
        if len(calls) == 3:
            raise KeyboardInterrupt
        return real(*args)

    monkeypatch.setattr(export, "overlay", interrupted)
    code, err = score(data, out)
    assert code == 130 and "interrupted" in err and "left as it was" in err
    assert file_tree(out) == before and staging_leftovers(tmp_path) == []


# --------------------------------------------------------------------------- what is written


def test_written_files_get_the_umask_modes(tmp_path: Path, score, fast, umask_022) -> None:
    data, out = make_line(tmp_path / "data"), tmp_path / "out"
    assert score(data, out)[0] == 0
    entries = [out, *out.rglob("*")]
    modes = {p.relative_to(tmp_path).as_posix(): stat.S_IMODE(p.stat().st_mode) for p in entries}
    assert modes["out"] == 0o755 and modes["out/maps"] == 0o755
    assert modes["out/scores.csv"] == modes["out/maps.h5"] == modes[f"out/{MANIFEST_NAME}"] == 0o644
    assert {m for p, m in modes.items() if p.endswith(".png")} == {0o644}


def test_colliding_names_are_told_apart_by_the_path_column(tmp_path: Path, score, fast) -> None:
    data = tmp_path / "flat"
    data.mkdir()
    rng = np.random.default_rng(0)
    for name in ("a b", "a_b", "c", "d"):
        pixels = rng.integers(0, 255, (64, 64, 3), dtype=np.uint8)
        Image.fromarray(pixels).save(data / f"{name}.png")
    assert score(data, tmp_path / "out")[0] == 0
    paths = {r["sample"]: r["path"] for r in read_rows(tmp_path / "out")}
    assert paths["a_b"] != paths["a_b_2"] and {paths["a_b"], paths["a_b_2"]} == {
        "a b.png",
        "a_b.png",
    }
    samples = json.loads((tmp_path / "out" / "results.json").read_text())["samples"]
    assert {s["path"] for s in samples} == {"a b.png", "a_b.png", "c.png", "d.png"}


def test_clipped_subsets_are_recorded_and_said_once(tmp_path: Path, score, fast) -> None:
    data, out = make_line(tmp_path / "data"), tmp_path / "out"
    code, err = score(data, out, "--subsets", "50")
    document = json.loads((out / "results.json").read_text())
    assert code == 0 and document["config"]["subsets"] == 50
    assert document["subsets_effective"] == 3  # 6 samples: at least 2 per subset
    assert sum("subsets g=50 clipped to 3" in line for line in err.splitlines()) == 1


def test_unclipped_subsets_say_nothing(tmp_path: Path, score, fast) -> None:
    data, out = make_line(tmp_path / "data"), tmp_path / "out"
    code, err = score(data, out, "--subsets", "2")
    assert code == 0 and "clipped to" not in err
    assert json.loads((out / "results.json").read_text())["subsets_effective"] == 2
