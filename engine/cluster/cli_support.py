"""The ``--cluster`` option of ``musc score``: parsing it, and connecting to Ray for one run."""

from __future__ import annotations

import argparse
import logging
import signal
import sys
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import engine
from engine.cluster import ClusterUnavailableError, require_ray
from engine.session.compute_backend import DistanceBackend

LOCAL = "ray"
CLIENT_PREFIX = "ray://"
# Ray (2.60 here) starts a new cluster with token authentication, so a client must send the token
TOKEN_HINT = (
    "a cluster with token authentication (the default of new Ray clusters) needs "
    "RAY_AUTH_MODE=token and its token in RAY_AUTH_TOKEN (or a file named by "
    "RAY_AUTH_TOKEN_PATH, or ~/.ray/auth_token)"
)
# what a Ray client's error says when the cluster could not start its session's server
SESSION_START_FAILED = "Starting Ray client server failed"
CLIENT_ATTEMPTS = 3


def cluster_spec(text: str) -> str:
    """argparse type of ``--cluster``: ``ray`` (a local Ray) or ``ray://HOST:PORT``."""
    if text == LOCAL or (text.startswith(CLIENT_PREFIX) and len(text) > len(CLIENT_PREFIX)):
        return text
    raise argparse.ArgumentTypeError(
        f"expected 'ray' (a local Ray, started for this run) or 'ray://HOST:PORT' "
        f"(an existing cluster), got {text!r}"
    )


def add_cluster_option(parser: argparse.ArgumentParser) -> None:
    """Add ``--cluster`` to a scoring command."""
    parser.add_argument(
        "--cluster",
        type=cluster_spec,
        metavar="ray|ray://HOST:PORT",
        help="run mutual scoring as Ray tasks: 'ray' starts a local Ray for this run, "
        "'ray://HOST:PORT' joins an existing cluster (needs the [cluster] extra); "
        "results are identical to a run without it",
    )


@contextmanager
def cluster_backend(spec: str | None) -> Iterator[DistanceBackend | None]:
    """The compute backend of one CLI run: None without ``--cluster``, else Ray's (extraction
    on actors, mutual scoring as tasks).

    A Ray started here is shut down at the end; one already initialised in this process
    (an embedding program, the tests) is used and left running.

    Raises:
        ClusterUnavailableError: Ray is not installed, or the cluster cannot be reached.
    """
    if spec is None:
        yield None
        return
    ray = require_ray()
    from engine.cluster.ray_compute import RayCompute

    started = not ray.is_initialized()
    if started:
        _connect(ray, spec)
    try:
        yield RayCompute()
    finally:
        if started:
            ray.shutdown()


def init_options(spec: str) -> dict[str, Any]:
    """``ray.init`` arguments for ``--cluster spec``.

    A Ray client (``ray://``) ships this process's ``engine`` package to the cluster
    (``runtime_env`` ``py_modules``), so its workers run the very code of this run whether or
    not the cluster has musc-inspector installed; the cluster still needs the dependencies
    (torch, timm, ...). A local Ray's workers import it from here.
    """
    options: dict[str, Any] = {"include_dashboard": False, "log_to_driver": False,
                               "logging_level": logging.WARNING}  # fmt: skip
    if spec == LOCAL:
        return {"address": "local", **options}
    package = str(Path(engine.__file__).parent)
    runtime_env = {"py_modules": [package], "excludes": ["__pycache__/", "*.pyc"]}
    return {"address": spec, "runtime_env": runtime_env, **options}


def _connect(ray: Any, spec: str, attempts: int = CLIENT_ATTEMPTS) -> None:
    """``ray.init`` for ``spec``, keeping this process's SIGTERM handler (``ray.init`` replaces
    it with one that exits with status 15, skipping the CLI's clean-up and exit status 143).

    A Ray client's session is tried up to ``attempts`` times when the cluster failed to start
    its server process for it (a race in Ray's client proxy, ray-project/ray#63202); any other
    failure is reported at once.
    """
    main_thread = threading.current_thread() is threading.main_thread()
    handler = signal.getsignal(signal.SIGTERM) if main_thread else None
    try:
        for attempt in range(1, attempts + 1):
            try:
                ray.init(**init_options(spec))
                return
            except (ConnectionError, RuntimeError, ValueError) as error:
                client = spec.startswith(CLIENT_PREFIX)
                if client and SESSION_START_FAILED in str(error) and attempt < attempts:
                    print(f"musc: --cluster {spec}: the cluster failed to start a Ray client "
                          f"session (a known Ray race); trying again ({attempt + 1}/{attempts})",
                          file=sys.stderr)  # fmt: skip
                    continue
                hint = f"; {TOKEN_HINT}" if client else ""
                raise ClusterUnavailableError(
                    f"--cluster {spec}: cannot start or reach Ray ({_one_line(error)}); check "
                    f"the address, or use --cluster ray for a local one{hint}"
                ) from error
    finally:
        if handler is not None:
            signal.signal(signal.SIGTERM, handler)


def _one_line(error: BaseException) -> str:
    """An error on one line: a server's traceback shrinks to its first and last lines."""
    lines = [line.strip() for line in str(error).splitlines() if line.strip()]
    return " ... ".join(lines[:1] + lines[-1:]) if len(lines) > 1 else "".join(lines)
