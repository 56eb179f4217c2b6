"""StreamWriter: stream.csv, heatmap PNGs and maps.h5 that survive a writer killed with SIGKILL."""

from __future__ import annotations

import csv
import os
import signal
import subprocess
import sys
import textwrap
from pathlib import Path

import h5py
import numpy as np
import pytest
from PIL import Image

from engine.decision.display import colorize
from engine.errors import InvalidInputError
from engine.stream.stream_output import CSV_HEADER, StreamRecord, StreamWriter, read_maps

REPO = Path(__file__).resolve().parents[3]

# A writer that streams parts p0000, p0001, ... (map of part i filled with i) and prints i once
# write() returned. KILL_AT >= 0: it kills itself while writing that part, after its map's
# values are in maps.h5 and before the row that commits them.
WRITER = textwrap.dedent(
    """
    import os, signal, sys
    import numpy as np
    from engine.stream import stream_output
    from engine.stream.stream_output import StreamRecord, StreamWriter

    out, kill_at = sys.argv[1], int(sys.argv[2])
    commit = stream_output._MapStore._commit

    def commit_or_die(self, name, offset, shape):
        if name == f"p{kill_at:04d}":
            os.kill(os.getpid(), signal.SIGKILL)
        commit(self, name, offset, shape)

    stream_output._MapStore._commit = commit_or_die
    writer = StreamWriter(out)
    print("ready", flush=True)
    for i in range(100000):
        record = StreamRecord("2024-01-01T00:00:00+00:00", f"p{i:04d}", float(i), "pass",
                              None, None, 1.0)
        writer.write(record, np.full((96, 96), i, np.float32))
        print(i, flush=True)
    """
)


def record(name: str, label: int | None = None, defect: str | None = None) -> StreamRecord:
    return StreamRecord("2024-05-01T12:00:00+02:00", name, 0.25, "pass", label, defect, 12.34)


def read_csv(out: Path) -> list[list[str]]:
    text = (out / "stream.csv").read_text(encoding="utf-8")
    assert text.endswith("\n")
    return list(csv.reader(text.splitlines()))


def run_writer(out: Path, kill_at: int, acks_before_kill: int | None) -> list[int]:
    """Run WRITER; SIGKILL it right after ``acks_before_kill`` parts. Returns the acked parts."""
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    child = subprocess.Popen(
        [sys.executable, "-c", WRITER, str(out), str(kill_at)],
        stdout=subprocess.PIPE,
        text=True,
        env=env,
        cwd=REPO,
    )
    acked = []
    try:
        assert child.stdout.readline() == "ready\n"
        for line in child.stdout:
            acked.append(int(line))
            if len(acked) == acks_before_kill:
                child.send_signal(signal.SIGKILL)  # it is writing the next part by now
                break
        acked += [int(line) for line in child.stdout]
    finally:
        child.kill()
        child.wait(timeout=30)
    assert child.returncode == -signal.SIGKILL
    return acked


def check_after_kill(out: Path, acked: list[int]) -> list[str]:
    """Every CSV line whole, every part in it (and every acked one) with its intact map."""
    rows = read_csv(out)
    assert rows[0] == list(CSV_HEADER)
    assert all(len(row) == len(CSV_HEADER) for row in rows)
    names = [row[1] for row in rows[1:]]
    assert names == [f"p{i:04d}" for i in range(len(names))]
    assert {f"p{i:04d}" for i in acked} <= set(names)
    maps = read_maps(out / "maps.h5")
    assert set(names) <= set(maps) and len(maps) <= len(names) + 1
    for name, values in maps.items():
        assert values.shape == (96, 96) and (values == int(name[1:])).all(), name
    return names


def test_csv_header_once_across_writers_and_empty_cells_when_unknown(tmp_path: Path) -> None:
    with StreamWriter(tmp_path) as writer:
        writer.write(record("a"), np.zeros((4, 4)))
    with StreamWriter(tmp_path) as writer:
        writer.write(record("b", label=1, defect="scratch, deep"), np.ones((4, 4)))
    assert read_csv(tmp_path) == [
        list(CSV_HEADER),
        ["2024-05-01T12:00:00+02:00", "a", "0.25", "pass", "", "", "12.3"],
        ["2024-05-01T12:00:00+02:00", "b", "0.25", "pass", "1", "scratch, deep", "12.3"],
    ]


def test_heatmap_png_uses_the_display_colours_at_the_image_size(tmp_path: Path) -> None:
    anomaly_map = np.linspace(0.0, 1.0, 8 * 8, dtype=np.float32).reshape(8, 8)
    with StreamWriter(tmp_path) as writer:
        writer.write(record("a"), anomaly_map, levels=(0.2, 0.8))
        writer.write(record("b"), anomaly_map, image_size=(24, 16))
    png = np.asarray(Image.open(tmp_path / "maps" / "a.png"))
    assert (png == colorize(anomaly_map, (0.2, 0.8))).all()
    assert np.asarray(Image.open(tmp_path / "maps" / "b.png")).shape == (24, 16, 3)


