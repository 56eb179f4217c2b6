"""The manifest that marks a complete musc output set."""

from __future__ import annotations

import json
from pathlib import Path

from engine import __version__
from engine.outputs.manifest import (
    MANIFEST_NAME,
    is_output_folder,
    read_manifest,
    unlisted_entries,
    write_manifest,
)


def _fill(folder: Path) -> None:
    (folder / "maps").mkdir(parents=True)
    (folder / "scores.csv").write_text("rank\n")
    (folder / "maps" / "a.png").write_bytes(b"12345")


def test_manifest_lists_every_file_with_its_size_tool_version_and_time(tmp_path: Path) -> None:
    _fill(tmp_path)
    write_manifest(tmp_path, {"categories": ["x"]})
    document = json.loads((tmp_path / MANIFEST_NAME).read_text())
    assert document["tool"] == "musc-inspector" and document["version"] == __version__
    assert document["time"].endswith("Z") and document["categories"] == ["x"]
    assert document["files"] == {"maps/a.png": 5, "scores.csv": 5}  # not itself


def test_is_output_folder_only_for_our_readable_manifest(tmp_path: Path) -> None:
    assert not is_output_folder(tmp_path)  # no manifest
    assert not is_output_folder(tmp_path / "missing")
    write_manifest(tmp_path)
    assert is_output_folder(tmp_path) and is_output_folder(str(tmp_path))
    (tmp_path / MANIFEST_NAME).write_text("{not json")
    assert not is_output_folder(tmp_path) and read_manifest(tmp_path) is None
    (tmp_path / MANIFEST_NAME).write_text(json.dumps({"tool": "someone-else"}))
    assert not is_output_folder(tmp_path)
    (tmp_path / MANIFEST_NAME).write_text("[1, 2]")
    assert not is_output_folder(tmp_path)
    (tmp_path / MANIFEST_NAME).write_bytes(b"\xff\xfe")
    assert not is_output_folder(tmp_path)


def test_a_file_named_like_a_folder_is_not_an_output_folder(tmp_path: Path) -> None:
    blocker = tmp_path / "x"
    blocker.write_text("{}")
    assert not is_output_folder(blocker)


def test_unlisted_entries_are_the_files_added_or_changed_after_the_run(tmp_path: Path) -> None:
    _fill(tmp_path)
    write_manifest(tmp_path)
    document = read_manifest(tmp_path)
    assert document is not None and unlisted_entries(tmp_path, document) == []
    (tmp_path / "maps" / "notes.txt").write_text("mine")
    assert unlisted_entries(tmp_path, document) == ["maps/notes.txt"]
    (tmp_path / "scores.csv").write_text("rank,edited by hand\n")
    assert unlisted_entries(tmp_path, document) == ["maps/notes.txt", "scores.csv"]
