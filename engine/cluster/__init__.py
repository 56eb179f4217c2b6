"""Mutual scoring (and, optionally, feature extraction) on a Ray cluster.

Ray is an optional extra (``pip install "musc-inspector[cluster]"``); it is imported only here,
lazily, so the engine runs and imports without it.
"""

from __future__ import annotations

from types import ModuleType

from engine.errors import MuscError

INSTALL_HINT = '--cluster needs Ray: pip install "musc-inspector[cluster]" (or pip install ray)'


class ClusterUnavailableError(MuscError):
    """Ray is not installed, or the cluster cannot be reached; the message says how to fix it."""


def require_ray() -> ModuleType:
    """The ``ray`` module, or :class:`ClusterUnavailableError` with the install command."""
    try:
        import ray
    except ImportError as error:
        raise ClusterUnavailableError(INSTALL_HINT) from error
    return ray
