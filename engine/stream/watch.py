"""Which parts in a watched folder are complete, in the order they arrived (line mode).

A camera (and a 3D sensor) drops one part every few seconds into a folder. watchdog's file
events only say "something changed": the folder is then indexed again with batch discovery's
own scanners (:func:`engine.data.discover.discover_parts`), so a part gets exactly the name,
label and files a batch run would give it, in any layout discovery supports.

A part is complete ("settled") when its RGB image exists (and its XYZ map when the run needs
one), every file of it is non-empty, and each file's (size, mtime_ns) is the same at two looks
``settle_seconds`` apart. A file still being written is never handed out half, even when the
writer pauses for less than the settle time. Each part is handed out once; a change to its
files afterwards is logged at debug level, not scored again.
"""

from __future__ import annotations

import logging
import math
import os
import threading
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from types import TracebackType

from watchdog.events import FileSystemEvent, FileSystemEventHandler
from watchdog.observers import Observer
from watchdog.observers.api import BaseObserver
from watchdog.observers.polling import PollingObserver

from engine.data.discover import discover_parts
from engine.data.listing import resolve_all
from engine.data.readers import probe_header
from engine.data.samples import Sample, SkippedFile
from engine.errors import InvalidInputError

__all__ = ["ArrivedPart", "PartWatcher", "arrival_order", "index_parts"]

logger = logging.getLogger(__name__)

# Events that mean a file appeared, changed or went away. Indexing opens every file to probe
# its header, which raises "opened" and "closed_no_write" events: reacting to those would
# re-index forever.
_CHANGE_EVENTS = frozenset({"created", "modified", "moved", "deleted", "closed", "attrib"})
# Re-indexing opens every file of the folder, so while events keep coming (a file being
# written), index at most this often, and never spend more than about 1/(1+N) of the time
# indexing a large folder (N = _INDEX_BACKOFF).
_MIN_INDEX_GAP = 0.05
_INDEX_BACKOFF = 4.0

_Snapshot = tuple[tuple[int, int], ...]


@dataclass(frozen=True)
class ArrivedPart:
    """A part whose files are complete.

    Attributes:
        sample: The part as batch discovery gives it (name, files, label, defect type).
        arrived: ``time.time()`` when it was found complete; latency is measured from here.
    """

    sample: Sample
    arrived: float


def index_parts(
    folder: Path, exclude: Sequence[Path] = ()
) -> tuple[list[Sample], list[SkippedFile]]:
    """Parts in ``folder`` in any supported layout, with the files that cannot be used.

    Sample names are those of a batch run's discovery of the same folder. Unlike batch
    discovery, 0 or 1 parts is fine: the folder is still filling.

    Raises:
        InvalidInputError: ``folder`` is missing, is a musc output folder, or holds several
            categories.
    """
    index = discover_parts(folder, exclude=exclude)
    return index.samples, index.skipped


def arrival_order(samples: list[Sample]) -> list[Sample]:
    """``samples`` sorted by the newest mtime of each part's files, then by name."""
    return sorted(samples, key=lambda sample: (_newest_mtime(sample), sample.name))


def _files(sample: Sample) -> list[Path]:
    return [p for p in (sample.rgb_path, sample.xyz_path, sample.mask_path) if p is not None]


def _newest_mtime(sample: Sample) -> int:
    newest = 0
    for path in _files(sample):
        try:
            newest = max(newest, os.stat(path).st_mtime_ns)
        except OSError:
            pass  # vanished since indexing: order by the files that are left
    return newest


def _snapshot(sample: Sample, needs_xyz: bool) -> _Snapshot | None:
    """(size, mtime_ns) of each file of the part; None while a needed file is absent or empty."""
    if sample.rgb_path is None or (needs_xyz and sample.xyz_path is None):
        return None
    stats = []
    for path in _files(sample):
        try:
            stat = os.stat(path)
        except OSError:
            return None
        if stat.st_size == 0:
            return None
        stats.append((stat.st_size, stat.st_mtime_ns))
    return tuple(stats)


@dataclass(frozen=True)
class _Pending:
    """A part seen with these file stats since ``since`` (time.monotonic())."""

    sample: Sample
    snapshot: _Snapshot
    since: float


class _UnusableFiles:
    """Skipped files of the latest index, reported once each after they stay unchanged."""

    def __init__(self, settle_seconds: float) -> None:
        self.settle_seconds = settle_seconds
        self._seen: dict[Path, tuple[tuple[int, int] | None, float, SkippedFile]] = {}
        self._reported: set[tuple[Path, tuple[int, int] | None]] = set()

    def update(self, skipped: list[SkippedFile]) -> None:
        now, seen = time.monotonic(), {}
        for entry in skipped:
            if "without a matching image" in entry.reason:
                continue  # the image may still be on its way
            stat = _stat(entry.path)
            before = self._seen.get(entry.path)
            since = before[1] if before is not None and before[0] == stat else now
            seen[entry.path] = (stat, since, entry)
        self._seen = seen

    def take(self) -> list[SkippedFile]:
        now, ready = time.monotonic(), []
        for path, (stat, since, entry) in self._seen.items():
            if now - since >= self.settle_seconds and _stat(path) == stat:
                # the index may have read the file while it was still being written, and its
                # size stopped changing before this stat: unusable only if it still is now
                if "header" in entry.reason and probe_header(path) is None:
                    continue
                if (path, stat) not in self._reported:
                    self._reported.add((path, stat))
                    ready.append(entry)
        return ready


