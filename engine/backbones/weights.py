"""Finding pretrained weight files: explicit path, installed package, user cache, download.

Factory PCs are often offline, so every failure names the missing file, where it comes from, where
the user can drop it by hand, and which backbone works without it.
"""

from __future__ import annotations

import hashlib
import http.client
import importlib
import logging
import os
import pickle
import re
import uuid
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from engine.errors import InvalidInputError, WeightsUnavailableError

logger = logging.getLogger(__name__)

CACHE_ENV = "MUSC_CACHE_DIR"
OFFLINE_HINT = "use --backbone efficientnet_lite0 (installs offline) or --weights /path/to/file"


@dataclass(frozen=True)
class WeightsSpec:
    """Where one weight file can come from.

    Attributes:
        filename: Name of the file in the user cache.
        url: Download address, or None when the file cannot be downloaded.
        sha256: Expected hex digest, checked after download and on cache hits; None if unknown.
        package_module: Importable module of a weight package that ships the file (offline source).
        package_getter: Dotted attribute of ``package_module``; calling it returns the file's path.
    """

    filename: str
    url: str | None
    sha256: str | None = None
    package_module: str | None = None
    package_getter: str | None = None


POINT_MAE_WEIGHTS = WeightsSpec(
    "pointmae_pretrain.pth",
    "https://github.com/Pang-Yatian/Point-MAE/releases/download/main/pretrain.pth",
    "27ded932bb0a2625d5a8eb006df199b2578598c774aee6d86b985300b6a5fd20",
)


def cache_dir() -> Path:
    """User weight cache: ``$MUSC_CACHE_DIR`` if set, else ``~/.cache/musc-inspector/weights``."""
    env = os.environ.get(CACHE_ENV)
    return Path(env).expanduser() if env else Path.home() / ".cache" / "musc-inspector" / "weights"


# resolve_weights has a ``cache_dir`` parameter that shadows the function inside its body.
_default_cache_dir = cache_dir


def is_cached(spec: WeightsSpec, root: Path | None = None) -> bool:
    """Whether the spec's file is in the cache (existence only: hashing 350 MB is not "quick")."""
    return ((root if root is not None else cache_dir()) / spec.filename).is_file()


def sha256_of(path: Path) -> str:
    """Hex SHA-256 of a file, read in chunks so large checkpoints do not fill memory."""
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def _from_package(spec: WeightsSpec) -> Path | None:
    if not (spec.package_module and spec.package_getter):
        return None
    try:
        obj: object = importlib.import_module(spec.package_module)
    except ImportError:
        return None
    for attr in spec.package_getter.split("."):
        obj = getattr(obj, attr)
    path = Path(obj())  # type: ignore[operator]
    return path if path.is_file() else None


def _unavailable(spec: WeightsSpec, target: Path, why: str, hint: str) -> WeightsUnavailableError:
    where = f"download it from {spec.url} and " if spec.url else "obtain it and "
    return WeightsUnavailableError(
        f"Weights file {spec.filename!r} is not available: {why}. To fix it, {where}put it at "
        f"{target}, or {hint}."
    )


def _download(spec: WeightsSpec, target: Path, progress: bool, hint: str) -> None:
    # Imported here: torch.hub is only needed on the (rare) download path.
    from torch.hub import download_url_to_file

    assert spec.url is not None
    target.parent.mkdir(parents=True, exist_ok=True)
    # A unique temp name in the same directory: concurrent downloads cannot clash, and os.replace
    # onto the final name is atomic, so a reader never sees a half-written checkpoint.
    tmp = target.with_name(f"{target.name}.{uuid.uuid4().hex}.download")
    logger.info("Downloading %s from %s to %s", spec.filename, spec.url, target)
    try:
        try:
            download_url_to_file(spec.url, str(tmp), progress=progress)
        except (OSError, ValueError, http.client.HTTPException) as exc:
            why = f"downloading {spec.url} failed ({type(exc).__name__}: {exc})"
            raise _unavailable(spec, target, why, hint) from exc
        if spec.sha256 is not None:
            actual = sha256_of(tmp)
            if actual != spec.sha256:
                why = (
                    f"the file downloaded from {spec.url} has SHA-256 {actual}, expected "
                    f"{spec.sha256} (corrupted or changed upstream); it was deleted"
                )
                raise _unavailable(spec, target, why, hint)
        os.replace(tmp, target)
    finally:
        tmp.unlink(missing_ok=True)


