"""TIFF decoding with one clear message per broken file.

tifffile reports some faults (e.g. ``<tifffile.TiffPages @8> invalid offset to first page``)
through :mod:`logging` and then returns an empty result or raises something unrelated. Those
records are held back while a file is read and folded into the reader's own message, so a user
sees one line that names the file, not a stray log line plus a contradicting error.
"""

from __future__ import annotations

import logging
import re
import struct
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import numpy as np
import tifffile

from engine.errors import InvalidInputError

# A decoded TIFF larger than this is refused before allocating: a corrupt header can claim
# billions of pixels (found by fuzzing), and a 16-bit RGB image of 100 MP is only 0.6 GiB.
MAX_TIFF_BYTES = 4 << 30
# Images, masks and XYZ maps are single-page files (a thumbnail page at most). tifffile walks a
# corrupt page chain for minutes (fuzzing found a 2-page loop it does not detect), so the chain
# is checked first and a file with more pages is refused.
MAX_TIFF_PAGES = 64
_MAX_MESSAGES = 5  # a corrupt file can make tifffile log one line per page, millions of them
_LOG_PREFIX = re.compile(r"^<[^>]*>\s*")  # "<tifffile.TiffPages @8> " names an object, not the file


class _HeldBack(logging.Filter):
    """Logger filter that diverts tifffile's records of the current thread into a list."""

    def __init__(self) -> None:
        super().__init__()
        self._local = threading.local()  # the GUI reads files in a worker thread

    @contextmanager
    def capture(self) -> Iterator[list[str]]:
        messages: list[str] = []
        previous = getattr(self._local, "messages", None)
        self._local.messages = messages
        try:
            yield messages
        finally:
            self._local.messages = previous

    def filter(self, record: logging.LogRecord) -> bool:
        messages = getattr(self._local, "messages", None)
        if messages is None:
            return True  # tifffile used outside our readers: leave its logging alone
        if len(messages) < _MAX_MESSAGES:
            messages.append(_LOG_PREFIX.sub("", record.getMessage()).strip())
        return False


_HELD_BACK = _HeldBack()
logging.getLogger("tifffile").addFilter(_HELD_BACK)


def describe(err: BaseException) -> str:
    """``Type: message`` of an exception, or just the type when the message is empty."""
    text = str(err).strip()
    return f"{type(err).__name__}: {text}" if text else type(err).__name__


def _reason(err: BaseException | None, messages: list[str]) -> str:
    """tifffile's own words first (they say what is wrong), then the exception, deduplicated."""
    parts = list(dict.fromkeys(m for m in messages if m))
    if err is not None:
        parts.append(describe(err))
    return "; ".join(parts) or "unknown fault"


def count_pages(path: Path, limit: int = MAX_TIFF_PAGES) -> int:
    """Number of pages (IFDs) in the chain of a classic or Big TIFF, walked without tifffile.

    Raises:
        FileNotFoundError: ``path`` does not exist.
        InvalidInputError: Not a TIFF, the chain loops or leaves the file, or it has more than
            ``limit`` pages.
    """
    with open(path, "rb") as f:
        data = f.read(16)
        size = f.seek(0, 2)  # for the message
        order = {b"II": "<", b"MM": ">"}.get(data[:2])
        magic = struct.unpack(order + "H", data[2:4])[0] if order and len(data) >= 8 else 0
        if magic not in (42, 43) or (magic == 43 and len(data) < 16):
            raise InvalidInputError("not a TIFF file (no TIFF signature)")
        count_fmt, entry_size, offset_fmt = ("H", 12, "I") if magic == 42 else ("Q", 20, "Q")
        offset = struct.unpack(order + offset_fmt, data[4:8] if magic == 42 else data[8:16])[0]
        seen: list[int] = []
        while offset:
            if offset in seen or len(seen) >= limit:
                what = "loops" if offset in seen else f"has more than {limit} pages"
                raise InvalidInputError(f"the TIFF page chain {what}; the file is corrupt")
            f.seek(offset)
            raw = f.read(struct.calcsize(count_fmt))
            if len(raw) < struct.calcsize(count_fmt):
                raise InvalidInputError(
                    f"TIFF page {len(seen) + 1} lies past the end of the file ({size} bytes); "
                    "the file is truncated or corrupt"
                )
            seen.append(offset)  # a list, so the page limit also ends a loop missed above
            count = struct.unpack(order + count_fmt, raw)[0]
            f.seek(offset + len(raw) + count * entry_size)
            raw = f.read(struct.calcsize(offset_fmt))
            if len(raw) < struct.calcsize(offset_fmt):
                break  # tifffile reports the truncated page itself
            offset = struct.unpack(order + offset_fmt, raw)[0]
    return len(seen)


