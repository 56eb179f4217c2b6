"""SIGINT and SIGTERM delivered to a real ``musc score`` process at several points of a run.

The child is ``python -c`` calling :func:`engine.cli.main` with one function wrapped so that it
stops at a chosen point (touches a marker file, then waits); the test sends the signal there.
Afterwards no staging folder may be left and ``--out`` must hold one complete run: the previous
one when the signal came before the swap, the new one when it came during it.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from engine.data.synthetic import write_synthetic_dataset
from engine.outputs.manifest import MANIFEST_NAME, is_output_folder

REPO = Path(__file__).resolve().parents[2]

CHILD = r"""
import os, sys, time
from pathlib import Path

import engine.cli as cli
from engine.outputs import export, staging
from tests.engine.fakes import PixelPatchBackbone

point, marker = os.environ["MUSC_TEST_POINT"], Path(os.environ["MUSC_TEST_MARKER"])
import engine.session.session as session_module

# the fake backbone keeps the child fast; where it pauses is what matters
session_module.create_backbone = lambda *a, **k: PixelPatchBackbone(64)


def pause():
    marker.touch()
    go = marker.with_suffix(".go")
    while not go.exists():  # a signal interrupts this (or is held and delivered later)
        time.sleep(0.02)


def after(module, name, when):
    real = getattr(module, name)
    calls = []

    def wrapped(*args, **kwargs):
        calls.append(1)
        value = real(*args, **kwargs)
        if when(len(calls), args):
            pause()
        return value

    setattr(module, name, wrapped)


if point == "extract":  # the first progress event of feature extraction
    real_run = cli.run_to_completion

    def run(steps, on_event):
        def event(e):
            on_event(e)
            if e.stage.startswith("extract"):
                pause()
        return real_run(steps, event)

    cli.run_to_completion = run
elif point == "maps":  # half-way through the heatmaps, maps.h5 still open
    after(export, "overlay", lambda n, a: n == 3)
elif point == "manifest":  # every file written, manifest not yet (signals held already)
    real_manifest = staging.write_manifest
    staging.write_manifest = lambda *a, **k: (pause(), real_manifest(*a, **k))[1]
elif point == "swap":  # between the two renames: the old set moved away, the new not yet in
    target = Path(sys.argv[sys.argv.index("--out") + 1])
    after(staging.os, "rename", lambda n, a: Path(a[0]) == target)
sys.exit(cli.main(sys.argv[1:]))
"""


@pytest.fixture(scope="module")
def line(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("line")
    return write_synthetic_dataset(root / "data", n_good=4, n_per_defect=1, size=64, seed=2,
                                   defects=("scratch", "spot"))  # fmt: skip


def _score(data: Path, out: Path, point: str, marker: Path) -> subprocess.Popen[str]:
    argv = ["score", str(data), "--out", str(out), "--backbone", "efficientnet_lite0",
            "--image-size", "64"]  # fmt: skip
    path = os.pathsep.join(p for p in (str(REPO), os.environ.get("PYTHONPATH")) if p)
    env = {**os.environ, "MUSC_TEST_POINT": point, "MUSC_TEST_MARKER": str(marker),
           "PYTHONPATH": path}  # fmt: skip
    return subprocess.Popen([sys.executable, "-c", CHILD, *argv], cwd=REPO, env=env,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)  # fmt: skip


def _wait_for(marker: Path, child: subprocess.Popen[str], seconds: float = 60.0) -> None:
    deadline = time.monotonic() + seconds
    while not marker.exists():
        if child.poll() is not None:
            pytest.fail(f"child ended before the pause: {child.communicate()[1][-2000:]}")
        if time.monotonic() > deadline:
            child.kill()
            pytest.fail("child never reached the pause")
        time.sleep(0.05)


def _tree(folder: Path) -> dict[str, bytes]:
    return {p.relative_to(folder).as_posix(): p.read_bytes() for p in sorted(folder.rglob("*"))
            if p.is_file()}  # fmt: skip


@pytest.fixture(scope="module")
def previous(line: Path) -> Path:
    """A complete earlier output (no pause: the child runs straight through)."""
    out = line.parent / "previous"
    child = _score(line, out, "none", line.parent / "unused")
    _, err = child.communicate(timeout=120)
    assert child.returncode == 0, err
    return out


def _copy(previous: Path, parent: Path) -> Path:
    return Path(shutil.copytree(previous, parent / "out"))


def _interrupt(line: Path, out: Path, point: str, sig: int) -> tuple[int, str]:
    markers = out.parent.parent / f"{out.parent.name}-markers"
    markers.mkdir(exist_ok=True)
    marker = markers / f"{point}.marker"
    child = _score(line, out, point, marker)
    _wait_for(marker, child)
    child.send_signal(sig)
    marker.with_suffix(".go").touch()  # only reached by a pause that holds the signal
    _, err = child.communicate(timeout=60)
    return child.returncode, err


@pytest.mark.parametrize(
    ("point", "sig"),
    [
        ("extract", signal.SIGINT),
        ("extract", signal.SIGTERM),
        ("maps", signal.SIGINT),
        ("maps", signal.SIGTERM),
    ],
)
def test_a_signal_before_the_swap_keeps_the_previous_output(
    line: Path, previous: Path, tmp_path: Path, point: str, sig: int
) -> None:
    out = _copy(previous, tmp_path)
    before = _tree(out)
    code, err = _interrupt(line, out, point, sig)
    assert code == 128 + sig, err
    word = "interrupted" if sig == signal.SIGINT else "terminated"
    assert f"musc: {word}; the output folder was left as it was" in err
    assert _tree(out) == before
    assert sorted(p.name for p in tmp_path.iterdir() if p.name.startswith(".")) == []


def test_a_signal_without_a_previous_output_leaves_nothing(line: Path, tmp_path: Path) -> None:
    out = tmp_path / "out"
    code, _ = _interrupt(line, out, "maps", signal.SIGTERM)
    assert code == 143 and not out.exists() and list(tmp_path.iterdir()) == []


@pytest.mark.parametrize(
    ("point", "sig"),
    [("manifest", signal.SIGTERM), ("swap", signal.SIGINT), ("swap", signal.SIGTERM)],
)
def test_a_signal_during_the_swap_is_held_until_the_new_set_is_in(
    line: Path, previous: Path, tmp_path: Path, point: str, sig: int
) -> None:
    out = _copy(previous, tmp_path)
    earlier = json.loads((out / MANIFEST_NAME).read_text())
    earlier["time"] = "2000-01-01T00:00:00Z"
    (out / MANIFEST_NAME).write_text(json.dumps(earlier))  # tells the old set from the new
    code, err = _interrupt(line, out, point, sig)
    assert code == 128 + sig, err
    assert f"as the run finished; {out} holds its complete outputs" in err
    assert is_output_folder(out)
    now = json.loads((out / MANIFEST_NAME).read_text())
    assert now["time"] > earlier["time"] and set(now["files"]) == set(earlier["files"])
    assert sorted(p.name for p in tmp_path.iterdir() if p.name.startswith(".")) == []
