"""What the Line dock counts: parts, fails, rates, latency and the fail-rate alarm.

Plain Python (no Qt, no torch), fed on the GUI thread with one :class:`PartRecord` per verdict
that reached the screen, so every figure can be unit-tested by hand. The counters keep each
part's verdict as it was delivered: a later re-score at another X % changes the ranked list,
not what the line already reported.
"""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass

import numpy as np

HISTORY = 1000  # parts kept for the strip chart (about an hour at one part every 4 s)
RATE_WINDOW = 20  # parts per minute are measured over the last this many arrivals
LATENCY_WINDOW = 50  # the p95 latency is taken over the last this many parts


@dataclass(frozen=True)
class PartRecord:
    """One verdict as the line delivered it.

    Attributes:
        name: Sample name.
        score: Image score when it was scored.
        verdict: "pass" or "fail".
        arrived: ``time.time()`` when its files were complete.
        latency: Seconds from ``arrived`` to the verdict on screen.
        entered_bank: Whether a rolling bank took it in.
    """

    name: str
    score: float
    verdict: str
    arrived: float
    latency: float
    entered_bank: bool = False

    @property
    def failed(self) -> bool:
        """Whether the verdict was "fail"."""
        return self.verdict == "fail"


@dataclass(frozen=True)
class Counters:
    """The counters row; None where there is not enough data yet."""

    parts: int
    fails: int
    skipped: int
    fail_rate: float | None  # percent of all parts since the start
    per_minute: float | None
    last_latency_ms: float | None
    p95_latency_ms: float | None


@dataclass(frozen=True)
class AlarmRule:
    """Alarm when more than ``percent`` % of the last ``window`` parts failed.

    The rule waits for ``window`` parts: two fails among the first three parts say little.
    """

    window: int = 20
    percent: float = 30.0

    def check(self, records: list[PartRecord]) -> tuple[bool, str]:
        """Whether the alarm holds for ``records`` (oldest first), and the sentence saying why."""
        recent = records[-self.window :] if self.window > 0 else []
        if self.window <= 0 or len(recent) < self.window:
            return False, ""
        fails = sum(record.failed for record in recent)
        rate = 100.0 * fails / len(recent)
        text = (f"{fails} of the last {len(recent)} parts failed ({rate:.0f} %, alarm above "
                f"{self.percent:g} %)")  # fmt: skip
        return rate > self.percent, text


class LineStats:
    """The records of one line run and the figures the dock shows."""

    def __init__(self, rule: AlarmRule | None = None) -> None:
        self.rule = rule or AlarmRule()
        self.records: deque[PartRecord] = deque(maxlen=HISTORY)
        self.parts = self.fails = self.skipped = 0
        self.alarm_on = False
        self.alarm_text = ""

    def reset(self) -> None:
        """Forget everything (a new run starts)."""
        self.records.clear()
        self.parts = self.fails = self.skipped = 0
        self.alarm_on, self.alarm_text = False, ""

    def add(self, record: PartRecord) -> None:
        """Count one delivered verdict."""
        self.records.append(record)
        self.parts += 1
        self.fails += record.failed

    def skip(self) -> None:
        """Count one part that could not be scored."""
        self.skipped += 1

    def counters(self) -> Counters:
        """The counters row as of the last record."""
        records = list(self.records)
        rate = 100.0 * self.fails / self.parts if self.parts else None
        arrivals = [r.arrived for r in records[-RATE_WINDOW:]]
        span = arrivals[-1] - arrivals[0] if len(arrivals) > 1 else 0.0
        per_minute = 60.0 * (len(arrivals) - 1) / span if span > 0 else None
        latencies = [1000.0 * r.latency for r in records[-LATENCY_WINDOW:]]
        return Counters(
            parts=self.parts,
            fails=self.fails,
            skipped=self.skipped,
            fail_rate=rate,
            per_minute=per_minute,
            last_latency_ms=latencies[-1] if latencies else None,
            p95_latency_ms=float(np.percentile(latencies, 95)) if latencies else None,
        )

    def update_alarm(self) -> str | None:
        """Re-check the alarm rule; "raised" or "cleared" when it changed, else None."""
        on, self.alarm_text = self.rule.check(list(self.records))
        if on == self.alarm_on:
            return None
        self.alarm_on = on
        return "raised" if on else "cleared"

    def chart_data(self) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """(arrival times, scores, failed) of the kept records, oldest first."""
        records = list(self.records)
        times = np.array([r.arrived for r in records], dtype=np.float64)
        scores = np.array([r.score for r in records], dtype=np.float64)
        failed = np.array([r.failed for r in records], dtype=bool)
        return times, scores, failed


def format_counters(counters: Counters) -> dict[str, str]:
    """The counters as the dock writes them, by label."""

    def number(value: float | None, pattern: str) -> str:
        return "–" if value is None else pattern.format(value)

    return {
        "Parts": str(counters.parts),
        "Fails": str(counters.fails),
        "Fail rate": number(counters.fail_rate, "{:.1f} %"),
        "Parts/min": number(counters.per_minute, "{:.1f}"),
        "Latency": number(counters.last_latency_ms, "{:.0f} ms"),
        "p95": number(counters.p95_latency_ms, "{:.0f} ms"),
        "Skipped": str(counters.skipped),
    }
