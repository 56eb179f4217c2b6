"""The line's worker loop: watch a folder, score each new part, apply requests between parts.

:func:`line_steps` is a generator driven on a worker thread (``LineRunner``). It is the only
code that touches the :class:`StreamScorer` once the line runs: the scorer is not thread-safe,
so the GUI never calls it; pin, unpin and re-score requests go into a queue and are applied
here between parts. Each event it yields holds numpy arrays only (``line_result`` copies the
maps out of the tensors), so nothing the worker mutates later reaches a widget.

Events, in order: :class:`LineStarted`, then any of :class:`PartScored`, :class:`PartSkipped`,
:class:`LineChanged` and :class:`LineNote` until the stop token is set.
"""

from __future__ import annotations

import logging
import queue
import time
from collections.abc import Callable, Generator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from engine.cli_stream import open_scorer
from engine.config import MuscConfig
from engine.decision import Decision
from engine.errors import MuscError
from engine.progress import CancelToken, Progress
from engine.session.results import ScoreResult
from engine.session.session import InspectionSession
from engine.stream.line_result import line_decision, line_result
from engine.stream.recipe import save_recipe
from engine.stream.recipe_create import make_recipe
from engine.stream.scorer import StreamScorer
from engine.stream.watch import ArrivedPart, PartWatcher

logger = logging.getLogger("musc_gui.line")

POLL_SECONDS = 0.25  # the longest a stop or a pin request waits while no part arrives
RETRY_SECONDS = 2.0  # wait before indexing an unusable folder again
RESCORE_FIELDS = ("x_percent", "rscon_window", "blur_sigma")  # what StreamScorer.rescore takes

ScorerFactory = Callable[[Path, str], StreamScorer]
WatcherFactory = Callable[[Path, bool, float], PartWatcher]


def default_watcher(folder: Path, needs_xyz: bool, settle_seconds: float) -> PartWatcher:
    """A :class:`PartWatcher` on ``folder`` with OS file events."""
    return PartWatcher(folder, needs_xyz=needs_xyz, settle_seconds=settle_seconds)


@dataclass(frozen=True)
class LineSetup:
    """What to watch, with which recipe and bank policy."""

    recipe: Path
    folder: Path
    policy: str = "pinned"
    settle_seconds: float = 0.5
    include_existing: bool = False  # also score the parts already in the folder


@dataclass(frozen=True)
class BankEntry:
    """A bank member as the dock lists it."""

    name: str
    pinned: bool


@dataclass(frozen=True)
class LineView:
    """The scorer's state as the views need it: recent parts newest first, cuts, bank."""

    result: ScoreResult
    decision: Decision
    bank: tuple[BankEntry, ...]
    config: MuscConfig
    modality: str


@dataclass(frozen=True)
class LineStarted:
    """The recipe is loaded, the backbones are built and the folder is watched."""

    view: LineView
    setup: LineSetup


@dataclass(frozen=True)
class PartScored:
    """One new verdict; ``view`` already holds the part (first row)."""

    name: str
    score: float
    verdict: str
    arrived: float
    seconds: float
    entered_bank: bool
    view: LineView


@dataclass(frozen=True)
class PartSkipped:
    """A part that could not be scored (missing or unreadable file); the line goes on."""

    name: str
    reason: str


@dataclass(frozen=True)
class LineChanged:
    """Pin, unpin or a re-score was applied."""

    view: LineView
    message: str


@dataclass(frozen=True)
class LineNote:
    """Something the user should read (a refused pin, an unusable folder)."""

    message: str
    level: int = logging.WARNING


def line_view(scorer: StreamScorer) -> LineView:
    """The scorer's recent parts (newest first), cuts and bank, as numpy."""
    parts = list(reversed(scorer.recent))
    bank = tuple(BankEntry(m.name, m.pinned) for m in scorer.bank.members)
    return LineView(line_result(parts, scorer), line_decision(scorer), bank, scorer.config,
                    scorer.modality)  # fmt: skip


