"""A run's outputs as one set: written into a hidden folder beside the target, swapped in last.

A reader of ``--out`` sees either the previous complete set or the new complete set, never a
mix of two runs and never half-written files:

1. :func:`check_target` decides, before any work, whether the target may be replaced: a
   missing or empty folder, or one holding our manifest (an earlier run; replaced as a whole,
   never merged); a folder we did not write is refused unless forced.
2. :func:`staged_output` creates ``.<name>.musc-tmp.<pid>.<host>.<random>`` beside the target and
   removes it on any exit that did not commit (error, Ctrl-C, SIGTERM turned into an exception).
3. :func:`commit` writes the manifest last and swaps the staging folder in with two renames,
   with SIGINT/SIGTERM held back so the swap cannot be cut in half.
"""

from __future__ import annotations

import os
import re
import shutil
import signal
import socket
import tempfile
import threading
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from engine.errors import InvalidInputError
from engine.outputs.export import dir_mode
from engine.outputs.manifest import (
    MANIFEST_NAME,
    is_output_folder,
    read_manifest,
    unlisted_entries,
    write_manifest,
)

_HELD_SIGNALS = (signal.SIGINT, signal.SIGTERM)
_LEFTOVER = re.compile(r"\.musc-(?:tmp|old)\.(\d+)\.([A-Za-z0-9]*)\.")
_CHOOSE = "Choose a folder for --out."


@dataclass(frozen=True)
class Target:
    """Where a run's outputs go, and what is there now.

    Attributes:
        path: The absolute output folder.
        note: One line to show the user when something is replaced (None when nothing is).
    """

    path: Path
    note: str | None = None


def output_path(out: str | Path) -> Path:
    """The absolute, normalised output folder (a symlink to a folder is followed)."""
    path = Path(os.path.abspath(Path(out).expanduser()))
    return path.resolve() if path.is_symlink() else path


def check_target(out: str | Path, *, force: bool = False, protect: Sequence[Path] = ()) -> Target:
    """Decide whether ``out`` may receive a new output set.

    Nothing is written, except that what killed runs left beside ``out`` is cleared first
    (:func:`remove_leftovers`), so the decision sees the folder as it really is.

    Args:
        out: The output folder the user named.
        force: Replace a non-empty folder that holds no musc output (its contents are lost).
        protect: Input folders; an output folder that is one of them or holds one is refused
            even with ``force``, since replacing it would delete the input.

    Raises:
        InvalidInputError: The target is a file, holds the input, or is a non-empty folder we
            did not write (without ``force``).
    """
    path = output_path(out)
    if path.parent == path:
        raise InvalidInputError(f"{path}: cannot write outputs to a filesystem root. {_CHOOSE}")
    remove_leftovers(path)
    for kept in protect:
        kept = Path(os.path.abspath(Path(kept).expanduser())).resolve()
        if kept == path.resolve() or path.resolve() in kept.parents:
            raise InvalidInputError(
                f"{path}: --out holds the dataset {kept}; replacing it would delete the input. "
                "Choose an --out folder outside the dataset, or a new subfolder inside it."
            )
    if path.exists() and not path.is_dir():
        raise InvalidInputError(f"{path}: is a file, not a folder. {_CHOOSE}")
    if os.path.ismount(path):
        raise InvalidInputError(
            f"{path}: is a mount point, which cannot be swapped for the new outputs. "
            "Choose a subfolder of it for --out."
        )
    entries = _entries(path)
    if not entries:
        return Target(path)
    manifest = read_manifest(path)
    if manifest is not None:
        added = unlisted_entries(path, manifest)
        if not added:
            when = manifest.get("time", "an earlier run")
            return Target(path, f"replacing the earlier output in {path} (from {when}) as a whole")
        if not force:
            raise InvalidInputError(
                f"{path}: a musc output in which {len(added)} file(s) were added or changed "
                f"since it was written ({added[0]}); replacing it would lose them. Move them "
                "out, choose another --out folder, or pass --force to replace it anyway."
            )
        return Target(path, f"--force: replacing {path} with {len(added)} file(s) changed by hand")
    if not force and is_output_folder(path.parent):
        raise InvalidInputError(
            f"{path}: is part of the musc output {path.parent}; writing into it would leave "
            "that output half old, half new. Use --out for the whole folder, choose another "
            "--out folder, or pass --force to replace this one."
        )
    if not force:
        raise InvalidInputError(
            f"{path}: folder is not empty and holds no musc output (no {MANIFEST_NAME}). Choose "
            "a new or empty --out folder, or pass --force to replace it (its contents are lost)."
        )
    return Target(path, f"--force: replacing {path} ({len(entries)} entries, not a musc output)")


def _entries(path: Path) -> list[str]:
    if not path.is_dir():
        return []
    try:
        return sorted(os.listdir(path))
    except OSError as error:
        raise InvalidInputError(
            f"{path}: cannot list the output folder ({error.strerror or error}). "
            "Choose another --out folder or fix its permissions."
        ) from None