def tiff_header(path: Path) -> tuple[tuple[int, ...], np.dtype]:
    """Shape and dtype of the first image series, read from the header only.

    Raises:
        FileNotFoundError: ``path`` does not exist.
        InvalidInputError: The header cannot be read or holds no image.
    """
    count_pages(path)
    with _HELD_BACK.capture() as messages:
        try:
            with tifffile.TiffFile(path) as tif:
                series = tif.series[0] if tif.series else None
                shape = tuple(int(n) for n in series.shape) if series is not None else ()
                dtype = np.dtype(series.dtype) if series is not None else np.dtype(np.uint8)
        except FileNotFoundError:
            raise
        # Corrupt headers make tifffile raise nearly anything (fuzzing found TypeError,
        # ZeroDivisionError, AssertionError, struct.error ...); all mean "unusable file".
        except Exception as err:
            raise InvalidInputError(f"cannot read TIFF header ({_reason(err, messages)})") from None
    if not shape or 0 in shape:
        found = f" ({_reason(None, messages)})" if messages else ""
        raise InvalidInputError(f"TIFF file holds no image{found}")
    return shape, dtype


def read_tiff(path: Path) -> np.ndarray:
    """Decode the first image series of a TIFF file in its native dtype.

    Raises:
        FileNotFoundError: ``path`` does not exist.
        InvalidInputError: Unreadable, empty, or larger than :data:`MAX_TIFF_BYTES`; the message
            is the reason only (callers prefix the file and the role).
    """
    shape, dtype = tiff_header(path)
    nbytes = int(np.prod(shape, dtype=np.float64)) * dtype.itemsize
    if nbytes > MAX_TIFF_BYTES:
        raise InvalidInputError(
            f"header claims an image of shape {shape} {dtype} ({nbytes / 2**30:.1f} GiB), more "
            f"than the {MAX_TIFF_BYTES >> 30} GiB limit; the file is corrupt or too large"
        )
    with _HELD_BACK.capture() as messages:
        try:
            array = np.asarray(tifffile.imread(path))
        except FileNotFoundError:
            raise
        except Exception as err:  # see tiff_header: any decoder fault means "unusable file"
            raise InvalidInputError(_reason(err, messages)) from None
    if array.size == 0:
        raise InvalidInputError(f"TIFF file holds no image ({_reason(None, messages)})")
    return array


def is_xyz_layout(shape: tuple[int, ...], dtype: np.dtype) -> bool:
    """Whether an array of this shape and dtype is an organized XYZ point map, not a picture.

    Three float channels, interleaved (H, W, 3) or planar (3, H, W): colour images are stored
    as integers, while point maps hold metres as floats.
    """
    if not np.issubdtype(dtype, np.floating) or len(shape) != 3:
        return False
    return shape[2] == 3 or (shape[0] == 3 and shape[2] > 4)


def is_xyz_tiff(path: Path) -> bool:
    """Whether ``path`` is a readable TIFF whose header says XYZ point map (see is_xyz_layout)."""
    try:
        return is_xyz_layout(*tiff_header(path))
    except (OSError, InvalidInputError):
        return False
