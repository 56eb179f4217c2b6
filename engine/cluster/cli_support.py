"""The ``--cluster`` option of ``musc score``: parsing it, and connecting to Ray for one run."""

from __future__ import annotations

import argparse
import logging
from collections.abc import Iterator
from contextlib import contextmanager

from engine.cluster import ClusterUnavailableError, require_ray
from engine.session.compute_backend import DistanceBackend

LOCAL = "ray"
CLIENT_PREFIX = "ray://"


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
        address = "local" if spec == LOCAL else spec
        try:
            ray.init(address=address, include_dashboard=False, log_to_driver=False,
                     logging_level=logging.WARNING)  # fmt: skip
        except (ConnectionError, RuntimeError, ValueError) as error:
            raise ClusterUnavailableError(
                f"--cluster {spec}: cannot start or reach Ray ({error}); check the address, "
                "or use --cluster ray for a local one"
            ) from error
    try:
        yield RayCompute()
    finally:
        if started:
            ray.shutdown()