def line_steps(
    setup: LineSetup,
    requests: queue.SimpleQueue,
    stop: CancelToken,
    make_scorer: ScorerFactory = open_scorer,
    make_watcher: WatcherFactory = default_watcher,
) -> Generator[object, None, int]:
    """Score every new part of ``setup.folder`` until ``stop`` is set (module docstring).

    Returns:
        How many parts were scored.
    """
    scorer = make_scorer(setup.recipe, setup.policy)
    watcher = make_watcher(setup.folder, "3d" in scorer.modality, setup.settle_seconds)
    watcher.start()
    scored = 0
    try:
        yield LineStarted(line_view(scorer), setup)
        backlog = watcher.existing() if setup.include_existing else []
        while not stop.cancelled:
            yield from _apply_requests(scorer, requests)
            arrived = backlog or (yield from _poll(watcher, stop))
            backlog = []
            for unusable in watcher.take_unusable():  # e.g. a corrupt image: never a part
                yield PartSkipped(str(unusable.path), unusable.reason)
            for part in arrived:
                if stop.cancelled:
                    break
                event = _score(scorer, part)
                scored += isinstance(event, PartScored)
                yield event
                yield from _apply_requests(scorer, requests)
    finally:
        watcher.stop()  # also when the runner closes the generator at a yield
    return scored


def _poll(watcher: PartWatcher, stop: CancelToken) -> Generator[object, None, list]:
    try:
        return watcher.poll(POLL_SECONDS)
    except MuscError as error:  # the folder went away or changed shape: say so, keep trying
        yield LineNote(f"{error} Trying again in {RETRY_SECONDS:g} s.")
        deadline = time.monotonic() + RETRY_SECONDS
        while not stop.cancelled and time.monotonic() < deadline:
            time.sleep(POLL_SECONDS)
        return []


def _score(scorer: StreamScorer, arrived: ArrivedPart) -> PartScored | PartSkipped:
    sample = arrived.sample
    try:
        part = scorer.score_new(sample)
    except Exception as error:  # one bad part must never stop the line
        reason = str(error) or type(error).__name__
        if not isinstance(error, MuscError):  # not a bad file but a fault: keep the traceback
            logger.warning("scoring %s failed", sample.name, exc_info=error)
        return PartSkipped(sample.name, reason)
    return PartScored(part.name, float(part.score), part.verdict, arrived.arrived,
                      part.seconds, part.entered_bank, line_view(scorer))  # fmt: skip


def _apply_requests(
    scorer: StreamScorer, requests: queue.SimpleQueue
) -> Generator[object, None, None]:
    """Apply every queued request; re-scores are merged into one (the latest values win)."""
    done, changes = [], {}
    while True:
        try:
            kind, value = requests.get_nowait()
        except queue.Empty:
            break
        if kind == "rescore":
            changes.update(value)
            continue
        try:
            if kind == "pin" and not scorer.pin(value):
                yield LineNote(f"{value}: cannot pin it, it is no longer among the last "
                               f"{scorer.recent.maxlen} parts.")  # fmt: skip
                continue
            if kind == "unpin":
                scorer.unpin(value)
            done.append(f"{kind}ned {value}")
        except MuscError as error:  # e.g. unpinning would leave fewer than two members
            yield LineNote(str(error))
    if changes:
        scorer.rescore(**changes)
        shown = ", ".join(f"{k} = {v:g}" for k, v in changes.items())
        done.append(f"re-scored the last {len(scorer.recent)} parts at {shown}")
    if done:
        yield LineChanged(line_view(scorer), "; ".join(done).capitalize())


def recipe_steps(
    session: InspectionSession, path: Path, bank_size: int
) -> Generator[Progress, None, Path]:
    """Make a recipe from ``session``'s scored batch (its cached stages are reused) and save it."""
    made = yield from make_recipe(session.dataset, session.config, bank_size=bank_size,
                                  session=session)  # fmt: skip
    yield Progress("save the recipe", 0, 1, str(path))
    return save_recipe(made.recipe, path)


def rescore_changes(changes: dict[str, Any]) -> tuple[dict[str, Any], list[str]]:
    """Split cheap parameter changes into what a stream re-scores and what it cannot change."""
    kept = {k: v for k, v in changes.items() if k in RESCORE_FIELDS}
    return kept, [k for k in changes if k not in RESCORE_FIELDS]
