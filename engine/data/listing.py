"""Listing dataset folders for discovery: sorted, never our own outputs, nothing lost silently.

Every folder or link that cannot be read is recorded once as a :class:`SkippedFile` naming the
path that is really at fault, and the walk goes on with the rest.
"""

from __future__ import annotations

import os
import stat
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from engine.data.readers import IMAGE_EXTENSIONS
from engine.data.samples import SkippedFile
from engine.outputs.manifest import is_output_folder

__all__ = ["Walker", "is_excluded_folder", "resolve_all"]


def resolve_all(paths: Sequence[str | os.PathLike[str]]) -> tuple[Path, ...]:
    """Absolute, symlink-free versions of ``paths`` (they need not exist)."""
    return tuple(Path(p).expanduser().resolve() for p in paths)


def is_excluded_folder(folder: Path, exclude: tuple[Path, ...]) -> bool:
    """Whether ``folder`` lies under an excluded path or holds a musc output manifest."""
    resolved = folder.resolve()
    if any(resolved.is_relative_to(ex) for ex in exclude):  # the folder itself or inside one
        return True
    return is_output_folder(folder)


def _culprit(path: Path) -> Path:
    """The deepest of ``path`` and its parents that can be looked at.

    When ``a/b/c`` cannot be examined because ``a/b`` may not be searched, the folder to fix
    is ``a/b``: naming ``a/b/c`` would point the user at a path that seems not to exist.
    """
    for candidate in (path, *path.parents):
        try:
            os.stat(candidate)
        except OSError:
            continue
        return candidate
    return path


@dataclass
class Walker:
    """Folder listings of one discovery pass.

    Attributes:
        exclude: Resolved folders whose contents are ignored (e.g. the run's output folder).
        skipped: Unreadable folders, broken links and the like, one entry per path.
    """

    exclude: tuple[Path, ...] = ()
    skipped: list[SkippedFile] = field(default_factory=list)

    def report(self, path: Path, reason: str) -> None:
        """Record ``path`` as skipped, once."""
        if all(entry.path != path for entry in self.skipped):
            self.skipped.append(SkippedFile(path, reason))

    def _unreadable(self, path: Path, err: OSError) -> None:
        where = _culprit(path)
        what = err.strerror or type(err).__name__
        self.report(
            where, f"cannot open the folder ({what}); its files are left out. Check permissions."
        )

    def kind(self, path: Path) -> str | None:
        """``"dir"``, ``"file"``, ``"other"``, or None when absent or unreadable (recorded)."""
        try:
            mode = os.stat(path).st_mode
        except (FileNotFoundError, NotADirectoryError):
            return None
        except OSError as err:
            self._unreadable(path, err)
            return None
        return "dir" if stat.S_ISDIR(mode) else "file" if stat.S_ISREG(mode) else "other"

    def is_dir(self, path: Path) -> bool:
        """Whether ``path`` is a folder (errors are recorded, not raised)."""
        return self.kind(path) == "dir"

    def is_file(self, path: Path) -> bool:
        """Whether ``path`` is a regular file (errors are recorded, not raised)."""
        return self.kind(path) == "file"

    def entries(self, folder: Path) -> list[tuple[Path, str]]:
        """Visible entries of ``folder`` sorted by name, each with its kind ("dir" or "file").

        Hidden names, excluded folders and folders holding a musc output manifest are left out;
        broken links and unreadable folders are recorded. [] if ``folder`` is no folder.
        """
        if not self.is_dir(folder):
            return []
        try:
            with os.scandir(folder) as scan:
                raw = sorted((entry.name, entry) for entry in scan)
        except OSError as err:
            self._unreadable(folder, err)
            return []
        found = []
        for name, entry in raw:
            path = folder / name
            kind = self._entry_kind(path, entry)
            if name.startswith(".") or kind is None:
                continue
            if kind == "dir" and is_excluded_folder(path, self.exclude):
                continue  # never index what a run wrote (its heatmaps are PNGs too)
            found.append((path, kind))
        return found

    def _entry_kind(self, path: Path, entry: os.DirEntry[str]) -> str | None:
        try:
            if entry.is_dir():
                return "dir"
            if entry.is_file():
                return "file"
            if entry.is_symlink() and not path.name.startswith("."):
                target = os.readlink(path)
                self.report(path, f"broken link to {target} (target not found); left out")
        except OSError as err:
            self._unreadable(path, err)
        return None

    def subdirs(self, folder: Path) -> list[Path]:
        """Visible sub-folders of ``folder``, sorted."""
        return [path for path, kind in self.entries(folder) if kind == "dir"]

    def images(self, folder: Path) -> list[Path]:
        """Files of ``folder`` with a supported image extension (any case), sorted."""
        return [
            path
            for path, kind in self.entries(folder)
            if kind == "file" and path.suffix.lower() in IMAGE_EXTENSIONS
        ]

    def files_where_folders_belong(self, folder: Path, what: str) -> None:
        """Report plain files inside ``folder``, which should hold only folders of ``what``."""
        for path, kind in self.entries(folder):
            if kind == "file":
                self.report(path, f"expected a folder of {what} here, found a file; left out")

    def first_file(self, candidates: Iterable[Path]) -> Path | None:
        """The first candidate that is a regular file, or None."""
        return next((path for path in candidates if self.is_file(path)), None)
