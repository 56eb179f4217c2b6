"""PartWatcher: complete parts only, each once, in arrival order, named as batch discovery does.

Timing margins: writers pause at most a third of the settle time, so a loaded machine that
oversleeps by up to ~0.2 s still writes before the settle time is up.
"""

from __future__ import annotations

import io
import os
import threading
import time
from pathlib import Path

import numpy as np
import pytest
import tifffile
from PIL import Image

from engine.data.discover import discover_dataset
from engine.data.synthetic import write_synthetic_dataset
from engine.stream import watch
from engine.stream.watch import PartWatcher, arrival_order, index_parts

SETTLE = 0.2


def png_bytes(seed: int, size: int = 32) -> bytes:
    pixels = np.random.default_rng(seed).integers(0, 256, (size, size, 3), dtype=np.uint8)
    buffer = io.BytesIO()
    Image.fromarray(pixels).save(buffer, format="PNG")
    return buffer.getvalue()


def write_png(path: Path, seed: int = 0) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(png_bytes(seed))
    return path


def write_xyz(path: Path, seed: int = 0) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    xyz = np.random.default_rng(seed).random((32, 32, 3)).astype(np.float32)
    tifffile.imwrite(path, xyz, photometric="rgb")
    return path


def names(parts: list[watch.ArrivedPart]) -> list[str]:
    return [part.sample.name for part in parts]


def collect(watcher: PartWatcher, seconds: float) -> list[tuple[str, int]]:
    """(name, size of its RGB file at the moment it was returned) of every part for a while."""
    seen = []
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        for part in watcher.poll(0.05):
            seen.append((part.sample.name, part.sample.rgb_path.stat().st_size))
    return seen


@pytest.mark.parametrize("pieces", [2, 6])
def test_file_written_in_pieces_is_returned_once_and_whole(tmp_path: Path, pieces: int) -> None:
    data = png_bytes(1, size=96)  # the first piece already holds a readable PNG header
    target = tmp_path / "part.png"
    pause = SETTLE / 3  # shorter than the settle time; 6 pieces take longer than it in all

    def write_in_pieces() -> None:
        with open(target, "wb") as file:
            for chunk in np.array_split(np.frombuffer(data, dtype=np.uint8), pieces):
                file.write(chunk.tobytes())
                file.flush()
                time.sleep(pause)

    with PartWatcher(tmp_path, needs_xyz=False, settle_seconds=SETTLE) as watcher:
        writer = threading.Thread(target=write_in_pieces)
        writer.start()
        seen = collect(watcher, pause * pieces + 3 * SETTLE)
        writer.join()
    assert seen == [("part", len(data))]


def test_part_is_returned_only_once_its_xyz_lands(tmp_path: Path) -> None:
    rgb_dir, xyz_dir = (tmp_path / "test" / "good" / kind for kind in ("rgb", "xyz"))
    xyz_dir.mkdir(parents=True)
    with PartWatcher(tmp_path, needs_xyz=True, settle_seconds=SETTLE) as watcher:
        write_png(rgb_dir / "000.png")
        assert watcher.poll(3 * SETTLE) == []
        assert PartWatcher(tmp_path, needs_xyz=True, settle_seconds=0).existing() == []
        assert names(PartWatcher(tmp_path, needs_xyz=False, settle_seconds=0).existing()) == [
            "good_000"
        ]
        xyz = write_xyz(xyz_dir / "000.tiff")
        parts = watcher.poll(5.0)
    assert names(parts) == ["good_000"]
    assert parts[0].sample.xyz_path == xyz


def test_arrival_order_is_newest_file_time_then_name(tmp_path: Path) -> None:
    times = {"a.png": 2000, "b.png": 2000, "c.png": 1000, "d.png": 500, "d.tiff": 3000}
    for name, seconds in times.items():
        path = write_xyz(tmp_path / name) if name.endswith(".tiff") else write_png(tmp_path / name)
        os.utime(path, (seconds, seconds))
    samples, _ = index_parts(tmp_path)
    expected = ["c", "a", "b", "d"]  # d's XYZ map is its newest file
    assert [s.name for s in arrival_order(samples)] == expected
    assert [s.name for s in arrival_order(samples[::-1])] == expected
    assert names(PartWatcher(tmp_path, needs_xyz=False, settle_seconds=0).existing()) == expected


