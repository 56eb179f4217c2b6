"""Outputs as one set: target checks, the staging folder, the swap, held signals and modes."""

from __future__ import annotations

import json
import os
import signal
import stat
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest

from engine.errors import InvalidInputError
from engine.outputs import staging
from engine.outputs.export import atomic_path, write_text
from engine.outputs.manifest import MANIFEST_NAME, is_output_folder, write_manifest
from engine.outputs.staging import (
    check_target,
    commit,
    held_signals,
    remove_leftovers,
    staged_output,
)


@pytest.fixture
def umask_022() -> Iterator[None]:
    previous = os.umask(0o022)
    yield
    os.umask(previous)


def _ours(folder: Path, *files: str) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    for name in files:
        (folder / name).parent.mkdir(parents=True, exist_ok=True)
        (folder / name).write_text(name)
    write_manifest(folder)
    return folder


def _hidden(parent: Path) -> list[str]:
    return sorted(p.name for p in parent.iterdir() if p.name.startswith("."))


# --------------------------------------------------------------------------- check_target


def test_a_missing_or_empty_folder_is_taken_silently(tmp_path: Path) -> None:
    assert check_target(tmp_path / "new").note is None
    (tmp_path / "empty").mkdir()
    assert check_target(tmp_path / "empty").note is None
    assert check_target(tmp_path / "empty").path == tmp_path / "empty"


def test_an_earlier_output_is_replaced_with_one_note(tmp_path: Path) -> None:
    out = _ours(tmp_path / "out", "scores.csv")
    note = check_target(out).note
    assert note is not None and "replacing the earlier output" in note and str(out) in note


def test_a_foreign_folder_is_refused_unless_forced(tmp_path: Path) -> None:
    out = tmp_path / "photos"
    out.mkdir()
    (out / "holiday.jpg").write_bytes(b"x")
    with pytest.raises(InvalidInputError) as caught:
        check_target(out)
    message = str(caught.value)
    assert str(out) in message and "--force" in message and MANIFEST_NAME in message
    assert "\n" not in message
    note = check_target(out, force=True).note
    assert note is not None and "--force" in note and "1 entries" in note


def test_files_added_to_an_earlier_output_are_not_deleted_without_force(tmp_path: Path) -> None:
    out = _ours(tmp_path / "out", "scores.csv")
    (out / "my-notes.txt").write_text("keep me")
    with pytest.raises(InvalidInputError, match="my-notes.txt") as caught:
        check_target(out)
    assert "--force" in str(caught.value)
    assert "changed by hand" in (check_target(out, force=True).note or "")


def test_an_unreadable_or_alien_manifest_does_not_make_a_folder_ours(tmp_path: Path) -> None:
    out = tmp_path / "out"
    out.mkdir()
    (out / MANIFEST_NAME).write_text(json.dumps({"tool": "other"}))
    with pytest.raises(InvalidInputError, match="holds no musc output"):
        check_target(out)


def test_a_file_as_target_is_refused(tmp_path: Path) -> None:
    blocker = tmp_path / "file.txt"
    blocker.write_text("x")
    with pytest.raises(InvalidInputError, match="file.txt: is a file"):
        check_target(blocker, force=True)


def test_the_input_or_a_folder_holding_it_is_never_replaced(tmp_path: Path) -> None:
    data = tmp_path / "line" / "data"
    data.mkdir(parents=True)
    (data / "a.png").write_bytes(b"x")
    for out in (data, tmp_path / "line", tmp_path / "line" / "." / "data" / ".."):
        with pytest.raises(InvalidInputError, match="would delete the input"):
            check_target(out, force=True, protect=[data])
    assert check_target(data / "results", protect=[data]).note is None  # inside is fine


def test_the_filesystem_root_is_refused() -> None:
    with pytest.raises(InvalidInputError, match="filesystem root"):
        check_target("/")


def test_a_symlink_target_is_followed(tmp_path: Path) -> None:
    real = _ours(tmp_path / "real", "scores.csv")
    link = tmp_path / "link"
    link.symlink_to(real)
    assert check_target(link).path == real


# --------------------------------------------------------------------------- staging and swap


def test_commit_swaps_the_new_set_in_and_removes_the_old_one(tmp_path: Path, umask_022) -> None:
    out = _ours(tmp_path / "out", "maps/stale.png", "scores.csv")
    with staged_output(out) as stage:
        assert stage.parent == out.parent and stage.name.startswith(".out.musc-tmp.")
        assert stat.S_IMODE(stage.stat().st_mode) == 0o755  # not mkdtemp's 0700
        write_text(stage / "scores.csv", "new\n")
        commit(stage, out, {"categories": ["c"]})
    assert (out / "scores.csv").read_text() == "new\n"
    assert not (out / "maps").exists()  # replaced as a whole, never merged
    assert is_output_folder(out) and _hidden(tmp_path) == []


def test_an_exception_inside_removes_the_staging_folder_and_keeps_the_old_set(
    tmp_path: Path,
) -> None:
    out = _ours(tmp_path / "out", "scores.csv")
    before = (out / MANIFEST_NAME).read_text()
    for error in (RuntimeError("boom"), KeyboardInterrupt(), SystemExit(143)):
        with pytest.raises(type(error)), staged_output(out) as stage:
            write_text(stage / "scores.csv", "half")
            raise error
    assert _hidden(tmp_path) == [] and (out / MANIFEST_NAME).read_text() == before


