"""The GUI side of the on-disk session cache (:mod:`engine.session.cache`).

Opening a folder first tries the cache: on a hit the result shows at once (no background run);
on a miss the first run saves its session at the end, in the worker thread (a small synthetic
line takes ~0.1 s, cable_gland's 53 samples a few seconds), so the GUI never waits for it.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Generator
from typing import Any

from engine.config import MuscConfig
from engine.data.samples import DatasetIndex
from engine.session.cache import load_session, save_session

log = logging.getLogger(__name__)


def restore_cached(window: Any, dataset: DatasetIndex) -> bool:
    """Show the cached session of ``dataset`` in ``window``; False on a miss."""
    started = time.perf_counter()
    session = load_session(dataset, window.state.config)
    if session is None:
        return False
    try:
        result = session.rescore()
    except Exception as error:  # a cache that cannot re-score is a miss
        log.warning("ignoring a cached session that cannot be re-scored: %s", error)
        return False
    window.session = session
    window._returned(result)
    window.rerun_action.setEnabled(True)
    seconds = time.perf_counter() - started
    window.last_restore_s = seconds
    window.statusBar().showMessage(
        f"Restored {len(result.samples)} parts from cache in {seconds:.1f} s", 10000
    )
    return True


def update_run_and_save(session: Any, config: MuscConfig):
    """A steps factory for Apply: switch to ``config``, rerun the stale stages, cache the result."""

    def steps() -> Generator[Any, None, Any]:
        session.update(config)
        return (yield from run_and_save(session, config))

    return steps


def run_and_save(session: Any, config: MuscConfig) -> Generator[Any, None, Any]:
    """``session.run()``, then save the session keyed by ``config`` (the one it was opened with).

    A failed save (disk full, read-only cache) is logged and otherwise ignored.
    """
    result = yield from session.run()
    try:
        save_session(session, config=config)
    except Exception as error:  # the cache is an optimisation only
        log.warning("could not cache the session: %s", error)
    return result
