"""One local Ray (2 worker CPUs) for the cluster tests.

Without Ray they skip on a developer's machine and fail under CI, where ``bash bootstrap.sh
test`` installs the ``cluster`` extra.
"""

from __future__ import annotations

import importlib.util

import pytest

from tests.environment import skip_or_fail


@pytest.fixture(scope="package")
def ray_local():
    """A local Ray with 2 CPUs, started once for this folder's tests and shut down after them."""
    if importlib.util.find_spec("ray") is None:
        skip_or_fail('Ray is not installed: pip install -e ".[cluster]"')
    import ray

    ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False, configure_logging=False)
    yield ray
    ray.shutdown()
