"""``musc score --cluster ray://HOST:PORT``: a Ray head with its client server, started here in
its own process group as a user starts one (``ray start --head``), with Ray's default token
authentication; the CLI joins it through the Ray client and scores as a single process does.

Connecting (retries, the error line, the SIGTERM handler) is checked against a stand-in ``ray``.
"""

from __future__ import annotations

import csv
import importlib.util
import os
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

import engine
from engine.cli import main
from engine.cluster import ClusterUnavailableError
from engine.cluster.cli_support import SESSION_START_FAILED, _connect
from engine.data.synthetic import write_synthetic_dataset
from tests.environment import skip_or_fail

REPO = Path(__file__).resolve().parents[3]
COMMON = ["--modality", "2d", "--backbone", "efficientnet_lite0", "--image-size", "64"]


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def _listening(port: int) -> bool:
    try:
        socket.create_connection(("127.0.0.1", port), timeout=1).close()
    except OSError:
        return False
    return True


def _stop_group(head: subprocess.Popen) -> None:
    """End the head and every process it started (all in its process group, by its id)."""
    try:
        os.killpg(head.pid, signal.SIGTERM)
        head.wait(timeout=3)
    except (ProcessLookupError, subprocess.TimeoutExpired):
        pass
    try:
        os.killpg(head.pid, signal.SIGKILL)  # what ignored SIGTERM (gcs_server does)
    except ProcessLookupError:
        pass
    head.wait()
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:  # the orphans are reaped by init
        try:
            os.killpg(head.pid, 0)
        except ProcessLookupError:
            return
        time.sleep(0.2)


@pytest.fixture(scope="module")
def ray_head() -> Iterator[tuple[int, str, Path]]:
    """A Ray head (2 CPUs) with its client server: (client port, auth token, Ray's temp dir)."""
    if importlib.util.find_spec("ray") is None:
        skip_or_fail('Ray is not installed: pip install -e ".[cluster]"')
    # short: Ray's socket paths live under it (a Unix socket path has at most 107 bytes)
    root = Path(tempfile.mkdtemp(prefix="musc-ray-"))
    port, token = _free_port(), secrets.token_hex(32)
    # Ray's default for a new cluster is token authentication; its token here comes from the
    # environment (not ~/.ray/auth_token), and the client is given the same one below
    env = {**os.environ, "RAY_AUTH_MODE": "token", "RAY_AUTH_TOKEN": token}
    command = [
        sys.executable, "-m", "ray.scripts.scripts", "start", "--head", "--block", "--port=0",
        f"--ray-client-server-port={port}", "--num-cpus=2", "--include-dashboard=false",
        "--disable-usage-stats", f"--temp-dir={root / 'ray'}",
        f"--runtime-env-agent-port={_free_port()}", f"--dashboard-agent-listen-port={_free_port()}",
    ]  # fmt: skip
    with open(root / "head.log", "wb") as log:
        # its own process group and cwd: the workers cannot import engine from this checkout
        head = subprocess.Popen(command, cwd=root, env=env, stdout=log, stderr=subprocess.STDOUT,
                                start_new_session=True)  # fmt: skip
    try:
        deadline = time.monotonic() + 90
        while not _listening(port):
            if head.poll() is not None or time.monotonic() > deadline:
                pytest.fail(f"the Ray head did not start:\n{(root / 'head.log').read_text()}")
            time.sleep(0.2)
        yield port, token, root / "ray"
    finally:
        _stop_group(head)
        shutil.rmtree(root, ignore_errors=True)


