"""Read the next items on worker threads while the caller computes on the current one.

Decoding (Pillow, tifffile), resizing (torch) and background removal (numpy, open3d) release
the GIL, so a few threads overlap file reading with the backbone. :func:`prefetched` keeps the
input order and at most ``ahead`` items in flight, so memory stays bounded however many parts
a folder holds.
"""

from __future__ import annotations

import os
from collections import deque
from collections.abc import Callable, Generator, Iterable
from concurrent.futures import Future, ThreadPoolExecutor
from typing import TypeVar

Item = TypeVar("Item")
Value = TypeVar("Value")


def default_workers() -> int:
    """Reader threads: ``MUSC_PREFETCH_WORKERS`` when set (0 = read inline), else up to 4."""
    configured = os.environ.get("MUSC_PREFETCH_WORKERS")
    if configured is not None and configured.strip().isdigit():
        return int(configured)
    # more readers than cores only steal time from the backbone
    return max(1, min(4, len(os.sched_getaffinity(0)) - 1))


def prefetched(
    items: Iterable[Item],
    load: Callable[[Item], Value],
    *,
    workers: int = 2,
    ahead: int | None = None,
) -> Generator[tuple[Item, Future[Value]], None, None]:
    """Each item with the future of ``load(item)``, in order, loaded ahead on worker threads.

    The caller takes ``future.result()`` where it handles that item: an exception raised by
    ``load`` (e.g. an :class:`~engine.errors.InvalidInputError` naming the file) is re-raised
    there, at the item it belongs to, never earlier or at another item.

    Close the generator (``contextlib.closing``) when leaving early: that stops submitting,
    cancels what has not started and joins the threads, so nothing keeps reading files.

    Args:
        items: What to load, e.g. samples.
        load: Called once per item on a worker thread; must be safe to run concurrently with
            itself ``workers`` times.
        workers: Threads; 0 loads inline when the item is reached (no threads at all).
        ahead: Items submitted but not yet handed out, at most; defaults to ``workers``.

    Yields:
        (item, future) pairs in the order of ``items``.
    """
    if workers <= 0:
        for item in items:
            yield item, _run_inline(load, item)
        return
    window = max(1, ahead if ahead is not None else workers)
    source = iter(items)
    pending: deque[tuple[Item, Future[Value]]] = deque()
    pool = ThreadPoolExecutor(max_workers=workers, thread_name_prefix="musc-prefetch")
    try:
        while True:
            # top the window up before handing out the oldest, so the next items load while
            # the caller works on this one
            while len(pending) < window + 1:
                item = next(source, _END)
                if item is _END:
                    break
                pending.append((item, pool.submit(load, item)))
            if not pending:
                return
            yield pending.popleft()
    finally:
        for _, future in pending:
            future.cancel()
        pool.shutdown(wait=True, cancel_futures=True)


_END = object()


def _run_inline(load: Callable[[Item], Value], item: Item) -> Future[Value]:
    """A completed future holding ``load(item)`` or the exception it raised."""
    future: Future[Value] = Future()
    try:
        future.set_result(load(item))
    except Exception as error:  # handed to the caller at .result(), like a worker's error
        future.set_exception(error)
    return future
