"""``musc recipe create`` and ``musc watch`` end to end on the synthetic line.

The real offline backbone (EfficientNet-Lite0 at 64 px) runs, so the recipe's weights identity
is the real one; a run takes a few seconds.
"""

from __future__ import annotations

import csv
import json
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import h5py
import numpy as np
import pytest

from engine.cli import main
from engine.data.discover import discover_dataset
from engine.data.synthetic import write_synthetic_dataset

pytestmark = pytest.mark.slow
SCORE = ["--backbone", "efficientnet_lite0", "--image-size", "64"]


@pytest.fixture(scope="module")
def recipe(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("recipe")
    batch = write_synthetic_dataset(root / "batch", n_good=10, n_per_defect=1, size=96, seed=11)
    path = root / "line.musc-recipe.h5"
    assert main(["recipe", "create", str(batch), "--out", str(path), "--bank", "6", *SCORE]) == 0
    return path


@pytest.fixture(scope="module")
def line(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return write_synthetic_dataset(tmp_path_factory.mktemp("line") / "line", n_good=6,
                                   n_per_defect=2, size=96, seed=12)  # fmt: skip


def _rows(out: Path) -> list[dict[str, str]]:
    with open(out / "stream.csv", newline="") as handle:
        return list(csv.DictReader(handle))


def test_the_recipe_holds_config_cuts_and_bank(recipe: Path) -> None:
    with h5py.File(recipe) as handle:
        assert handle.attrs["format"] == "musc-recipe"
        assert json.loads(handle.attrs["config"])["backbone"] == "efficientnet_lite0"
        assert json.loads(handle.attrs["image_cut"])["source"] == "auto"
        assert len(handle["bank"]) == 6
        assert "layers_2d" in handle["bank/0"] and "cumsum_2d" in handle["bank/0"]


def test_watch_once_ranks_defective_parts_above_normal_ones(recipe, line, tmp_path, capsys):
    out = tmp_path / "out"
    assert main(["watch", str(line), "--recipe", str(recipe), "--out", str(out), "--once"]) == 0
    rows = _rows(out)
    assert list(rows[0]) == ["time", "sample", "score", "verdict", "label", "defect_type",
                             "latency_ms"]  # fmt: skip
    batch_names = [s.name for s in discover_dataset(line).samples]
    assert sorted(r["sample"] for r in rows) == sorted(batch_names)
    scores = {r["sample"]: float(r["score"]) for r in rows}
    good = [scores[n] for n in scores if n.startswith("good")]
    bad = [scores[n] for n in scores if not n.startswith("good")]
    # the synthetic defects are obvious: every defective part outscores the median good one
    assert min(bad) > np.median(good)
    assert {r["verdict"] for r in rows} <= {"pass", "fail"}
    assert all(r["label"] in {"0", "1"} and float(r["latency_ms"]) >= 0 for r in rows)
    assert (out / "maps" / f"{rows[0]['sample']}.png").is_file()
    assert "parts scored" in capsys.readouterr().err


def test_a_corrupt_part_is_skipped_and_the_stream_goes_on(recipe, line, tmp_path) -> None:
    folder = tmp_path / "line"
    shutil.copytree(line, folder)
    broken = folder / "test" / "good" / "002.png"
    broken.write_bytes(b"\x89PNG not really")
    out = tmp_path / "out"
    assert main(["watch", str(folder), "--recipe", str(recipe), "--out", str(out), "--once"]) == 0
    names = [r["sample"] for r in _rows(out)]
    assert "good_002" not in names and len(names) == len(discover_dataset(line).samples) - 1
    assert "good/002.png" in (out / "skipped.log").read_text()


def test_a_recipe_made_with_other_weights_is_refused(recipe, line, tmp_path, capsys) -> None:
    other = tmp_path / "other.h5"
    shutil.copy(recipe, other)
    with h5py.File(other, "a") as handle:
        info = json.loads(handle.attrs["backbone"])
        info["weights_source"] = "file /elsewhere/other.pth"
        handle.attrs["backbone"] = json.dumps(info)
    code = main(["watch", str(line), "--recipe", str(other), "--out", str(tmp_path / "o"),
                 "--once"])  # fmt: skip
    assert code == 2
    assert "other networks or weights" in capsys.readouterr().err


def test_ctrl_c_stops_watching_cleanly(recipe, line, tmp_path) -> None:
    folder, out = tmp_path / "incoming", tmp_path / "out"
    folder.mkdir()
    command = [sys.executable, "-m", "engine.cli", "watch", str(folder), "--recipe", str(recipe),
               "--out", str(out), "--settle", "0.2"]  # fmt: skip
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    process = subprocess.Popen(command, stderr=subprocess.PIPE, text=True, env=env,
                               cwd=Path(__file__).resolve().parents[3])  # fmt: skip
    try:
        for line_text in process.stderr:
            if "watching" in line_text:
                break
        shutil.copytree(line / "test" / "good", folder / "good")  # parts land while watching
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline and len(_rows_if_any(out)) < 2:
            time.sleep(0.2)
        process.send_signal(signal.SIGINT)
        _, err = process.communicate(timeout=60)
    finally:
        process.kill()
    assert process.returncode == 0, err
    rows = _rows_if_any(out)
    assert len(rows) >= 2 and all(r["verdict"] in {"pass", "fail"} for r in rows)
    assert (out / "stream.csv").read_bytes().endswith(b"\n")  # no half line


def _rows_if_any(out: Path) -> list[dict[str, str]]:
    return _rows(out) if (out / "stream.csv").is_file() else []


def test_the_default_rolling_share_fills_the_bank_to_fifty() -> None:
    from engine.cli_stream import default_rolling

    assert default_rolling("both", 12, None) == 38
    assert default_rolling("rolling", 12, None) == 50
    assert default_rolling("both", 60, None) == 0
    assert default_rolling("both", 12, 5) == 5
