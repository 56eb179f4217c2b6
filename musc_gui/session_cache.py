"""The runs the app starts, as step factories for the worker, and their use of the session cache.

Every factory returns a callable that builds the generator the :class:`EngineRunner` drives in
its thread; the generator first announces its stages (:func:`musc_gui.run_progress.plan_event`)
and returns a :class:`RunOutput`. The on-disk cache (:mod:`engine.session.cache`) is used both
ways: opening a folder or applying a config first looks for a cached session (a hit shows the
result without computing), and every run saves its session at the end, in the worker thread, so
the GUI never waits for the write. The cache's size cap is enforced by the engine on save.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Generator
from dataclasses import dataclass
from typing import Any

from engine.config import MuscConfig
from engine.data.discover import discover_datasets
from engine.data.samples import DatasetIndex
from engine.errors import InvalidInputError
from engine.progress import Progress
from engine.session.cache import load_session, save_session
from engine.session.results import ScoreResult
from engine.session.session import InspectionSession
from engine.session.stages import Stage
from musc_gui.run_progress import plan_event

log = logging.getLogger(__name__)

BACKBONE_STAGE = "choose backbones"
CACHE_STAGE = "look up the session cache"
RESCAN_STAGE = "rescan the folder"

Steps = Callable[[], Generator[Progress, None, "RunOutput"]]


@dataclass(frozen=True)
class RunOutput:
    """What a run hands back to the GUI thread.

    Attributes:
        session: The session now holding the stages (a cache hit replaces the old one).
        result: The scored result.
        dataset: The dataset the result belongs to (a re-run may have found new parts).
        source: "computed" or "cache".
        known_good: Names of known-good parts this run added (see ``known_good_steps``).
    """

    session: InspectionSession
    result: ScoreResult
    dataset: DatasetIndex
    source: str = "computed"
    known_good: tuple[str, ...] = ()


def restore_cached(dataset: DatasetIndex, config: MuscConfig) -> RunOutput | None:
    """The cached session of ``dataset`` re-scored at once; None on a miss."""
    session = load_session(dataset, config)
    if session is None:
        return None
    try:
        result = session.rescore()
    except Exception as error:  # noqa: BLE001 - a cache that cannot re-score is a miss
        log.warning("ignoring a cached session that cannot be re-scored: %s", error)
        return None
    return RunOutput(session, result, dataset, "cache")


def run_and_save(session: Any, config: MuscConfig) -> Generator[Progress, None, ScoreResult]:
    """Announce the pending stages, ``session.run()``, then cache the session keyed by ``config``.

    A failed save (disk full, read-only cache) is logged and otherwise ignored.
    """
    yield plan_event([*session.pending(), Stage.READ_OUT], dict(session.timings))
    result = yield from session.run()
    try:
        save_session(session, config=config)
    except Exception as error:  # noqa: BLE001 - the cache is an optimisation only
        log.warning("could not cache the session: %s", error)
    return result


def first_run_steps(session: InspectionSession, key: MuscConfig) -> Steps:
    """Choose the backbones left on "auto" (may probe the network: not in the GUI thread), run.

    Args:
        session: A new session of the opened dataset.
        key: The config to cache by: the one the folder was opened with (backbones on "auto").
    """

    def steps() -> Generator[Progress, None, RunOutput]:
        yield Progress(BACKBONE_STAGE, 0, 1, "choosing backbones")
        lines = session.choose_backbones()
        yield Progress(BACKBONE_STAGE, 1, 1, "\n".join(lines))
        result = yield from run_and_save(session, key)
        return RunOutput(session, result, session.dataset)

    return steps


def apply_steps(session: InspectionSession, config: MuscConfig) -> Steps:
    """Switch to ``config``: reuse a cached session scored with it, else recompute what is stale."""

    def steps() -> Generator[Progress, None, RunOutput]:
        yield Progress(CACHE_STAGE, 0, 1)
        cached = restore_cached(session.dataset, config)
        if cached is not None:
            yield Progress(CACHE_STAGE, 1, 1, "found")
            return cached
        yield Progress(CACHE_STAGE, 1, 1, "not found")
        session.update(config)
        result = yield from run_and_save(session, config)
        return RunOutput(session, result, session.dataset)

    return steps


def update_run_and_save(session: Any, config: MuscConfig) -> Callable[[], Generator]:
    """Steps for the plain update: switch to ``config``, rerun the stale stages, cache."""

    def steps() -> Generator[Progress, None, ScoreResult]:
        session.update(config)
        return (yield from run_and_save(session, config))

    return steps


def rediscover(dataset: DatasetIndex) -> DatasetIndex:
    """``dataset``'s folder indexed again (same category): what a re-run scores.

    Raises:
        InvalidInputError: The category is gone from the folder.
    """
    found = [d for d in discover_datasets(dataset.root) if d.category == dataset.category]
    if not found:
        raise InvalidInputError(f"{dataset.root}: category {dataset.category!r} is gone.")
    return found[0]


def rescan_words(summary: Any) -> str:
    """ "3 new parts, 1 removed, extracting only those" from a ``RescanSummary``."""
    parts = [(len(summary.added), "new part", "new parts"), (len(summary.changed), "changed"),
             (len(summary.removed), "removed")]  # fmt: skip
    said = [f"{n} {words[0] if n == 1 else words[-1]}" for n, *words in parts if n]
    if not said:
        return "No new, changed or removed parts"
    return ", ".join(said) + (", extracting only those" if summary.added or summary.changed else "")


def rerun_steps(session: InspectionSession, dataset: DatasetIndex, key: MuscConfig) -> Steps:
    """Re-run on the rediscovered ``dataset``: only new and changed parts are extracted.

    ``InspectionSession.rescan`` keeps the stage outputs of unchanged parts; the summary line
    travels to the status bar as the message of the rescan event.
    """

    def steps() -> Generator[Progress, None, RunOutput]:
        yield Progress(RESCAN_STAGE, 0, 1)
        summary = session.rescan(dataset)
        yield Progress(RESCAN_STAGE, 1, 1, rescan_words(summary))
        result = yield from run_and_save(session, key)
        return RunOutput(session, result, dataset)

    return steps


def known_good_steps(
    session: InspectionSession, dataset: DatasetIndex, names: tuple[str, ...], key: MuscConfig
) -> Steps:
    """Score ``dataset`` (the batch plus known-good parts); only the added parts are extracted."""

    def steps() -> Generator[Progress, None, RunOutput]:
        yield Progress(RESCAN_STAGE, 0, 1)
        summary = session.rescan(dataset)
        yield Progress(RESCAN_STAGE, 1, 1, rescan_words(summary))
        result = yield from run_and_save(session, key)
        return RunOutput(session, result, dataset, known_good=names)

    return steps


def rescore_steps(session: InspectionSession, changes: dict[str, Any]) -> Callable[[], Generator]:
    """Apply cheap config changes and re-score from the cached tables (in the worker thread)."""

    def steps() -> Generator[Progress, None, ScoreResult]:
        yield Progress(Stage.READ_OUT, 0, 1)
        if changes:  # update() drops nothing for cheap fields; it only swaps the config
            session.update(session.config.replace(**changes))
        return session.rescore()

    return steps
