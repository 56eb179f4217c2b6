"""A private Xvfb display, and running a script on it, for the tests that need real OpenGL.

The Qt platform of the test process is fixed (offscreen) once the first widget exists, and
offscreen has no OpenGL widgets, so a test that renders the 3D view runs a script in a
subprocess with ``DISPLAY`` set to a private Xvfb and ``QT_QPA_PLATFORM=xcb``. The script
prints one line ``RESULT<json>``, which :func:`run_on_display` returns as a dict.

Missing requirements skip with the reason, except under ``CI=true``: bootstrap.sh installs
Xvfb and the xcb libraries, so there their absence is a broken setup and fails the test.
"""

from __future__ import annotations

import json
import os
import select
import shutil
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.environment import skip_or_fail

ROOT = Path(__file__).resolve().parents[2]
STARTUP_LIMIT_S = 30.0  # how long Xvfb may take to report its display before we give up


def xvfb_display() -> Iterator[str]:
    """Start Xvfb on a free display and yield its name (``":N"``); stop it afterwards.

    ``-displayfd`` lets Xvfb choose a free display and tells us which once it accepts clients,
    so there is neither a guessed display number nor a fixed sleep.
    """
    if shutil.which("Xvfb") is None:
        skip_or_fail("Xvfb is not installed (apt-get install xvfb): the 3D view needs an X server")
    read_fd, write_fd = os.pipe()
    proc = subprocess.Popen(
        ["Xvfb", "-displayfd", str(write_fd), "-screen", "0", "1280x1024x24", "-nolisten", "tcp"],
        pass_fds=(write_fd,), stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
    )  # fmt: skip
    os.close(write_fd)
    number = b""
    try:
        while not number.endswith(b"\n"):
            ready, _, _ = select.select([read_fd], [], [], STARTUP_LIMIT_S)
            chunk = os.read(read_fd, 16) if ready else b""
            if not chunk:
                break
            number += chunk
    finally:
        os.close(read_fd)
    if not number.strip().isdigit():
        proc.kill()
        _, err = proc.communicate(timeout=10)
        said = err.decode(errors="replace").strip()[-500:]
        pytest.skip(f"no X server could be started: Xvfb exited with {proc.returncode}: {said!r}")
    try:
        yield f":{number.decode().strip()}"
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(timeout=10)
        if proc.stderr is not None:
            proc.stderr.close()


def run_on_display(display: str, script: str, *args: str, timeout: float = 240) -> dict:
    """Run ``script`` with ``args`` on ``display`` (Qt xcb) and return its ``RESULT`` dict."""
    env = dict(os.environ, DISPLAY=display, QT_QPA_PLATFORM="xcb", PYTHONPATH=str(ROOT))
    run = subprocess.run([sys.executable, "-c", script, *args], env=env, cwd=ROOT,
                         capture_output=True, text=True, timeout=timeout)  # fmt: skip
    lines = [line for line in run.stdout.splitlines() if line.startswith("RESULT")]
    if not lines and "could not load the qt platform plugin" in run.stderr.lower():
        skip_or_fail(f"Qt xcb platform unavailable: {run.stderr.strip()[-300:]}")
    assert lines, f"subprocess failed ({run.returncode}):\n{run.stderr[-3000:]}"
    return json.loads(lines[-1][len("RESULT") :])