def resolve_weights(
    spec: WeightsSpec,
    explicit: str | os.PathLike[str] | None = None,
    *,
    cache_dir: str | os.PathLike[str] | None = None,
    download: bool = True,
    progress: bool = True,
    offline_hint: str = OFFLINE_HINT,
) -> tuple[Path, str]:
    """Find a weight file, downloading it into the user cache if needed.

    Order: ``explicit`` file, installed weight package, user cache (hash-checked when known),
    download into the cache with a progress bar.

    Args:
        spec: Which file is wanted and where it comes from.
        explicit: A file the user pointed to; it wins over everything else and is not hash-checked
            (it may legitimately be a different checkpoint of the same architecture).
        cache_dir: Cache directory; defaults to :func:`cache_dir`.
        download: Allow network access; False fails instead of downloading.
        progress: Show a progress bar on stderr while downloading.
        offline_hint: The alternatives named in the error, e.g. an offline backbone.

    Returns:
        The file's path and a short description of its source for logs and results.

    Raises:
        InvalidInputError: ``explicit`` is not an existing file.
        WeightsUnavailableError: No source worked; the message says which file, its URL, the cache
            path to drop it at, and ``offline_hint``.
    """
    if explicit is not None:
        path = Path(explicit).expanduser()
        if not path.is_file():
            raise InvalidInputError(
                f"Weights file {path} does not exist or is not a file (expected a checkpoint like "
                f"{spec.filename!r}); check the path given with --weights."
            )
        return path.resolve(), f"file {path.resolve()}"

    packaged = _from_package(spec)
    if packaged is not None:
        return packaged, f"package {spec.package_module}"

    root = Path(cache_dir).expanduser() if cache_dir is not None else _default_cache_dir()
    target = root / spec.filename
    if target.is_file():
        if spec.sha256 is None or sha256_of(target) == spec.sha256:
            return target, f"cache {target}"
        if not download:
            why = f"the cached copy {target} has the wrong SHA-256 (expected {spec.sha256})"
            raise _unavailable(spec, target, why, offline_hint)
        logger.warning("Cached %s has the wrong SHA-256; downloading it again", target)

    if spec.url is None:
        raise _unavailable(spec, target, "it has no download URL and is not cached", offline_hint)
    if not download:
        raise _unavailable(
            spec,
            target,
            f"it is not cached and downloading is disabled (URL {spec.url})",
            offline_hint,
        )
    _download(spec, target, progress, offline_hint)
    return target, f"downloaded from {spec.url} to {target}"


_GLOBAL_IN_MESSAGE = re.compile(r"GLOBAL ([\w.]+)")  # torch names the refused class this way
_ANSI = re.compile(r"\x1b\[[0-9;]*m")  # torch bolds parts of its messages
_ZIP_MAGIC = b"PK\x03\x04"  # torch.save's default format since torch 1.6
# torch's legacy (pre-1.6) format pickles this magic number first (protocol 2, LONG1 opcode).
_LEGACY_MAGIC = b"\x80\x02\x8a\x0a" + (0x1950A86A20F9469CFC6C).to_bytes(10, "little")
_PICKLE_PROTOCOL = 0x80  # first byte of any binary pickle


def _numpy_scalar_globals() -> list[Any]:
    """numpy scalars and dtypes, under their numpy 1 and 2 names: training scripts often store
    a metric such as ``np.float64(0.5)`` beside the weights, and rebuilding a scalar runs no code.
    """
    import numpy as np

    try:
        from numpy._core.multiarray import scalar
    except ImportError:  # numpy < 2
        from numpy.core.multiarray import scalar  # type: ignore[no-redef]
    found: list[Any] = [scalar, (scalar, "numpy.core.multiarray.scalar"), np.dtype]
    found += [type(np.dtype(code)) for code in "?bhilqBHILQefdg"]  # numpy 2 dtype classes
    return found


def _looks_like_safetensors(head: bytes) -> bool:
    """8-byte little-endian header length, then a JSON object."""
    return len(head) >= 9 and head[8:9] == b"{" and int.from_bytes(head[:8], "little") > 1


