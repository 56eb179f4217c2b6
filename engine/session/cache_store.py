"""Where session files live, how much disk they take, and the least-recently-used size cap.

A session file's modification time is its last use: saving writes it and loading touches it
(:func:`touch`), so :func:`enforce_cap` removes the files used longest ago first, whatever their
age. Only our own files are ever removed: ``<sha256>.h5`` session files and the temporary files
an interrupted save leaves behind (``.<sha256>.h5.*.tmp``). Two names of one file (a hard link
for a second key, see :func:`engine.session.cache.save_session`) count once and go together.
"""

from __future__ import annotations

import logging
import os
import re
import time
from pathlib import Path

log = logging.getLogger(__name__)

DEFAULT_CAP_BYTES = 4 * 1024**3
CAP_ENV = "MUSC_CACHE_MAX_BYTES"
# a temporary file older than this belongs to no save still running (a save takes seconds)
STALE_TEMP_S = 3600.0
_SESSION_NAME = re.compile(r"[0-9a-f]{64}\.h5")
_TEMP_NAME = re.compile(r"\.[0-9a-f]{64}\.h5\..+\.tmp")


def cache_dir() -> Path:
    """``$MUSC_CACHE_DIR/sessions`` (default ``~/.cache/musc-inspector/sessions``)."""
    root = os.environ.get("MUSC_CACHE_DIR") or Path.home() / ".cache" / "musc-inspector"
    return Path(root) / "sessions"


def cap_bytes() -> int:
    """The size cap: ``$MUSC_CACHE_MAX_BYTES`` when set to a whole number, else the default."""
    value = os.environ.get(CAP_ENV, "").strip()
    if not value:
        return DEFAULT_CAP_BYTES
    try:
        return max(0, int(value))
    except ValueError:
        log.warning("%s=%r is not a number of bytes; using %d", CAP_ENV, value, DEFAULT_CAP_BYTES)
        return DEFAULT_CAP_BYTES


def touch(path: Path) -> None:
    """Mark ``path`` as used now (its mtime), so the cap evicts it last."""
    try:
        os.utime(path)
    except OSError as error:  # a read-only cache still serves hits
        log.debug("could not mark %s as used: %s", path, error)


def _names(pattern: re.Pattern[str]) -> list[Path]:
    try:
        return [p for p in cache_dir().iterdir() if pattern.fullmatch(p.name)]
    except OSError:  # no cache folder yet
        return []


def _inode(path: Path) -> tuple[int, int] | None:
    try:
        stat = path.stat()
    except OSError:  # removed meanwhile (another process evicting)
        return None
    return stat.st_dev, stat.st_ino


def _files() -> dict[tuple[int, int], tuple[list[Path], int, float]]:
    """Session files by inode: (names, size, last use), however many names a file has."""
    files: dict[tuple[int, int], tuple[list[Path], int, float]] = {}
    for path in _names(_SESSION_NAME):
        try:
            stat = path.stat()
        except OSError:
            continue
        entry = files.setdefault((stat.st_dev, stat.st_ino), ([], stat.st_size, stat.st_mtime))
        entry[0].append(path)
    return files


def cache_usage() -> int:
    """Bytes taken by the session files (a file with two names counted once)."""
    return sum(size for _, size, _ in _files().values())


def _remove(path: Path) -> bool:
    try:
        path.unlink(missing_ok=True)
    except OSError as error:
        log.warning("could not remove cached session %s: %s", path, error)
        return False
    return True


def enforce_cap(max_bytes: int | None = None, keep: Path | None = None) -> list[Path]:
    """Remove the least recently used session files until they fit in ``max_bytes``.

    Temporary files left by interrupted saves (older than :data:`STALE_TEMP_S`) go too.

    Args:
        max_bytes: The cap; default :func:`cap_bytes` (``$MUSC_CACHE_MAX_BYTES`` or 4 GiB).
        keep: A file never to remove (the one just written or loaded), even when it alone
            exceeds the cap.

    Returns:
        The removed session files, least recently used first.
    """
    limit = cap_bytes() if max_bytes is None else max_bytes
    now = time.time()
    for temp in _names(_TEMP_NAME):
        try:
            if now - temp.stat().st_mtime > STALE_TEMP_S:
                _remove(temp)
        except OSError:
            continue
    kept = _inode(Path(keep)) if keep is not None else None
    files = sorted(_files().items(), key=lambda item: item[1][2])
    total = sum(size for _, (_, size, _) in files)
    removed: list[Path] = []
    for inode, (names, size, _) in files:
        if total <= limit:
            break
        if inode == kept:
            continue
        if all([_remove(name) for name in names]):  # a list: try every name
            total -= size
            removed.extend(names)
    if removed:
        log.info("session cache over %d bytes: removed %d least recently used", limit,
                 len(removed))  # fmt: skip
    return removed


def clear_cache() -> int:
    """Remove every session file and leftover temporary file of the cache.

    Returns:
        The bytes freed. Files of other programs in the folder are left alone.
    """
    freed = 0
    for names, size, _ in _files().values():
        if all([_remove(name) for name in names]):  # a list: try every name
            freed += size
    for temp in _names(_TEMP_NAME):
        try:
            size = temp.stat().st_size
        except OSError:
            continue
        if _remove(temp):
            freed += size
    return freed
