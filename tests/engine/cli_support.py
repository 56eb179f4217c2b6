"""Fixtures and input builders shared by test_cli_outputs.py and test_cli_categories.py.

Most runs use the tiny fake backbone (``fast``) since they test what lands on disk, not the
scores; the out-inside-input case runs the real offline one.
"""

from __future__ import annotations

import csv
import os
from collections.abc import Callable, Iterator
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from engine.cli import main
from engine.data.synthetic import write_synthetic_dataset
from tests.engine.fakes import PixelPatchBackbone

Run = Callable[..., tuple[int, str]]


@pytest.fixture
def fast(monkeypatch: pytest.MonkeyPatch) -> None:
    """Every 2D backbone is the millisecond fake (the CLI still names efficientnet_lite0)."""
    monkeypatch.setattr(
        "engine.session.session.create_backbone", lambda *_a, **_k: PixelPatchBackbone(64)
    )


@pytest.fixture
def score(capsys: pytest.CaptureFixture[str]) -> Run:
    def run(data: Path, out: Path, *extra: str) -> tuple[int, str]:
        argv = ["score", str(data), "--out", str(out), "--backbone", "efficientnet_lite0",
                "--image-size", "64", *extra]  # fmt: skip
        code = main(argv)
        return code, capsys.readouterr().err

    return run


@pytest.fixture
def umask_022() -> Iterator[None]:
    previous = os.umask(0o022)
    yield
    os.umask(previous)


def make_line(folder: Path, n_good: int = 4) -> Path:
    return write_synthetic_dataset(folder, n_good=n_good, n_per_defect=1, size=64, seed=5,
                                   defects=("scratch", "spot"))  # fmt: skip


def file_tree(folder: Path) -> dict[str, bytes]:
    """Every file under ``folder`` (hidden ones too) with its bytes."""
    return {p.relative_to(folder).as_posix(): p.read_bytes() for p in sorted(folder.rglob("*"))
            if p.is_file()}  # fmt: skip


def staging_leftovers(parent: Path) -> list[str]:
    return sorted(p.name for p in parent.iterdir() if ".musc-" in p.name or ".new-" in p.name)


def read_rows(out: Path) -> list[dict[str, str]]:
    with open(out / "scores.csv", newline="") as handle:
        return list(csv.DictReader(handle))


def single_sample_category(folder: Path) -> Path:
    (folder / "test" / "good").mkdir(parents=True)
    Image.fromarray(np.full((64, 64, 3), 128, np.uint8)).save(folder / "test" / "good" / "0.png")
    return folder


def truncate_body(path: Path) -> None:
    """Keep the header, drop the pixels: discovery accepts it, decoding fails."""
    path.write_bytes(path.read_bytes()[:60])
