"""The GPU check scripts, exercised on the CPU: bench/device_fidelity.py (cpu against cpu must
pass, a difference must fail), bench/device_speed.py (tiny sizes print the stage table and find
tensors off the device) and bench/device_check.sh (syntax, exit 2 without a GPU, the plan fits
8 minutes). The GPU itself is only seen on a device machine: ``bash bench/device_check.sh``.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
from dataclasses import dataclass, replace
from pathlib import Path

import numpy as np
import pytest
import torch

from bench import device_fidelity, device_speed
from bench.device_fidelity import Scored, compare, map_pearson
from engine.data.synthetic import write_synthetic_dataset

REPO = Path(__file__).resolve().parents[2]
SCRIPT = REPO / "bench" / "device_check.sh"
PLAN_LIMIT_S = 8 * 60  # the issue: the whole check in at most 8 minutes on one H200


@pytest.fixture(scope="module")
def line(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("device") / "line"
    return write_synthetic_dataset(root, n_good=4, n_per_defect=1, size=64, with_xyz=True)


def _row(output: str, first_cell: str) -> list[str]:
    rows = [line.split(" | ") for line in output.splitlines() if line.startswith(first_cell)]
    assert len(rows) == 1, output
    return rows[0]


# -- device_fidelity ---------------------------------------------------------------------------


def test_fidelity_cpu_against_cpu_passes(line: Path, capsys: pytest.CaptureFixture) -> None:
    argv = ["--devices", "cpu", "cpu", "--limit", "6", "--modalities", "2d", "--data", str(line)]
    assert device_fidelity.main(argv) == 0
    out = capsys.readouterr().out
    assert "device_fidelity: 6 parts" in out
    cells = _row(out, "2d | ")
    assert cells[1] == "1.000000 / 1.000000 (1.000000)"  # the same maps, bit for bit
    image_auroc = cells[2].split(" / ")
    assert image_auroc[0] == image_auroc[1] and image_auroc[0] != "n/a"
    assert cells[4].startswith("0.000 (")
    assert cells[5:] == ["cpu/cpu", "PASS"]
    assert "extract 2D | " in out and "run() 2d (stages not cached yet) | " in out
    assert out.rstrip().endswith("device_fidelity: PASS")


def test_fidelity_exits_1_when_the_checked_device_differs(
    line: Path, capsys: pytest.CaptureFixture, monkeypatch: pytest.MonkeyPatch
) -> None:
    ref = _scored(np.random.default_rng(0).random((6, 8, 8)))
    off = replace(ref, maps=ref.maps[::-1].copy())  # each map paired with another part's
    runs = iter([({"2d": ref}, {"extract 2D": 1.0}), ({"2d": off}, {"extract 2D": 0.5})])
    monkeypatch.setattr(device_fidelity, "score_device", lambda *args: next(runs))
    argv = ["--devices", "cpu", "cpu", "--modalities", "2d", "--data", str(line)]
    assert device_fidelity.main(argv) == 1
    out = capsys.readouterr().out
    assert _row(out, "2d | ")[-1] == "FAIL"
    assert "FAIL 2d: map Pearson" in out
    assert out.rstrip().endswith("device_fidelity: FAIL")


def test_fidelity_reports_missing_data(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    assert device_fidelity.main(["--data", str(tmp_path / "absent")]) == 2
    assert "not found" in capsys.readouterr().out


@pytest.mark.parametrize("modality", ["2d", "3d", "2d+3d"])
def test_fidelity_config_asks_for_the_device_and_random_point_mae(modality: str) -> None:
    config = device_fidelity.config_for(modality, "cuda", remove_background=False)
    assert (config.device, config.modality, config.remove_background) == ("cuda", modality, False)
    assert (config.backbone, config.weights) == ("efficientnet_lite0", None)  # offline package
    assert (config.backbone_3d, config.weights_3d) == ("point_mae", "random")


def test_speed_config_asks_for_the_device_and_the_vit_b8_sizes() -> None:
    args = device_speed.parse_args(["--no-background-removal"])
    assert (args.device, args.n) == ("cuda", 150)
    config = device_speed.config_for("2d+3d", args)
    assert (config.device, config.modality, config.remove_background) == ("cuda", "2d+3d", False)
    assert (config.backbone, config.weights, config.image_size) == ("dino_vitb8", "random", 224)
    assert (config.backbone_3d, config.weights_3d) == ("point_mae", "random")
    assert (config.num_groups, config.group_size, config.k_iter) == (1024, 128, 80)  # the paper's
    small = device_speed.config_for("2d", device_speed.parse_args(["--group-size", "16"]))
    assert small.k_iter == 10  # the paper's ratio 80/128 kept


def _scored(maps: np.ndarray, device: str = "cpu", **metrics: float) -> Scored:
    names = [f"part{i}" for i in range(len(maps))]
    metrics = {"image_auroc": 0.8, "pixel_auroc": 0.9, **metrics}
    return Scored(names, maps.astype(np.float32), metrics, {device}, 1.0)


def test_compare_passes_equal_runs_on_the_asked_devices() -> None:
    maps = np.random.default_rng(1).random((4, 16, 16))
    verdict = compare("3d", _scored(maps), _scored(maps + 1e-7, "cuda"), ["cpu", "cuda:0"])
    assert verdict.passed, verdict.reasons
    assert verdict.pearson.min() > 0.999999 and verdict.deltas == {
        "image_auroc": 0.0,
        "pixel_auroc": 0.0,
    }


@pytest.mark.parametrize("noise, passes", [(0.002, True), (0.05, False)])
def test_compare_map_pearson_threshold(noise: float, passes: bool) -> None:
    rng = np.random.default_rng(2)
    maps = rng.random((4, 32, 32))
    noisy = maps.copy()
    noisy[2] += noise * maps[2].std() * rng.standard_normal((32, 32))  # r ~ 1 - noise^2 / 2
    verdict = compare("2d", _scored(maps), _scored(noisy), ["cpu", "cpu"])
    assert verdict.passed is passes, verdict.reasons
    assert np.argmin(verdict.pearson) == 2
    assert verdict.pearson.min() == pytest.approx(1 - noise**2 / 2, abs=1e-3)


@pytest.mark.parametrize("delta, passes", [(0.004, True), (0.006, False)])
def test_compare_metric_tolerance_in_points(delta: float, passes: bool) -> None:
    maps = np.random.default_rng(3).random((4, 8, 8))
    got = _scored(maps, pixel_auroc=0.9 + delta)
    verdict = compare("2d+3d", _scored(maps), got, ["cpu", "cpu"])
    assert verdict.passed is passes, verdict.reasons
    assert verdict.deltas["pixel_auroc"] == pytest.approx(100 * delta)


def test_compare_fails_runs_on_another_device_or_with_other_metrics() -> None:
    maps = np.random.default_rng(4).random((4, 8, 8))
    on_cpu = compare("2d", _scored(maps), _scored(maps), ["cpu", "cuda"])
    assert not on_cpu.passed and "not cuda" in on_cpu.reasons[0]
    ref_moved = compare("2d", _scored(maps, "cuda"), _scored(maps, "cuda"), ["cpu", "cuda"])
    assert not ref_moved.passed and "not cpu" in ref_moved.reasons[0]
    fewer = replace(_scored(maps), metrics={"image_auroc": 0.8})
    assert "pixel_auroc" in compare("2d", _scored(maps), fewer, ["cpu", "cpu"]).reasons[0]
    other_parts = replace(_scored(maps), names=["a", "b", "c", "d"])
    assert not compare("2d", _scored(maps), other_parts, ["cpu", "cpu"]).passed


def test_map_pearson_of_constant_and_nan_maps() -> None:
    zero, ones = np.zeros((1, 4, 4)), np.ones((1, 4, 4))
    assert map_pearson(zero, zero)[0] == 1.0
    assert map_pearson(zero, ones)[0] == 0.0
    ramp = np.arange(16.0).reshape(1, 4, 4)
    assert map_pearson(ramp, 3 * ramp + 1)[0] == pytest.approx(1.0)
    assert map_pearson(ramp, -ramp)[0] == pytest.approx(-1.0)
    broken = ramp.copy()
    broken[0, 0, 0] = np.nan  # NaN on one device must fail, never count as equal
    verdict = compare("2d", _scored(ramp), _scored(broken), ["cpu", "cpu"])
    assert not verdict.passed


# -- device_speed ------------------------------------------------------------------------------


@pytest.mark.slow  # four sessions and three networks built: 5-7 s on 2 cores, more when busy
def test_speed_on_cpu_prints_the_stage_table(capsys: pytest.CaptureFixture) -> None:
    # ViT-S/8: building the default ViT-B/8 alone takes seconds on a CPU, twice
    argv = [
        "--device",
        "cpu",
        "--n",
        "6",
        "--warmup",
        "3",
        "--size",
        "64",
        "--image-size",
        "64",
        "--num-groups",
        "32",
        "--group-size",
        "16",
        "--eval-size",
        "32",
        "--backbone",
        "dino_vits8",
    ]
    assert device_speed.main(argv) == 0
    out = capsys.readouterr().out
    assert "stage | 2d (N=6) | 2d+3d (N=6)" in out
    cells = _row(out, "extract 3D | ")
    assert cells[1] == "-" and float(cells[2]) > 0  # 3D stages in the 2D+3D column only
    assert "  part of: 3D backbone | - | " in out
    assert re.search(r"total 2d: [\d.]+ ms/part \([\d.]+ s for 6 parts\), target not checked", out)
    assert "total 2d+3d: " in out
    assert re.search(r"^  group 3D: [1-9]\d* tensors, all on cpu$", out, re.M)
    assert "3D backbone: weights on cpu" in out and "OFF DEVICE" not in out


@dataclass
class _Groups:
    centers: torch.Tensor
    groups: torch.Tensor
    note: str = "not a tensor"


def test_off_device_names_every_stray_tensor() -> None:
    stages = {
        "load 3D": {"a": _Groups(torch.zeros(2), torch.zeros(2, device="meta"))},
        "extract 3D": [torch.zeros(1), (torch.zeros(1), torch.zeros(1, device="meta"))],
        "extract 2D": [torch.zeros(1)],
    }
    assert device_speed.off_device(stages, "cpu") == {
        "load 3D": ["['a'].groups on meta"],
        "extract 3D": ["[1][1] on meta"],
    }
    assert list(device_speed.off_device(stages, "meta")) == ["load 3D", "extract 3D", "extract 2D"]
    # the device type counts, not its index: "cuda:0" holds what "cuda" holds
    assert device_speed.off_device(stages, "cpu:0") == device_speed.off_device(stages, "cpu")


def _speed_row(total: float, devices: list[str] | None = None) -> dict:
    stages = {"extract 2D": total / 2, "mutual scoring 2D": total / 2}
    return {
        "n": 150,
        "stages": stages,
        "total": total,
        "warnings": [],
        "devices": devices or ["  extract 2D: 3 tensors, all on cuda"],
    }


@pytest.mark.parametrize(
    "modality, seconds, status",
    [("2d", 2.2, 0), ("2d", 2.3, 3), ("2d+3d", 7.4, 0), ("2d+3d", 7.6, 3)],
)
def test_speed_targets_per_part_on_cuda(
    modality: str, seconds: float, status: int, capsys: pytest.CaptureFixture
) -> None:
    # 150 parts: 2.2 s = 14.7 ms/part, 2.3 s = 15.3; 7.4 s = 49.3 ms/part, 7.6 s = 50.7
    assert device_speed.print_report({modality: _speed_row(seconds)}, "cuda") == status
    out = capsys.readouterr().out
    assert ("MISSED" in out) is bool(status) and ("MET" in out) is not bool(status)
    assert _row(out, "extract 2D | ")[1] == f"{1e3 * seconds / 2 / 150:.2f}"


def test_speed_off_device_tensor_is_exit_1(capsys: pytest.CaptureFixture) -> None:
    row = _speed_row(1.0, ["OFF DEVICE group 3D: 1 of 5 tensors: ['x'].groups on cpu"])
    assert device_speed.print_report({"2d+3d": row}, "cuda") == 1
    assert "  OFF DEVICE group 3D" in capsys.readouterr().out


# -- device_check.sh ---------------------------------------------------------------------------


def _check(*args: str, out: Path | None = None) -> subprocess.CompletedProcess:
    env = {**os.environ, "PYTHON": sys.executable, "CUDA_VISIBLE_DEVICES": ""}  # never a GPU
    env["FIDELITY_DATA"] = "synthetic"  # step 2 is planned whether ../shared/data is here or not
    env.pop("OUT", None)
    if out is not None:
        env["OUT"] = str(out)
    return subprocess.run(
        ["bash", str(SCRIPT), *args], env=env, capture_output=True, text=True, timeout=120, cwd=REPO
    )


def test_device_check_is_valid_bash() -> None:
    subprocess.run(["bash", "-n", str(SCRIPT)], check=True)


def test_device_check_without_a_gpu_exits_2_and_logs(tmp_path: Path) -> None:
    done = _check(out=tmp_path)
    assert done.returncode == 2, done.stdout + done.stderr
    assert "torch sees no CUDA GPU" in done.stdout  # through tee, into the log as well
    assert "torch sees no CUDA GPU" in (tmp_path / "device_check.log").read_text()
    assert "== 1a" not in done.stdout


def test_device_check_plan_runs_every_step_within_8_minutes() -> None:
    done = _check("--dry-run")
    assert done.returncode == 0, done.stdout + done.stderr
    steps = re.findall(r"^== (\S+) .*\(at most (\d+) s\): (.*)$", done.stdout, re.M)
    assert [s[0] for s in steps] == ["1a", "1b", "2", "3"]
    commands = {name: command for name, _, command in steps}
    assert "-m cuda tests/engine/test_cuda.py" in commands["1a"]
    assert "tests/engine -m not\\ cuda\\ and\\ not\\ realdata\\ and\\ not\\ slow" in commands["1b"]
    assert "bench/device_fidelity.py --data" in commands["2"]
    assert "bench/device_speed.py --device cuda --n 150" in commands["3"]
    for command in commands.values():  # every script and test file named exists
        for word in command.split():
            if word.endswith((".py", ".sh")):
                assert (REPO / word).is_file(), word
    total = int(re.search(r"= (\d+) s at most\)", done.stdout).group(1))
    assert sum(int(s[1]) for s in steps) < total <= PLAN_LIMIT_S