def _stat(path: Path) -> tuple[int, int] | None:
    try:
        stat = os.stat(path)
    except OSError:
        return None
    return stat.st_size, stat.st_mtime_ns


class _ChangeHandler(FileSystemEventHandler):
    """Sets ``changed`` on any change outside the excluded folders (runs in watchdog's thread)."""

    def __init__(self, changed: threading.Event, excluded: tuple[Path, ...]):
        self._changed = changed
        self._excluded = excluded

    def on_any_event(self, event: FileSystemEvent) -> None:
        if event.event_type not in _CHANGE_EVENTS:
            return
        paths = [os.fsdecode(p) for p in (event.src_path, getattr(event, "dest_path", "")) if p]
        if all(any(Path(p).is_relative_to(ex) for ex in self._excluded) for p in paths):
            return  # our own output folder: what the run writes must not wake the watcher
        self._changed.set()


class PartWatcher:
    """Hands out the parts of a folder once each, as they become complete.

    Keys are the parts' RGB files: a part is known by its image, whatever name it gets.

    Args:
        folder: The folder the camera writes into (any layout discovery supports).
        needs_xyz: Wait for each part's XYZ point map too (3D or fused scoring).
        settle_seconds: How long a part's files must stay unchanged to count as complete.
        exclude: Folders never indexed, e.g. the stream's output folder inside ``folder``.
        polling: Use watchdog's polling observer instead of OS events; needed on network
            shares, where the OS reports no events for files written by another machine.
    """

    def __init__(
        self,
        folder: Path,
        *,
        needs_xyz: bool,
        settle_seconds: float = 0.5,
        exclude: Sequence[Path] = (),
        polling: bool = False,
    ):
        if not (settle_seconds >= 0 and math.isfinite(settle_seconds)):
            raise InvalidInputError(f"settle_seconds must be >= 0, got {settle_seconds}.")
        self.folder = Path(folder)
        self.needs_xyz = needs_xyz
        self.settle_seconds = float(settle_seconds)
        self.exclude = tuple(Path(p) for p in exclude)
        self._polling = polling
        self._changed = threading.Event()
        self._observer: BaseObserver | None = None
        self._next_index = -math.inf
        self._candidates: dict[Path, Sample] = {}  # indexed, not yet handed out
        self._pending: dict[Path, _Pending] = {}  # candidates whose needed files are there
        self._handed_out: dict[Path, _Snapshot | None] = {}  # and their stats at the time
        self._at_start: dict[Path, _Snapshot] = {}  # complete-looking parts present at start()
        self._unusable = _UnusableFiles(self.settle_seconds)

    def existing(self) -> list[ArrivedPart]:
        """Parts already in the folder and complete now (used by ``--once``), arrival order.

        Blocks for ``settle_seconds`` when there are parts, to see that their files are still.
        Parts returned here are never returned again by :meth:`poll`.
        """
        samples = self._index_or_raise()
        first = {}
        for sample in samples:
            snapshot = _snapshot(sample, self.needs_xyz)
            if snapshot is not None and sample.rgb_path not in self._handed_out:
                first[sample.rgb_path] = (sample, snapshot)
        if first:
            time.sleep(self.settle_seconds)
        complete = [s for s, snap in first.values() if _snapshot(s, self.needs_xyz) == snap]
        return self._hand_out(complete)

    def start(self) -> None:
        """Start watching the folder (recursively); parts present now count as already seen.

        A part still being written now (its files change after this call) or still missing a
        needed file is handed out by :meth:`poll` once complete.

        Raises:
            InvalidInputError: The folder is unusable (see :func:`index_parts`).
        """
        if self._observer is not None:
            return
        samples = self._index_or_raise()
        self._at_start = {
            s.rgb_path: snap
            for s in samples
            if s.rgb_path is not None and (snap := _snapshot(s, self.needs_xyz)) is not None
        }
        self._observer = self._start_observer()
        self._changed.set()  # the first poll indexes again: files may have landed meanwhile

    def poll(self, timeout: float) -> list[ArrivedPart]:
        """Wait up to ``timeout`` seconds for parts to become complete.

        Returns:
            The parts that became complete since the last call, in arrival order, each exactly
            once (possibly several, possibly none). Returns as soon as one is complete.

        Raises:
            RuntimeError: :meth:`start` was not called.
            InvalidInputError: The folder became unusable (deleted, or a second category).
        """
        if self._observer is None:
            raise RuntimeError("PartWatcher.poll: call start() first (or use it as a context).")
        deadline = time.monotonic() + timeout
        while True:
            complete = self._step()
            now = time.monotonic()
            if complete or now >= deadline:
                return self._hand_out(complete)
            wake = deadline
            if self._pending:  # a pending part is due for its second look
                due = min(p.since for p in self._pending.values()) + self.settle_seconds
                wake = min(wake, due + 1e-3)
            if self._changed.is_set():  # an index is due but rate-limited
                time.sleep(max(0.0, min(wake, self._next_index) - now))
            else:
                self._changed.wait(max(0.0, wake - now))

    def stop(self) -> None:
        """Stop watching (idempotent)."""
        observer, self._observer = self._observer, None
        if observer is not None:
            observer.stop()
            observer.join(timeout=5)

    def __enter__(self) -> PartWatcher:
        self.start()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()

    def _start_observer(self) -> BaseObserver:
        handler = _ChangeHandler(self._changed, resolve_all(self.exclude))
        watched = str(self.folder.expanduser().resolve())  # events then carry resolved paths
        observer = PollingObserver() if self._polling else Observer()
        observer.schedule(handler, watched, recursive=True)
        try:
            observer.start()
        except OSError as err:  # e.g. the inotify watch limit; polling works everywhere
            logger.warning("file events unavailable for %s (%s); polling instead", watched, err)
            observer = PollingObserver()
            observer.schedule(handler, watched, recursive=True)
            observer.start()
        return observer

    def take_unusable(self) -> list[SkippedFile]:
        """Files that are in the folder, unchanged for ``settle_seconds``, and cannot be used
        (e.g. a corrupt image), each once: the caller logs them, since such a part never
        becomes complete. XYZ maps waiting for their image are not reported."""
        return self._unusable.take()

    def _index(self) -> list[Sample] | None:
        """The folder's parts, or None when a file vanished while it was being indexed."""
        try:
            samples, skipped = index_parts(self.folder, self.exclude)
            self._unusable.update(skipped)
            return samples
        except OSError as err:
            logger.debug(
                "indexing %s failed (%s); trying again on the next round", self.folder, err
            )
            return None

    def _index_or_raise(self) -> list[Sample]:
        samples = self._index()
        if samples is None:  # a file vanished mid-index: one more try, which may raise
            samples, skipped = index_parts(self.folder, self.exclude)
            self._unusable.update(skipped)
        return samples

    def _step(self) -> list[Sample]:
        """Re-index if something changed, then return the candidates that have settled."""
        if self._changed.is_set() and time.monotonic() >= self._next_index:
            self._changed.clear()
            began = time.monotonic()
            samples = self._index()
            took = time.monotonic() - began
            self._next_index = time.monotonic() + max(_MIN_INDEX_GAP, _INDEX_BACKOFF * took)
            if samples is None:
                self._changed.set()
            else:
                self._refresh(samples)
        complete = []
        for key, sample in list(self._candidates.items()):
            snapshot = _snapshot(sample, self.needs_xyz)
            now = time.monotonic()
            seen = self._pending.get(key)
            if snapshot is None:
                self._pending.pop(key, None)
            elif seen is None or seen.snapshot != snapshot or seen.sample != sample:
                self._pending[key] = _Pending(sample, snapshot, now)  # (re)start the clock
            elif now - seen.since >= self.settle_seconds:
                del self._pending[key], self._candidates[key]
                if self._at_start.pop(key, None) == snapshot:
                    self._handed_out[key] = snapshot  # there, untouched, since start()
                else:
                    complete.append(sample)
        return complete

    def _refresh(self, samples: list[Sample]) -> None:
        """Take the parts of a fresh index as candidates, leaving out those handed out."""
        candidates = {}
        for sample in samples:
            key = sample.rgb_path
            if key is None:
                continue  # an XYZ map without its image yet
            if key in self._handed_out:
                self._note_late_change(key, sample)
            else:
                candidates[key] = sample
        self._candidates = candidates
        self._pending = {k: p for k, p in self._pending.items() if k in candidates}

    def _note_late_change(self, key: Path, sample: Sample) -> None:
        snapshot = _snapshot(sample, self.needs_xyz)
        if snapshot is not None and snapshot != self._handed_out[key]:
            logger.debug("%s: files changed after the part was handed out; not again", key)
            self._handed_out[key] = snapshot  # log each change once

    def _hand_out(self, samples: list[Sample]) -> list[ArrivedPart]:
        arrived = time.time()
        for sample in samples:
            self._handed_out[sample.rgb_path] = _snapshot(sample, self.needs_xyz)
            self._candidates.pop(sample.rgb_path, None)
            self._pending.pop(sample.rgb_path, None)
        return [ArrivedPart(sample, arrived) for sample in arrival_order(samples)]
