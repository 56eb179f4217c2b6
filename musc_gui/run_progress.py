"""One progress bar for a whole run: stages weighted by their expected cost, ETA from the clock.

A run yields ``Progress`` events per stage, each counting from 0 again; shown as they come the
bar would restart at every stage and the ETA would describe only the current one. Here a run
first announces its stages (:func:`plan_event`, from ``InspectionSession.pending()``, so a
re-run that extracts only three new parts plans only what it computes); each stage gets a share
of the bar by its measured time in an earlier run of the session, else by its typical cost
(:data:`STAGE_WEIGHTS`). The ETA is the elapsed wall time scaled by what is left, so the actual
speed of the stages already done corrects it. The fraction never decreases within a run.
"""

from __future__ import annotations

import re
import time
from collections.abc import Callable, Iterable

from engine.progress import Progress
from engine.session.stages import Stage

PLAN = "plan"  # the label of the event that announces a run's stages
PRELUDE_WEIGHT = 1.0  # choosing backbones, looking up the cache, rescanning the folder
RUN_WEIGHT = 40.0  # what the prelude expects of the stages its plan has not named yet
# typical seconds of each stage for ~30 parts on a laptop CPU (offline backbones, 2D+3D); only
# the ratios matter, and a session that ran before weighs by its own measured timings instead
STAGE_WEIGHTS: dict[str, float] = {
    Stage.LOAD_3D: 4.0,
    Stage.EXTRACT_2D: 6.0,
    Stage.AGGREGATE_2D: 1.0,
    Stage.GROUP_3D: 1.0,
    Stage.EXTRACT_3D: 12.0,
    Stage.SCORE_2D: 12.0,
    Stage.SCORE_3D: 3.0,
    Stage.SCORE_CAE: 15.0,
    Stage.READ_OUT: 0.5,
}
# "mutual scoring 2D (layer 2/3)": the second of three equal rounds of one stage
ROUND = re.compile(r"\((?:[^()]*\s)?(\d+)/(\d+)\)\s*$")
MIN_ETA_FRACTION = 0.03  # before this share is done, the clock says too little to extrapolate
MIN_ETA_SECONDS = 1.0


def plan_event(stages: Iterable[str], timings: dict[str, float] | None = None) -> Progress:
    """The event a run yields first: the stages it is about to compute, each with its weight.

    Args:
        stages: Labels of the stages, in order.
        timings: Seconds the session measured for stages in an earlier run; where known they
            weigh the stage, and the typical weights of the others are scaled to match.
    """
    labels = [str(stage) for stage in stages]
    measured = {s: float(timings[s]) for s in labels if timings and timings.get(s, 0) > 0}
    typical = sum(STAGE_WEIGHTS.get(s, 1.0) for s in measured)
    scale = sum(measured.values()) / typical if measured and typical > 0 else 1.0
    weights = [measured.get(s, STAGE_WEIGHTS.get(s, 1.0) * scale) for s in labels]
    return Progress(
        PLAN, 0, 0, "\n".join(f"{s}\t{w:.6g}" for s, w in zip(labels, weights, strict=True))
    )


class RunProgress:
    """Turns a run's stage events into one non-decreasing fraction and a label with the ETA.

    Args:
        clock: Seconds (monotonic); tests pass a fake.
    """

    def __init__(self, clock: Callable[[], float] = time.perf_counter) -> None:
        self._clock = clock
        self.start()

    def start(self, prelude: Iterable[str] = ()) -> None:
        """Begin a run whose first events belong to ``prelude`` stages (before its plan)."""
        self.started = self._clock()
        self.fraction = 0.0
        # the stages to come hold the rest of the bar until the plan names them
        stages = [(str(s), PRELUDE_WEIGHT) for s in prelude] + [(PLAN, RUN_WEIGHT)]
        self._set_stages(stages, floor=0.0)

    def _set_stages(self, stages: list[tuple[str, float]], floor: float) -> None:
        # the planned stages share what is left of the bar above ``floor``
        self._stages, self._floor = stages, floor
        self._total = sum(w for _, w in stages) or 1.0
        self._current, self._stage_done = -1, 0.0

    def _index(self, label: str) -> int | None:
        names = [name for name, _ in self._stages]
        if label in names:
            return names.index(label)
        # sub-steps name their stage's start, e.g. "mutual scoring 2D" inside the CAE stage
        for index in range(max(self._current, 0), len(names)):
            if names[index].startswith(label) or label.startswith(names[index]):
                return index
        return None

    def update(self, event: Progress) -> float:
        """Account for ``event``; returns the run's overall fraction in [0, 1]."""
        if event.stage == PLAN:
            lines = [line.split("\t") for line in event.message.splitlines() if line]
            stages = [(parts[0], float(parts[1]) if len(parts) > 1 else 1.0) for parts in lines]
            self._set_stages(stages, self.fraction)
            return self.fraction
        index = self._index(event.stage)
        if index is not None and index < self._current:
            return self.fraction  # a late event of a finished stage says nothing new
        if index is not None and index > self._current:
            self._current, self._stage_done = index, 0.0
        if self._current >= 0:
            self._stage_done = max(self._stage_done, _within(event))
            done = sum(w for _, w in self._stages[: self._current])
            done += self._stages[self._current][1] * self._stage_done
            share = self._floor + (1.0 - self._floor) * done / self._total
            self.fraction = min(1.0, max(self.fraction, share))
        return self.fraction

    def eta_seconds(self) -> float | None:
        """Seconds left at the speed so far; None while too little is done to tell."""
        elapsed = self.elapsed()
        if self.fraction < MIN_ETA_FRACTION or elapsed < MIN_ETA_SECONDS or self.fraction >= 1:
            return None
        return elapsed * (1.0 - self.fraction) / self.fraction

    def elapsed(self) -> float:
        """Wall-clock seconds since :meth:`start`."""
        return self._clock() - self.started

    def label(self, event: Progress) -> str:
        """A status line: the stage, its count, and the ETA of the whole run."""
        count = f" {event.done}/{event.total}" if event.total > 0 else ""
        eta = self.eta_seconds()
        left = f" — about {format_seconds(eta)} left" if eta is not None else ""
        return f"{event.stage}{count}{left}"


def _within(event: Progress) -> float:
    """The share of its stage an event reports, counting the rounds its label names."""
    match = ROUND.search(event.stage)
    if match is None:
        return event.fraction
    number, rounds = int(match.group(1)), int(match.group(2))
    if not 1 <= number <= rounds:
        return event.fraction
    return (number - 1 + event.fraction) / rounds


def format_seconds(seconds: float) -> str:
    """``42 s`` or ``3 min 5 s``."""
    seconds = max(0, round(seconds))
    return f"{seconds} s" if seconds < 60 else f"{seconds // 60} min {seconds % 60} s"


def format_bytes(count: int) -> str:
    """``512 B``, ``3.4 MB``, ``1.2 GB``."""
    if count < 1000:
        return f"{count} B"
    value = float(count)
    for unit in ("kB", "MB"):
        value /= 1000
        if value < 1000:
            return f"{value:.1f} {unit}"
    return f"{value / 1000:.1f} GB"
