"""Bad input and existing outputs for ``musc score``: exit status, the message, what is written.

Each case builds its input in code (see :mod:`tests.engine.cli_support`). This file: the output
folder against the input, refused and replaced targets. test_cli_categories: bad categories,
a finished run kept, what is written.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from engine.outputs import staging
from engine.outputs.manifest import MANIFEST_NAME, is_output_folder
from tests.engine.cli_support import fast, file_tree, make_line, read_rows, score, staging_leftovers

__all__ = ["fast", "score"]  # fixtures, used by name


# --------------------------------------------------------------------------- outputs vs input


def test_out_inside_the_input_twice_never_scores_its_own_outputs(tmp_path: Path, score) -> None:
    data = make_line(tmp_path / "data")
    out = data / "results"
    first_code, _ = score(data, out)
    first = read_rows(out)
    second_code, err = score(data, out)
    second = read_rows(out)
    assert (first_code, second_code) == (0, 0)
    assert len(second) == len(first) == 6
    assert [r["sample"] for r in second] == [r["sample"] for r in first]
    assert "replacing the earlier output" in err and str(out) in err
    assert not any("results" in r["path"] for r in second)


def test_a_multi_category_output_inside_the_root_is_not_a_category(
    tmp_path: Path, score, fast
) -> None:
    root = tmp_path / "root"
    make_line(root / "bolt"), make_line(root / "nut")
    assert score(root, root / "out")[0] == 0
    code, err = score(root, root / "out")
    assert code == 0 and "out:" not in err
    assert sorted(json.loads((root / "out" / MANIFEST_NAME).read_text())["categories"]) == [
        "bolt",
        "nut",
    ]


def test_an_old_output_under_another_name_inside_the_input_is_skipped(
    tmp_path: Path, score, fast
) -> None:
    data = make_line(tmp_path / "data")
    assert score(data, data / "run1")[0] == 0
    code, _ = score(data, tmp_path / "run2")
    assert code == 0 and len(read_rows(tmp_path / "run2")) == 6
    assert is_output_folder(data / "run1")


def test_a_forced_out_inside_the_input_is_not_scored_before_it_is_replaced(
    tmp_path: Path, score, fast
) -> None:
    data = tmp_path / "data"
    rng = np.random.default_rng(1)
    for folder, count in (("good", 4), ("bad", 2), ("old", 3)):  # old/: images, not ours
        (data / folder).mkdir(parents=True)
        for i in range(count):
            pixels = rng.integers(0, 255, (64, 64, 3), dtype=np.uint8)
            Image.fromarray(pixels).save(data / folder / f"{i}.png")
    code, err = score(data, data / "old", "--force")
    assert code == 0 and "--force: replacing" in err
    rows = read_rows(data / "old")
    assert len(rows) == 6 and not any(r["path"].startswith("old/") for r in rows)


def test_rerun_replaces_the_whole_set_stale_maps_of_removed_parts_go(
    tmp_path: Path, score, fast
) -> None:
    data, out = make_line(tmp_path / "data"), tmp_path / "out"
    assert score(data, out)[0] == 0
    assert (out / "maps" / "good_003.png").exists()
    (data / "test" / "good" / "003.png").unlink()
    code, err = score(data, out)
    assert code == 0
    said = [line for line in err.splitlines() if "replacing" in line]
    assert len(said) == 1 and f"replacing the earlier output in {out}" in said[0]
    assert said[0].endswith("as a whole")
    assert not (out / "maps" / "good_003.png").exists() and len(read_rows(out)) == 5
    files = json.loads((out / MANIFEST_NAME).read_text())["files"]
    assert "maps/good_003.png" not in files and files["scores.csv"] > 0
    assert set(files) == set(file_tree(out)) - {MANIFEST_NAME}
    assert staging_leftovers(tmp_path) == []


def test_an_empty_existing_folder_is_used_without_a_note(tmp_path: Path, score, fast) -> None:
    data, out = make_line(tmp_path / "data"), tmp_path / "out"
    out.mkdir()
    code, err = score(data, out)
    assert code == 0 and "replacing" not in err and is_output_folder(out)


# --------------------------------------------------------------------------- refused targets


def test_a_foreign_non_empty_folder_is_refused_and_left_untouched(tmp_path: Path, score) -> None:
    data, out = make_line(tmp_path / "data"), tmp_path / "photos"
    out.mkdir()
    (out / "holiday.jpg").write_bytes(b"precious")
    code, err = score(data, out)
    assert code == 2 and len(err.strip().splitlines()) == 1
    assert str(out) in err and "--force" in err and "holds no musc output" in err
    assert file_tree(out) == {"holiday.jpg": b"precious"} and staging_leftovers(tmp_path) == []


def test_a_foreign_folder_is_replaced_with_force(tmp_path: Path, score, fast) -> None:
    data, out = make_line(tmp_path / "data"), tmp_path / "photos"
    out.mkdir()
    (out / "holiday.jpg").write_bytes(b"x")
    code, err = score(data, out, "--force")
    assert code == 0 and f"--force: replacing {out}" in err
    assert not (out / "holiday.jpg").exists() and is_output_folder(out)


def test_files_added_to_an_earlier_output_block_the_replacement(
    tmp_path: Path, score, fast
) -> None:
    data, out = make_line(tmp_path / "data"), tmp_path / "out"
    assert score(data, out)[0] == 0
    (out / "maps" / "my-notes.txt").write_text("keep")
    before = file_tree(out)
    code, err = score(data, out)
    assert code == 2 and "maps/my-notes.txt" in err and "--force" in err
    assert file_tree(out) == before


def test_an_output_file_edited_by_hand_blocks_the_replacement(tmp_path: Path, score, fast) -> None:
    data, out = make_line(tmp_path / "data"), tmp_path / "out"
    assert score(data, out)[0] == 0
    with open(out / "scores.csv", "a") as handle:
        handle.write("# checked by QA\n")
    before = file_tree(out)
    code, err = score(data, out)
    assert code == 2 and "1 file(s) were added or changed since it was written (scores.csv)" in err
    assert file_tree(out) == before


def test_one_category_of_a_multi_category_output_is_not_rewritten_alone(
    tmp_path: Path, score, fast
) -> None:
    root = tmp_path / "root"
    make_line(root / "bolt"), make_line(root / "nut")
    out = tmp_path / "out"
    assert score(root, out)[0] == 0
    before = file_tree(out)
    code, err = score(root / "bolt", out / "bolt")
    assert code == 2 and f"{out / 'bolt'}: is part of the musc output {out}" in err
    assert file_tree(out) == before


def test_a_corrupt_manifest_does_not_make_a_folder_replaceable(tmp_path: Path, score) -> None:
    data, out = make_line(tmp_path / "data"), tmp_path / "out"
    out.mkdir()
    (out / MANIFEST_NAME).write_text('{"tool": "musc-inspector", ')
    (out / "scores.csv").write_text("mine")
    code, err = score(data, out)
    assert code == 2 and "holds no musc output" in err and (out / "scores.csv").exists()


def test_an_output_path_that_is_a_file_is_refused(tmp_path: Path, score) -> None:
    data, blocker = make_line(tmp_path / "data"), tmp_path / "file.txt"
    blocker.write_text("x")
    code, err = score(data, blocker, "--force")
    assert code == 2 and f"{blocker}: is a file" in err and blocker.read_text() == "x"


def test_an_output_below_a_file_is_not_writable(tmp_path: Path, score) -> None:
    data, blocker = make_line(tmp_path / "data"), tmp_path / "file.txt"
    blocker.write_text("x")
    code, err = score(data, blocker / "out")
    assert code == 2 and "not writable" in err and "file.txt" in err
    assert "extract" not in err  # refused before any scoring


@pytest.mark.parametrize("where", ["dataset", "parent"])
def test_the_input_folder_is_never_the_output_even_with_force(
    tmp_path: Path, score, where: str
) -> None:
    data = make_line(tmp_path / "line" / "data")
    before = file_tree(tmp_path / "line")
    out = data if where == "dataset" else tmp_path / "line"
    code, err = score(data, out, "--force")
    assert code == 2 and "would delete the input" in err and str(data) in err
    assert file_tree(tmp_path / "line") == before


def test_a_missing_dataset_writes_nothing(tmp_path: Path, score) -> None:
    code, err = score(tmp_path / "nowhere", tmp_path / "out")
    assert code == 2 and "nowhere" in err and not (tmp_path / "out").exists()
    assert staging_leftovers(tmp_path) == []


def test_a_dataset_that_is_a_file_writes_nothing(tmp_path: Path, score) -> None:
    (tmp_path / "a.png").write_bytes(b"x")
    code, err = score(tmp_path / "a.png", tmp_path / "out")
    assert code == 2 and "a.png" in err and "is a file" in err and not (tmp_path / "out").exists()


def test_leftovers_of_a_killed_run_are_cleared_by_the_next(tmp_path: Path, score, fast) -> None:
    data, out = make_line(tmp_path / "data"), tmp_path / "out"
    dead = subprocess.Popen(["true"])
    dead.wait()
    killed = tmp_path / f".out.musc-tmp.{dead.pid}.{staging._host()}.abc"
    live = tmp_path / f".out.musc-tmp.{os.getpid()}.{staging._host()}.def"
    killed.mkdir(), live.mkdir()
    (killed / "scores.csv").write_text("half")
    assert score(data, out)[0] == 0
    assert not killed.exists() and live.exists()  # a live run's folder is not ours to remove
    shutil.rmtree(live)


def test_an_output_symlink_is_written_through(tmp_path: Path, score, fast) -> None:
    data, real = make_line(tmp_path / "data"), tmp_path / "real"
    assert score(data, real)[0] == 0
    link = tmp_path / "link"
    link.symlink_to(real)
    code, err = score(data, link)
    assert code == 0 and f"replacing the earlier output in {real}" in err
    assert link.is_symlink() and is_output_folder(link) and staging_leftovers(tmp_path) == []