def test_maps_h5_keeps_every_map_and_replaces_a_name_written_again(tmp_path: Path) -> None:
    with StreamWriter(tmp_path) as writer:
        writer.write(record("a"), np.zeros((3, 5)))
        writer.write(record("b"), np.ones((4, 2)))
    with StreamWriter(tmp_path) as writer:  # a re-run into the same folder
        writer.write(record("a"), np.full((2, 2), 7.0))
    maps = read_maps(tmp_path / "maps.h5")
    assert sorted(maps) == ["a", "b"]
    assert (maps["a"] == 7).all() and maps["a"].shape == (2, 2) and maps["a"].dtype == np.float32
    assert (maps["b"] == 1).all() and maps["b"].shape == (4, 2)
    with h5py.File(tmp_path / "maps.h5", "r") as store:  # closed cleanly: plain h5py opens it
        assert store["parts"].shape == (3,)


def test_outputs_survive_sigkill_while_writing(tmp_path: Path) -> None:
    acked = run_writer(tmp_path, kill_at=-1, acks_before_kill=4)
    names = check_after_kill(tmp_path, acked)
    # maps.h5 is written before the CSV line, so it may hold the one part the kill cut short
    committed = set(read_maps(tmp_path / "maps.h5"))
    # The next writer recovers the file (the killed one left it marked as open) and goes on.
    with StreamWriter(tmp_path) as writer:
        writer.write(record("after"), np.full((96, 96), 5.0))
    with h5py.File(tmp_path / "maps.h5", "r") as store:
        assert store.attrs["format"]
    assert set(read_maps(tmp_path / "maps.h5")) == committed | {"after"}
    assert [row[1] for row in read_csv(tmp_path)[1:]] == [*names, "after"]


def test_a_map_without_its_commit_row_is_invisible(tmp_path: Path) -> None:
    acked = run_writer(tmp_path, kill_at=3, acks_before_kill=None)
    assert acked == [0, 1, 2]
    assert check_after_kill(tmp_path, acked) == ["p0000", "p0001", "p0002"]
    assert sorted(read_maps(tmp_path / "maps.h5")) == ["p0000", "p0001", "p0002"]
    with h5py.File(tmp_path / "maps.h5", "r", libver="latest", swmr=True) as store:
        assert store["values"].shape[0] == 4 * 96 * 96  # p0003's values are there, uncommitted


def test_a_torn_last_csv_line_is_cut_off(tmp_path: Path) -> None:
    header = ",".join(CSV_HEADER) + "\n"
    (tmp_path / "stream.csv").write_text(header + "2024-05-01T12:00:00+02:00,x,0.")
    with StreamWriter(tmp_path) as writer:
        writer.write(record("a"), np.zeros((2, 2)))
    assert [row[1] for row in read_csv(tmp_path)] == ["sample", "a"]


def test_a_foreign_csv_or_a_second_writer_is_refused(tmp_path: Path) -> None:
    (tmp_path / "other").mkdir()
    (tmp_path / "other" / "stream.csv").write_text("name,score\n")
    with pytest.raises(InvalidInputError, match="stream header"):
        StreamWriter(tmp_path / "other")
    with StreamWriter(tmp_path / "out"):
        with pytest.raises(InvalidInputError, match="another stream is writing"):
            StreamWriter(tmp_path / "out")


def test_out_dir_that_cannot_be_created_names_the_folder(tmp_path: Path) -> None:
    (tmp_path / "a_file").write_text("")
    target = tmp_path / "a_file" / "stream"  # fails even for root
    with pytest.raises(InvalidInputError, match=str(target)):
        StreamWriter(target)


def test_unwritable_out_dir_names_the_folder(tmp_path: Path) -> None:
    locked = tmp_path / "locked"
    locked.mkdir()
    locked.chmod(0o500)
    try:
        if os.access(locked, os.W_OK):
            pytest.skip("running as root: permissions are not enforced")
        target = locked / "stream"
        with pytest.raises(InvalidInputError, match=str(target)):
            StreamWriter(target)
    finally:
        locked.chmod(0o700)


def test_log_skip_appends_one_flushed_line(tmp_path: Path) -> None:
    with StreamWriter(tmp_path) as writer:
        writer.log_skip("a", tmp_path / "a.png", "cannot read\nthe image")
        lines = (tmp_path / "skipped.log").read_text().splitlines()  # before close()
        writer.log_skip("b", tmp_path / "b.png", "empty")
    assert len(lines) == 1
    assert lines[0].split("\t")[1:] == ["a", str(tmp_path / "a.png"), "cannot read the image"]
    assert len((tmp_path / "skipped.log").read_text().splitlines()) == 2
