"""The manifest that marks a folder as a complete ``musc`` output set.

It is written last, after every other file of the run, so its presence means the set is
complete. Discovery skips folders that hold one (a run never scores its own outputs) and the
CLI replaces such a folder as a whole, while it refuses to replace a folder it did not write.
This module imports only the standard library so that discovery can use it cheaply.
"""

from __future__ import annotations

import json
import os
import time
from pathlib import Path
from typing import Any

from engine import __version__

MANIFEST_NAME = "musc-manifest.json"
TOOL_NAME = "musc-inspector"


def list_files(folder: Path) -> dict[str, int]:
    """Every regular file under ``folder`` (the manifest excepted) with its size in bytes.

    Keys are POSIX paths relative to ``folder``, sorted.
    """
    files = {}
    for path in sorted(folder.rglob("*")):
        if path.is_file() and not path.is_symlink() and path.name != MANIFEST_NAME:
            files[path.relative_to(folder).as_posix()] = path.stat().st_size
    return files


def manifest_document(folder: Path, extra: dict[str, Any] | None = None) -> dict[str, Any]:
    """The manifest of ``folder``: tool, version, UTC time, files with sizes, and ``extra``."""
    document: dict[str, Any] = {
        "tool": TOOL_NAME,
        "version": __version__,
        "time": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        "files": list_files(folder),
    }
    document.update(extra or {})
    return document


def write_manifest(folder: Path, extra: dict[str, Any] | None = None) -> Path:
    """Write the manifest of ``folder`` into it; call this after every other file is written."""
    # Imported here: export pulls in image and HDF5 libraries that discovery does not need.
    from engine.outputs.export import write_text

    target = folder / MANIFEST_NAME
    write_text(target, json.dumps(manifest_document(folder, extra), indent=2) + "\n")
    return target


def read_manifest(folder: str | Path) -> dict[str, Any] | None:
    """The manifest of ``folder`` if it holds a readable one written by this tool, else None."""
    path = Path(folder) / MANIFEST_NAME
    try:
        document = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, ValueError):
        return None
    if not isinstance(document, dict) or document.get("tool") != TOOL_NAME:
        return None
    return document


def is_output_folder(path: str | Path) -> bool:
    """True when ``path`` is a folder holding a manifest written by this tool."""
    return os.path.isdir(path) and read_manifest(path) is not None


def unlisted_entries(folder: Path, document: dict[str, Any]) -> list[str]:
    """Files under ``folder`` added or changed in size since its manifest was written.

    Replacing the folder would lose them, so the CLI asks for ``--force`` first.
    """
    listed = document.get("files", {})
    return [name for name, size in list_files(folder).items() if listed.get(name) != size]