def load_checkpoint(path: str | os.PathLike[str], expected: str) -> Any:
    """Read a weights file without running code from it.

    safetensors files (by name or content) are read with safetensors; anything else with
    ``torch.load(weights_only=True)``, which only rebuilds tensors and plain containers (numpy
    scalars are allowed too). Never a full unpickling: a checkpoint may come from anywhere.

    Args:
        path: The weights file.
        expected: What it should be, for the message, e.g. ``"a Point-MAE checkpoint"``.

    Returns:
        The deserialised object (usually a dict of tensors, or a dict holding one).

    Raises:
        InvalidInputError: One line naming the file, what was expected and the fault: missing,
            empty, not a checkpoint, unreadable, or holding Python objects other than tensors.
    """
    path = Path(path)
    try:
        with open(path, "rb") as f:
            head = f.read(16)
    except OSError as exc:
        raise InvalidInputError(
            f"Weights file {path} cannot be opened ({exc.strerror or exc}); expected {expected}."
        ) from None
    if not head:
        raise InvalidInputError(f"Weights file {path} is empty; expected {expected}.")
    if path.suffix.lower() == ".safetensors" or _looks_like_safetensors(head):
        return _load_safetensors(path, expected)
    if head.startswith(_ZIP_MAGIC) or head.startswith(_LEGACY_MAGIC):
        return _load_torch(path, expected)
    if head[0] == _PICKLE_PROTOCOL:
        raise InvalidInputError(
            f"Weights file {path} is a plain Python pickle (or a damaged file), not a PyTorch "
            f"checkpoint; it is not loaded because unpickling can run code. Expected {expected}."
        )
    raise InvalidInputError(
        f"Weights file {path} is not a checkpoint (neither a PyTorch .pth/.pt file nor "
        f"safetensors; it starts with {head[:8]!r}); expected {expected}."
    )


def _load_safetensors(path: Path, expected: str) -> dict[str, Any]:
    from safetensors.torch import load_file

    try:
        return load_file(str(path))
    # safetensors raises its own SafetensorError (not an OSError) besides the usual ones.
    except Exception as exc:
        raise InvalidInputError(
            f"Weights file {path} cannot be read as safetensors ({_short(exc)}); expected "
            f"{expected}."
        ) from None


def _load_torch(path: Path, expected: str) -> Any:
    import torch

    allow = getattr(torch.serialization, "safe_globals", None)  # torch >= 2.5
    try:
        # torch warns about unusual pickle protocols of broken files; the error below says more.
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", UserWarning)
            if allow is None:
                return torch.load(path, map_location="cpu", weights_only=True)
            with allow(_numpy_scalar_globals()):
                return torch.load(path, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as exc:
        blocked = _unsafe_globals(path) or _GLOBAL_IN_MESSAGE.findall(str(exc))
        what = f" ({', '.join(blocked[:3])})" if blocked else ""
        if blocked:
            raise InvalidInputError(
                f"Weights file {path} holds Python objects other than tensors{what}; it is not "
                f"loaded because unpickling them could run code. Expected {expected}; re-save "
                "it as a plain state dict (torch.save(model.state_dict(), ...))."
            ) from None
        raise InvalidInputError(
            f"Weights file {path} cannot be read as a PyTorch checkpoint ({_unpickler_fault(exc)}"
            f"); expected {expected}."
        ) from None
    # A damaged archive raises RuntimeError, EOFError, ValueError, zipfile/struct errors ...
    except Exception as exc:
        raise InvalidInputError(
            f"Weights file {path} cannot be read as a PyTorch checkpoint ({_short(exc)}); "
            f"expected {expected}."
        ) from None


def _unsafe_globals(path: Path) -> list[str]:
    import torch

    finder = getattr(torch.serialization, "get_unsafe_globals_in_checkpoint", None)
    try:
        return list(finder(str(path))) if finder is not None else []
    except Exception:  # the file is already known to be bad; this only refines the message
        return []


def _unpickler_fault(exc: BaseException) -> str:
    """The fault inside torch's long weights-only message, e.g. "Unsupported operand 149"."""
    text = _ANSI.sub("", str(exc))
    _, found, after = text.partition("WeightsUnpickler error:")
    fault = " ".join(after.split("Check the documentation")[0].split()) if found else ""
    return f"corrupt data: {fault[:200]}" if fault else _short(exc)


def _short(exc: BaseException) -> str:
    """First sentence of an exception, at most 200 characters (torch's span paragraphs)."""
    text = _ANSI.sub("", str(exc)).strip().splitlines()
    first = text[0].split(". ")[0] if text else ""
    return f"{type(exc).__name__}: {first[:200]}" if first else type(exc).__name__