def _mvtec3d(folder: Path) -> Path:
    write_synthetic_dataset(folder, n_good=2, n_per_defect=1, size=64, with_xyz=True)
    return folder


def _flat(folder: Path) -> Path:
    for seed, name in enumerate(["a b.png", "a+b.png", "a_b.png", "x.png", "x.tiff"]):
        (write_xyz if name.endswith(".tiff") else write_png)(folder / name, seed)
    return folder


@pytest.mark.parametrize("make", [_mvtec3d, _flat], ids=["mvtec3d", "flat"])
def test_parts_are_named_as_batch_discovery_names_them(tmp_path: Path, make) -> None:
    folder = make(tmp_path / "cat")
    batch = discover_dataset(folder).samples
    assert index_parts(folder)[0] == batch
    arrived = PartWatcher(folder, needs_xyz=False, settle_seconds=0).existing()
    assert sorted((p.sample for p in arrived), key=lambda s: s.name) == sorted(
        batch, key=lambda s: s.name
    )


def test_existing_tolerates_zero_and_one_part(tmp_path: Path) -> None:
    assert PartWatcher(tmp_path, needs_xyz=False, settle_seconds=SETTLE).existing() == []
    write_png(tmp_path / "only.png")
    assert names(PartWatcher(tmp_path, needs_xyz=False, settle_seconds=SETTLE).existing()) == [
        "only"
    ]


def test_each_part_is_returned_exactly_once(tmp_path: Path) -> None:
    old = write_png(tmp_path / "old.png")
    with PartWatcher(tmp_path, needs_xyz=False, settle_seconds=SETTLE) as watcher:
        new = write_png(tmp_path / "new.png", seed=1)
        assert names(watcher.poll(5.0)) == ["new"]  # old.png was there before start()
        new.write_bytes(png_bytes(2, size=48))  # rewritten after it was handed out
        old.write_bytes(png_bytes(3, size=48))  # and the one from before start() too
        assert watcher.poll(3 * SETTLE) == []
        write_png(tmp_path / "next.png", seed=4)
        assert names(watcher.poll(5.0)) == ["next"]
        assert watcher.poll(2 * SETTLE) == []


def test_existing_parts_are_not_returned_again_by_poll(tmp_path: Path) -> None:
    write_png(tmp_path / "a.png")
    watcher = PartWatcher(tmp_path, needs_xyz=False, settle_seconds=SETTLE)
    assert names(watcher.existing()) == ["a"]
    assert watcher.existing() == []
    write_png(tmp_path / "a.png", seed=5)  # touched after existing(): still not again
    with watcher:
        assert watcher.poll(3 * SETTLE) == []


def test_idle_watcher_does_not_index_again(tmp_path: Path, monkeypatch) -> None:
    """Indexing reads every file; the events that reading raises, and what the run writes to
    its own output folder, must not make the watcher index again and again."""
    out = tmp_path / "out"
    out.mkdir()
    calls = []
    real = watch.index_parts
    monkeypatch.setattr(watch, "index_parts", lambda *a: calls.append(1) or real(*a))
    with PartWatcher(tmp_path, needs_xyz=False, settle_seconds=SETTLE, exclude=[out]) as w:
        write_png(tmp_path / "a.png")
        assert names(w.poll(5.0)) == ["a"]
        calls.clear()
        for i in range(3):
            write_png(out / f"map_{i}.png", seed=i)
        assert w.poll(3 * SETTLE) == []
    assert calls == []


def test_a_file_vanishing_mid_index_only_costs_a_round(tmp_path: Path, monkeypatch) -> None:
    real = watch.index_parts
    failures = [FileNotFoundError(2, "vanished")] * 2

    def flaky(*args):
        if failures:
            raise failures.pop()
        return real(*args)

    with PartWatcher(tmp_path, needs_xyz=False, settle_seconds=SETTLE) as watcher:
        monkeypatch.setattr(watch, "index_parts", flaky)
        write_png(tmp_path / "a.png")
        assert names(watcher.poll(5.0)) == ["a"]
    assert failures == []