@pytest.fixture(scope="module")
def line(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("client") / "line"
    return write_synthetic_dataset(root, n_good=6, n_per_defect=1, size=64, seed=4)


def _scores(out: Path) -> list[dict[str, str]]:
    with open(out / "scores.csv", newline="") as table:
        return list(csv.DictReader(table))


def test_the_cli_scores_on_a_cluster_through_the_ray_client(
    ray_head: tuple[int, str, Path], line: Path, tmp_path: Path
) -> None:
    port, token, ray_dir = ray_head
    assert main(["score", str(line), "--out", str(tmp_path / "local"), *COMMON]) == 0
    command = [sys.executable, "-m", "engine.cli", "score", str(line), "--out",
               str(tmp_path / "ray"), *COMMON, "--cluster", f"ray://127.0.0.1:{port}"]  # fmt: skip
    env = {**os.environ, "RAY_AUTH_MODE": "token", "RAY_AUTH_TOKEN": token}
    run = subprocess.run(command, cwd=REPO, env=env, capture_output=True, text=True, timeout=300)
    assert run.returncode == 0, run.stderr
    # progress of the stages that ran on the cluster (stderr is not a terminal: one line each)
    for stage in ("extract 2D (9 steps)", "mutual scoring 2D (layer 1/2)"):
        assert f"musc: {stage}" in run.stderr
    # the cluster ran this checkout's engine, shipped by the client (runtime_env py_modules)
    assert list(ray_dir.glob("session_*/runtime_resources/py_modules_files/*/engine/cli.py"))
    local, cluster = _scores(tmp_path / "local"), _scores(tmp_path / "ray")
    assert [r["sample"] for r in cluster] == [r["sample"] for r in local] and len(local) == 9
    for mine, reference in zip(cluster, local, strict=True):
        assert float(mine["score"]) == pytest.approx(float(reference["score"]), rel=1e-4)
        assert (mine["label"], mine["verdict"]) == (reference["label"], reference["verdict"])


class _FakeRay:
    """``ray.init`` failing with the given errors first, and replacing SIGTERM's handler."""

    def __init__(self, *errors: Exception) -> None:
        self.errors, self.calls = list(errors), []

    def init(self, **options) -> None:
        self.calls.append(options)
        signal.signal(signal.SIGTERM, lambda *_: sys.exit(15))  # as ray.init does
        if self.errors:
            raise self.errors.pop(0)


SESSION_FAILED = ConnectionAbortedError(
    f"Initialization failure from server:\nTraceback (most recent call last):\n  ...\n"
    f"RuntimeError: {SESSION_START_FAILED}. See ray_client_server_23000.err for detailed logs."
)


def test_a_client_session_the_cluster_failed_to_start_is_tried_again(capsys) -> None:
    ray, previous = _FakeRay(SESSION_FAILED, SESSION_FAILED), signal.getsignal(signal.SIGTERM)
    _connect(ray, "ray://head:10001")
    assert len(ray.calls) == 3
    assert ray.calls[0]["address"] == "ray://head:10001"
    assert ray.calls[0]["runtime_env"]["py_modules"] == [str(Path(engine.__file__).parent)]
    assert capsys.readouterr().err.count("trying again") == 2
    assert signal.getsignal(signal.SIGTERM) is previous  # the CLI's handler, not Ray's


@pytest.mark.parametrize(
    ("spec", "errors", "calls"),
    [
        ("ray://head:10001", [SESSION_FAILED] * 3, 3),  # three strikes
        ("ray://head:10001", [ConnectionError("ray client connection timeout")], 1),
        ("ray", [RuntimeError(SESSION_START_FAILED)], 1),  # a local Ray has no client session
    ],
    ids=["session-thrice", "unreachable", "local"],
)
def test_other_failures_stop_at_once_with_one_line(spec: str, errors, calls: int) -> None:
    ray, previous = _FakeRay(*errors), signal.getsignal(signal.SIGTERM)
    with pytest.raises(ClusterUnavailableError) as failure:
        _connect(ray, spec)
    message = str(failure.value)
    assert len(ray.calls) == calls and "\n" not in message and spec in message
    assert ("RAY_AUTH_MODE=token" in message) == spec.startswith("ray://")
    assert signal.getsignal(signal.SIGTERM) is previous