def _host() -> str:
    return re.sub(r"[^A-Za-z0-9]", "", socket.gethostname())[:32]


def _hidden_prefix(target: Path, kind: str) -> str:
    # pid and host in the name let a later run remove what a killed run (SIGKILL) left behind
    return f".{target.name}.musc-{kind}.{os.getpid()}.{_host()}."


def remove_leftovers(target: Path) -> list[Path]:
    """Remove staging folders beside ``target`` left by runs of this host that no longer live.

    A run killed outright (SIGKILL, power loss) between the two renames of the swap leaves the
    previous set under its hidden "old" name and no ``target``: that set is put back instead.

    Returns:
        The folders removed or put back.
    """
    removed = []
    prefix = f".{target.name}"
    try:
        siblings = [p for p in target.parent.iterdir() if p.name.startswith(prefix)]
    except OSError:
        return []
    for sibling in siblings:
        match = _LEFTOVER.match(sibling.name[len(prefix) :])
        if match is None or match.group(2) != _host() or _alive(int(match.group(1))):
            continue
        if ".musc-old." in sibling.name and not os.path.lexists(target):
            os.rename(sibling, target)
        else:
            shutil.rmtree(sibling, ignore_errors=True)
        removed.append(sibling)
    return removed


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except OSError:
        return True  # exists, owned by someone else
    return True


@contextmanager
def held_signals(*, deliver: bool = True) -> Iterator[list[int]]:
    """Hold SIGINT and SIGTERM back for the duration.

    Args:
        deliver: Deliver the first held signal when the body ends normally. When the body
            raises, its exception goes on and the signal is dropped: the program is stopping
            already.

    Yields:
        The signals received so far (filled in while the body runs).

    Only possible on the main thread (where Python runs signal handlers); elsewhere a no-op.
    """
    received: list[int] = []
    if threading.current_thread() is not threading.main_thread():
        yield received
        return
    previous = {sig: signal.getsignal(sig) for sig in _HELD_SIGNALS}
    held = [sig for sig, handler in previous.items() if handler is not None]
    for sig in held:
        signal.signal(sig, lambda signum, _frame: received.append(signum))
    try:
        yield received
    finally:
        for sig in held:
            signal.signal(sig, previous[sig])
    if received and deliver:
        signal.raise_signal(received[0])


@contextmanager
def staged_output(target: Path) -> Iterator[Path]:
    """A fresh hidden staging folder beside ``target``, removed unless :func:`commit` ran.

    Raises:
        InvalidInputError: The folder beside ``target`` is not writable.
    """
    try:
        target.parent.mkdir(parents=True, exist_ok=True)
        staging = Path(tempfile.mkdtemp(dir=target.parent, prefix=_hidden_prefix(target, "tmp")))
        os.chmod(staging, dir_mode())  # mkdtemp makes it private (0700)
    except OSError as error:
        raise InvalidInputError(
            f"{target}: output folder is not writable: cannot create a folder in "
            f"{target.parent} ({error.strerror or error}); musc writes the new outputs beside "
            "--out and swaps them in. Choose another --out folder or fix its permissions."
        ) from None
    try:
        yield staging
    finally:
        with held_signals():  # a second Ctrl-C must not stop the clean-up half-way
            shutil.rmtree(staging, ignore_errors=True)


def commit(staging: Path, target: Path, extra: dict[str, Any] | None = None) -> int | None:
    """Write the manifest into ``staging`` and put it in place of ``target`` (old one removed).

    SIGINT and SIGTERM are held meanwhile, so the swap is never cut half-way.

    Returns:
        The signal that arrived meanwhile (the caller stops now, with the new set in place), or
        None.

    Raises:
        InvalidInputError: The swap failed; the previous ``target`` is back in place and the
            new set was kept under a visible name that the message gives.
    """
    with held_signals(deliver=False) as received:
        write_manifest(staging, extra)
        try:
            _swap(staging, target)
        except OSError as error:
            # a finished run is never thrown away: keep it beside the target, visibly
            kept = target.with_name(f"{target.name}.new-{os.getpid()}")
            os.rename(staging, kept)
            raise InvalidInputError(
                f"{target}: could not be replaced ({error.strerror or error}); this run's "
                f"outputs are complete in {kept}. Move them where you want them."
            ) from None
    return received[0] if received else None


def _swap(staging: Path, target: Path) -> None:
    old = None
    if target.exists() or target.is_symlink():
        # rename onto an empty folder replaces it; mkdtemp reserves a unique name
        old = Path(tempfile.mkdtemp(dir=target.parent, prefix=_hidden_prefix(target, "old")))
        os.rename(target, old)
    try:
        os.rename(staging, target)
    except OSError:
        if old is not None:
            os.rename(old, target)
        raise
    if old is not None:
        shutil.rmtree(old, ignore_errors=True)
