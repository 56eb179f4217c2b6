"""Mutual scoring on a local Ray equals the single-process run; retries, cancel, the CLI."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import numpy as np
import pytest
import torch

from engine.cli import main
from engine.cluster import INSTALL_HINT
from engine.config import MuscConfig
from engine.data.discover import discover_dataset
from engine.data.synthetic import write_synthetic_dataset
from engine.errors import CancelledError
from engine.method import mutual_scoring
from engine.progress import CancelToken, run_to_completion
from engine.session.session import InspectionSession
from engine.session.stages import Stage
from tests.engine.fakes import GroupShapeBackbone, PixelPatchBackbone

REPO = Path(__file__).resolve().parents[3]

# 4 MiB blocks of 256 patches: tiles of 4 samples, so a dozen parts make several tile pairs
CONFIG = MuscConfig(chunk_mib=4, num_groups=64)


@pytest.fixture(scope="module")
def line(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("cluster") / "line"
    return write_synthetic_dataset(root, n_good=6, n_per_defect=1, size=128, seed=3,
                                   with_xyz=True)  # fmt: skip


def _score(line: Path, config: MuscConfig, distances=None):
    session = InspectionSession(
        discover_dataset(line), config, backbone=PixelPatchBackbone(image_size=128),
        backbone_3d=GroupShapeBackbone(), distances=distances,
    )  # fmt: skip
    return session, run_to_completion(session.run())


def _assert_same(local, cluster) -> None:
    pearson = np.corrcoef(local.maps.ravel(), cluster.maps.ravel())[0, 1]
    assert pearson >= 0.9999
    assert np.array_equal(np.argsort(local.image_scores), np.argsort(cluster.image_scores))
    np.testing.assert_allclose(cluster.image_scores, local.image_scores, rtol=1e-5, atol=1e-6)


def _blocks(features: torch.Tensor, chunk_mib: int) -> int:
    n, patches, _ = features.shape
    return len(mutual_scoring.tile_pairs(n, mutual_scoring.tile_size(patches, chunk_mib, n)))


@pytest.mark.parametrize(
    "config",
    [
        CONFIG.replace(modality="2d"),
        CONFIG.replace(modality="2d", subsets=2),
        CONFIG.replace(modality="2d+3d", cae=True),
        CONFIG.replace(modality="2d+3d", cae=False),
    ],
    ids=["2d", "2d-subsets", "2d+3d-cae", "2d+3d"],
)
def test_ray_scoring_equals_the_local_run(ray_local, line: Path, config: MuscConfig) -> None:
    from engine.cluster.ray_backend import RayDistances

    session, local = _score(line, config)
    # the same features scored again, on Ray: a session resumed without its scoring stages
    snapshot = session.snapshot()
    local_20 = session.rescore(x_percent=20)
    for stage in (Stage.SCORE_2D, Stage.SCORE_3D, Stage.SCORE_CAE):
        snapshot.stages.pop(stage, None)
    session = InspectionSession.from_snapshot(discover_dataset(line), snapshot)
    session.distances = RayDistances()
    assert session.pending() and all("scoring" in stage for stage in session.pending())
    cluster = run_to_completion(session.run())
    _assert_same(local, cluster)
    # re-scoring stays local and cheap, and agrees too
    _assert_same(local_20, session.rescore(x_percent=20))


def _dies_once(marker: str):
    """A block function whose first call kills its worker process (the task is retried)."""

    def compute(block_a, block_b, same, unit_norm):
        if not os.path.exists(marker):
            Path(marker).touch()
            os._exit(1)  # the worker process is lost mid-run, as on a crashed node
        return mutual_scoring.block_nearest(block_a, block_b, same=same, unit_norm=unit_norm)

    return compute


@pytest.mark.parametrize("unit_norm", [True, False])
def test_a_lost_worker_is_retried_and_the_table_is_unchanged(
    ray_local, tmp_path: Path, unit_norm: bool
) -> None:
    from engine.cluster.ray_backend import RayDistances

    features = torch.nn.functional.normalize(torch.randn(12, 256, 8), dim=-1)
    marker = tmp_path / "died"
    backend = RayDistances(compute=_dies_once(str(marker)), max_retries=2)
    table = run_to_completion(backend.distances(features, 4, "s", unit_norm=unit_norm))
    assert marker.exists()  # a worker really died
    local = run_to_completion(
        mutual_scoring.patch_to_sample_distances(features, 4, unit_norm=unit_norm)
    )
    assert torch.equal(table, local)


def _counts_calls(folder: str):
    def compute(block_a, block_b, same, unit_norm):
        Path(folder, f"{os.getpid()}-{id(block_a)}-{np.random.rand()}").touch()
        return mutual_scoring.block_nearest(block_a, block_b, same=same, unit_norm=unit_norm)

    return compute


def test_cancel_stops_the_remaining_blocks(ray_local, tmp_path: Path) -> None:
    from engine.cluster.ray_backend import RayDistances

    features = torch.nn.functional.normalize(torch.randn(12, 256, 8), dim=-1)
    cancel = CancelToken()
    backend = RayDistances(compute=_counts_calls(str(tmp_path)), max_in_flight=1)
    events = []

    def on_event(event) -> None:
        events.append(event)
        cancel.cancel()

    steps = backend.distances(features, 4, "mutual scoring 2D", unit_norm=True, cancel=cancel)
    with pytest.raises(CancelledError):
        run_to_completion(steps, on_event)
    assert [(e.done, e.total) for e in events] == [(1, _blocks(features, 4))]
    assert _blocks(features, 4) == 6  # tiles of 4 of the 12 samples
    assert len(list(tmp_path.iterdir())) == 1  # no block after the cancel was computed


def test_the_cli_scores_on_a_local_ray(ray_local, line: Path, tmp_path: Path, capsys) -> None:
    common = ["--modality", "2d", "--backbone", "efficientnet_lite0", "--image-size", "64"]
    runs = {}
    for name, extra in (("local", []), ("ray", ["--cluster", "ray"])):
        assert main(["score", str(line), "--out", str(tmp_path / name), *common, *extra]) == 0
        rows = (tmp_path / name / "scores.csv").read_text().splitlines()[1:]
        runs[name] = [row.split(",")[1] for row in rows]  # the parts, best rank first
    assert runs["ray"] == runs["local"] and len(runs["ray"]) == 9


def _alive(pids: list[int]) -> list[int]:
    import psutil  # a dependency of Ray

    def running(pid: int) -> bool:
        try:
            return psutil.Process(pid).status() != psutil.STATUS_ZOMBIE
        except psutil.NoSuchProcess:
            return False

    return [pid for pid in pids if running(pid)]


def test_sigterm_stops_a_cluster_run_and_its_ray(line: Path, tmp_path: Path) -> None:
    import psutil

    out = tmp_path / "out"
    command = [sys.executable, "-m", "engine.cli", "score", str(line), "--out", str(out),
               "--modality", "2d", "--backbone", "efficientnet_lite0", "--image-size", "64",
               "--cluster", "ray"]  # fmt: skip
    child = subprocess.Popen(command, cwd=REPO, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
                             text=True, start_new_session=True)  # fmt: skip
    lines, extracting = [], threading.Event()

    def read() -> None:
        for text in child.stderr:
            lines.append(text)
            if text.startswith("musc: extract 2D"):  # the first chunk came back from an actor
                extracting.set()

    reader = threading.Thread(target=read, daemon=True)
    reader.start()
    ray_processes: list[int] = []
    try:
        assert extracting.wait(timeout=180), "".join(lines)
        ray_processes = [p.pid for p in psutil.Process(child.pid).children(recursive=True)]
        child.send_signal(signal.SIGTERM)
        child.wait(timeout=60)
        reader.join(timeout=10)
        deadline = time.monotonic() + 20
        while _alive(ray_processes) and time.monotonic() < deadline:
            time.sleep(0.2)
        left = _alive(ray_processes)
    finally:
        if child.poll() is None:
            child.kill()
        for pid in _alive(ray_processes):  # only the run's own processes, by id
            os.kill(pid, signal.SIGKILL)
    err = "".join(lines)
    # exit status and words of a SIGTERM (ray.init's own handler would exit with 15)
    assert child.returncode == 128 + signal.SIGTERM, err
    assert "musc: terminated; the output folder was left as it was" in err
    assert not out.exists() and list(tmp_path.iterdir()) == []  # no staging folder either
    assert ray_processes and not left  # the local Ray of the run went with it


def test_without_ray_cluster_says_how_to_install_it(
    monkeypatch: pytest.MonkeyPatch, line: Path, tmp_path: Path, capsys
) -> None:
    monkeypatch.setitem(sys.modules, "ray", None)  # import ray -> ImportError
    code = main(["score", str(line), "--out", str(tmp_path / "o"), "--cluster", "ray"])
    err = capsys.readouterr().err.strip().splitlines()
    assert code == 2
    assert err == ["musc: error: " + INSTALL_HINT]
    assert not (tmp_path / "o").exists()


def test_a_bad_cluster_address_is_refused(line: Path, tmp_path: Path, capsys) -> None:
    with pytest.raises(SystemExit) as stop:
        main(["score", str(line), "--out", str(tmp_path / "o"), "--cluster", "spark://x"])
    assert stop.value.code == 2
    assert "ray://HOST:PORT" in capsys.readouterr().err


def test_the_engine_and_the_cli_import_without_loading_ray() -> None:
    code = "import sys, engine.cli, engine.session.session; print('ray' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"
