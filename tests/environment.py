"""What the test environment provides, and what to do when something bootstrap.sh installs is
missing: skip with the reason on a developer's machine, fail under CI (``CI=true``), where
bootstrap.sh has installed everything and a missing tool is a broken setup, not a choice."""

from __future__ import annotations

import os

import pytest


def in_ci() -> bool:
    """Whether the tests run under CI (``CI=true``, as GitHub Actions and most CIs set it)."""
    return os.environ.get("CI", "").strip().lower() in {"1", "true", "yes"}


def skip_or_fail(reason: str) -> None:
    """Skip with ``reason``; under CI, fail with it instead."""
    if in_ci():
        pytest.fail(f"{reason} (CI=true: bash bootstrap.sh installs it)")
    pytest.skip(reason)
