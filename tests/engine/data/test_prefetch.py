"""The reader-thread prefetcher: order, bounded look-ahead, errors at their item, clean close."""

from __future__ import annotations

import threading
import time
from contextlib import closing
from pathlib import Path

import numpy as np
import pytest
import torch

from engine.config import MuscConfig
from engine.data.discover import discover_dataset
from engine.data.prefetch import prefetched
from engine.data.synthetic import write_synthetic_dataset
from engine.errors import InvalidInputError
from engine.progress import run_to_completion
from engine.session import branch_2d, branch_3d
from tests.engine.fakes import PixelPatchBackbone


def _readers() -> list[threading.Thread]:
    return [t for t in threading.enumerate() if t.name.startswith("musc-prefetch")]


@pytest.mark.parametrize("workers", [0, 1, 3])
def test_items_come_back_in_order_with_their_values(workers: int) -> None:
    def slow_square(x: int) -> int:
        time.sleep(0.002 * (5 - x % 5))  # later items finish first on the threads
        return x * x

    pairs = [(item, f.result()) for item, f in prefetched(range(12), slow_square, workers=workers)]
    assert pairs == [(x, x * x) for x in range(12)]
    assert not _readers()


def test_at_most_ahead_items_are_submitted_beyond_the_current_one() -> None:
    started: list[int] = []
    reader = prefetched(range(20), lambda x: started.append(x) or x, workers=2, ahead=3)
    with closing(reader):
        for index, (item, future) in enumerate(reader):
            assert future.result() == item == index
            assert len(started) <= index + 1 + 3


def test_an_error_is_raised_at_the_item_it_belongs_to() -> None:
    def load(x: int) -> int:
        if x == 2:
            raise InvalidInputError(f"part_{x}.png: cannot decode")
        return x

    outcomes = []
    for _item, future in prefetched(range(5), load, workers=2):
        try:
            outcomes.append(future.result())
        except InvalidInputError as error:
            outcomes.append(str(error))
    assert outcomes == [0, 1, "part_2.png: cannot decode", 3, 4]


def test_closing_early_stops_reading_and_leaves_no_threads() -> None:
    loaded: list[int] = []

    def load(x: int) -> int:
        time.sleep(0.01)
        loaded.append(x)
        return x

    reader = prefetched(range(100), load, workers=3, ahead=4)
    with closing(reader):
        for item, future in reader:
            future.result()
            if item == 2:
                break
    assert not _readers()
    assert len(loaded) <= 3 + 4 + 1  # nothing was read past the window


def _line(tmp_path: Path):
    return discover_dataset(write_synthetic_dataset(tmp_path / "line", n_good=7, n_per_defect=1))


def test_2d_features_are_the_same_with_and_without_reader_threads(tmp_path: Path) -> None:
    dataset = _line(tmp_path)
    broken = dataset.samples[3].rgb_path
    broken.write_bytes(b"not an image")
    runs = []
    for workers in (0, 3):
        skipped: list = []
        tokens = run_to_completion(
            branch_2d.extract_2d(dataset.samples, PixelPatchBackbone(), 4, skipped, None, workers)
        )
        runs.append((tokens, skipped))
    (inline, skipped_inline), (threaded, skipped_threaded) = runs
    assert [s.name for s in threaded.samples] == [s.name for s in inline.samples]
    assert threaded.image_sizes == inline.image_sizes
    for a, b in zip(inline.layers, threaded.layers, strict=True):
        assert torch.equal(a, b)
    # the unreadable part k is reported as the same error naming the same file
    assert skipped_threaded == skipped_inline
    assert [s.path for s in skipped_threaded] == [broken]
    assert str(broken) in skipped_threaded[0].reason


def test_cancelling_extraction_leaves_no_reader_threads(tmp_path: Path) -> None:
    dataset = _line(tmp_path)
    steps = branch_2d.extract_2d(dataset.samples, PixelPatchBackbone(), 2, [], None, 3)
    next(steps), next(steps)
    steps.close()  # what a cancelled run does between two progress events
    assert not _readers()


def test_3d_clouds_are_the_same_with_and_without_the_reader_thread(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    root = write_synthetic_dataset(tmp_path / "line", n_good=3, n_per_defect=1, with_xyz=True,
                                   defects=("dent",))  # fmt: skip
    dataset = discover_dataset(root)
    broken = dataset.samples[1].xyz_path
    broken.write_bytes(b"not a tiff")
    config = MuscConfig(num_groups=64)
    runs = []
    for workers in ("0", "1"):
        monkeypatch.setenv("MUSC_PREFETCH_WORKERS", workers)
        skipped: list = []
        clouds = run_to_completion(
            branch_3d.load_clouds(dataset.samples, config, torch.device("cpu"), skipped, [])
        )
        runs.append((clouds, skipped))
    (inline, skipped_inline), (threaded, skipped_threaded) = runs
    assert list(threaded) == list(inline) and len(inline) == len(dataset.samples) - 1
    for name, cloud in inline.items():
        assert torch.equal(cloud.points, threaded[name].points)
        assert np.array_equal(cloud.foreground, threaded[name].foreground)
        assert torch.equal(cloud.basis.search_idx, threaded[name].basis.search_idx)
    assert skipped_threaded == skipped_inline and [s.path for s in skipped_inline] == [broken]
    assert not _readers()
