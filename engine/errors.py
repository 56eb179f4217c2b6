"""Exception types raised by the engine.

Inner code raises these; only the edges (CLI, GUI) turn them into messages for the user.
"""

from __future__ import annotations


class MuscError(Exception):
    """Base class of every error the engine raises on purpose."""


class InvalidInputError(MuscError, ValueError):
    """Input data cannot be used; the message names the file, what was expected and the fix."""


class UnknownBackboneError(MuscError, KeyError):
    """A backbone name that is not in the registry; the message lists the valid names."""

    def __str__(self) -> str:  # KeyError would otherwise quote the message
        return str(self.args[0]) if self.args else ""


class WeightsUnavailableError(MuscError, RuntimeError):
    """Pretrained weights could be neither found locally nor downloaded."""


class CancelledError(MuscError):
    """The caller cancelled a long computation."""