def test_an_unwritable_place_is_reported_before_any_work(tmp_path: Path) -> None:
    blocker = tmp_path / "file.txt"
    blocker.write_text("x")
    with pytest.raises(InvalidInputError, match="not writable") as caught:
        with staged_output(blocker / "out"):
            pytest.fail("must not be reached")
    assert "file.txt" in str(caught.value)


def test_a_failed_swap_keeps_the_previous_set_and_the_new_one_visibly(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    out = _ours(tmp_path / "out", "scores.csv")
    real_rename = os.rename

    def rename(source: str | Path, destination: str | Path) -> None:
        if Path(destination) == out and ".musc-tmp." in str(source):
            raise OSError(16, "Device or resource busy")
        real_rename(source, destination)

    monkeypatch.setattr(staging.os, "rename", rename)
    with pytest.raises(InvalidInputError, match="complete in") as caught, staged_output(out) as s:
        write_text(s / "scores.csv", "new\n")
        commit(s, out)
    monkeypatch.undo()
    kept = Path(str(caught.value).split("complete in ")[1].split(". Move")[0])
    assert (out / "scores.csv").read_text() == "scores.csv"  # the old set, back in place
    assert (kept / "scores.csv").read_text() == "new\n" and is_output_folder(kept)
    assert _hidden(tmp_path) == []


def _dead_pid() -> int:
    dead = subprocess.Popen(["true"])
    dead.wait()
    return dead.pid


def test_leftovers_of_dead_runs_of_this_host_are_removed(tmp_path: Path) -> None:
    out = _ours(tmp_path / "out", "scores.csv")
    dead = _dead_pid()
    host = staging._host()
    names = {
        "dead": f".out.musc-tmp.{dead}.{host}.x1",
        "dead_old": f".out.musc-old.{dead}.{host}.x2",
        "alive": f".out.musc-tmp.{os.getpid()}.{host}.x3",
        "other_host": f".out.musc-tmp.{dead}.{host}zz.x4",
        "other_target": f".outer.musc-tmp.{dead}.{host}.x5",
    }
    for name in names.values():
        (tmp_path / name).mkdir()
    removed = remove_leftovers(out)
    assert sorted(p.name for p in removed) == sorted([names["dead"], names["dead_old"]])
    left = set(_hidden(tmp_path))
    assert left == {names["alive"], names["other_host"], names["other_target"]}
    assert is_output_folder(out)


def test_a_run_killed_mid_swap_gets_its_previous_set_back(tmp_path: Path) -> None:
    out = tmp_path / "out"
    hidden = f".out.musc-old.{_dead_pid()}.{staging._host()}.x"
    _ours(tmp_path / hidden, "scores.csv")  # the old set, moved away; the new never came
    assert check_target(out).note is not None  # it is back, so replacing it is said
    assert is_output_folder(out) and _hidden(tmp_path) == []


def test_a_subfolder_of_an_output_set_is_not_written_into(tmp_path: Path) -> None:
    root = _ours(tmp_path / "out", "bolt/scores.csv", "nut/scores.csv")
    with pytest.raises(InvalidInputError, match="is part of the musc output") as caught:
        check_target(root / "bolt")
    assert str(root) in str(caught.value) and "--force" in str(caught.value)
    assert check_target(root / "bolt", force=True).note is not None


# --------------------------------------------------------------------------- signals and modes


def test_held_signals_are_delivered_after_the_critical_section() -> None:
    done = []
    with pytest.raises(KeyboardInterrupt):
        with held_signals():
            signal.raise_signal(signal.SIGINT)
            done.append("not cut")  # the section runs to its end
    assert done == ["not cut"]
    assert signal.getsignal(signal.SIGINT) is signal.default_int_handler


def test_a_signal_during_commit_is_returned_after_the_swap(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    out = _ours(tmp_path / "out", "old.txt")
    real = staging.write_manifest

    def manifest_then_ctrl_c(*args: object) -> Path:
        signal.raise_signal(signal.SIGINT)
        return real(*args)

    monkeypatch.setattr(staging, "write_manifest", manifest_then_ctrl_c)
    with staged_output(out) as stage:
        write_text(stage / "new.txt", "new")
        assert commit(stage, out) == signal.SIGINT
    assert (out / "new.txt").exists() and not (out / "old.txt").exists()
    assert signal.getsignal(signal.SIGINT) is signal.default_int_handler


@pytest.mark.parametrize(("umask", "mode"), [(0o022, 0o644), (0o027, 0o640), (0o077, 0o600)])
def test_atomic_files_get_the_umask_mode(tmp_path: Path, umask: int, mode: int) -> None:
    previous = os.umask(umask)
    try:
        with atomic_path(tmp_path / "a.txt") as tmp:
            tmp.write_text("x")
        with staged_output(tmp_path / "out") as stage:
            stage_mode = stat.S_IMODE(stage.stat().st_mode)
    finally:
        os.umask(previous)
    assert stat.S_IMODE((tmp_path / "a.txt").stat().st_mode) == mode
    assert stage_mode == mode | (0o111 & ~umask)
