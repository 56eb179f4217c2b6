"""Progress events yielded by long computations, and the cancellation flag they honour."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Generator
from dataclasses import dataclass
from typing import TypeVar

from engine.errors import CancelledError

T = TypeVar("T")


@dataclass(frozen=True)
class Progress:
    """One step of a long stage: ``done`` of ``total`` units of ``stage`` are finished."""

    stage: str
    done: int
    total: int
    message: str = ""

    @property
    def fraction(self) -> float:
        """Share of the stage that is finished, in [0, 1]."""
        return 1.0 if self.total <= 0 else min(1.0, self.done / self.total)


class CancelToken:
    """Thread-safe cancellation flag shared between a worker and the UI thread.

    Long loops call :meth:`raise_if_cancelled` between steps; a GUI sets the flag from its
    own thread.
    """

    def __init__(self) -> None:
        self._event = threading.Event()

    def cancel(self) -> None:
        """Ask the computation to stop at its next step."""
        self._event.set()

    @property
    def cancelled(self) -> bool:
        """Whether :meth:`cancel` was called."""
        return self._event.is_set()

    def raise_if_cancelled(self) -> None:
        """Raise :class:`CancelledError` if cancellation was requested."""
        if self._event.is_set():
            raise CancelledError("cancelled by the user")


def run_to_completion(
    steps: Generator[Progress, None, T], on_event: Callable[[Progress], None] | None = None
) -> T:
    """Drive a stage generator to its end and return its value.

    Args:
        steps: The generator.
        on_event: Called with each progress event; an exception it raises ends the run.
    """
    while True:
        try:
            event = next(steps)
        except StopIteration as stop:
            return stop.value
        if on_event is not None:
            on_event(event)


def timed(
    steps: Generator[Progress, None, T],
    timings: dict[str, float],
    key: str,
    cancel: CancelToken | None = None,
) -> Generator[Progress, None, T]:
    """Re-yield ``steps`` while keeping ``timings[key]`` at the seconds spent so far.

    The time is updated before every event (so a progress display can read it) and once more
    at the end, also when the stage fails or is cancelled. After each event ``cancel`` is checked.
    """
    started = time.perf_counter()
    try:
        while True:
            try:
                event = next(steps)
            except StopIteration as stop:
                return stop.value
            timings[key] = time.perf_counter() - started
            yield event
            if cancel is not None:
                cancel.raise_if_cancelled()
    finally:
        timings[key] = time.perf_counter() - started
