"""The output folder of line mode: one CSV line, one heatmap and one float map per part.

The stream runs for hours and may be killed at any moment (kill -9, the line PC switched
off), so each file is written to survive that:

* ``stream.csv``: each line goes out in one ``write`` on an append-only descriptor and is
  fsynced, so a kill leaves whole lines only. It is written last: a part in the CSV has its maps.
* ``maps/<sample>.png``: the heatmap, written under a temporary name and renamed into place.
* ``maps.h5``: the float32 maps, in HDF5's SWMR mode (single writer, multiple readers;
  ``libver="latest"``). SWMR orders the writer's metadata flushes so that the file on disk is
  valid at every moment (the GUI can read it while the stream writes), which also makes it
  survive a writer killed mid-write. SWMR allows only appending to datasets that exist (not
  creating one per part), so every map is appended to one growing array ``values`` and then
  one row of ``parts`` (name, offset, height, width) is appended and flushed: the row is the
  commit point, a map without its row is invisible. A name written again (a re-run into the
  same folder) is replaced: its newest row wins. Read the maps with :func:`read_maps`.
* ``skipped.log``: parts that could not be scored, one tab-separated line each.
"""

from __future__ import annotations

import csv
import io
import logging
import os
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from types import TracebackType

import cv2
import h5py
import numpy as np
from PIL import Image

from engine.decision.display import colorize, heatmap_levels
from engine.errors import InvalidInputError
from engine.outputs.export import atomic_path

try:
    import fcntl
except ImportError:  # Windows: no advisory locks; one stream per folder is then up to the user
    fcntl = None  # type: ignore[assignment]

__all__ = ["CSV_HEADER", "StreamRecord", "StreamWriter", "now_iso", "read_maps"]

logger = logging.getLogger(__name__)

CSV_HEADER = ("time", "sample", "score", "verdict", "label", "defect_type", "latency_ms")
VERDICTS = ("pass", "fail")
MAPS_FORMAT = "musc-stream-maps/1"  # attribute of maps.h5, so a batch run's maps.h5 is refused
_LOCK_NAME = ".stream.lock"
_NAME_BYTES = 255
_PART_ROW = np.dtype(
    [("name", f"S{_NAME_BYTES}"), ("offset", "<i8"), ("height", "<i4"), ("width", "<i4")]
)
# Uncompressed fixed-size chunks: appending rewrites the last chunk in place with the same
# bytes for what is already there, so a kill mid-write cannot tear a committed map (a
# compressed chunk would move to new file space on every append).
_VALUES_CHUNK = 1 << 16


def now_iso() -> str:
    """Local time with seconds and UTC offset in ISO 8601, for :attr:`StreamRecord.time`."""
    return datetime.now().astimezone().isoformat(timespec="seconds")


@dataclass(frozen=True)
class StreamRecord:
    """One scored part, one line of ``stream.csv``.

    Attributes:
        time: ISO 8601 local time with seconds when the verdict was made (see :func:`now_iso`).
        sample: The part's name (as discovery gives it); also names its maps.
        score: Image-level anomaly score.
        verdict: ``"pass"`` or ``"fail"``.
        label: Ground truth when discovery knows it (0 normal, 1 defective), else None.
        defect_type: Folder name the label came from, if any.
        latency_ms: From the part being complete (``ArrivedPart.arrived``) to the verdict.
    """

    time: str
    sample: str
    score: float
    verdict: str
    label: int | None
    defect_type: str | None
    latency_ms: float


def read_maps(path: Path) -> dict[str, np.ndarray]:
    """Every committed map of a stream's ``maps.h5``, by sample name (float32, (H, W)).

    Works on a file being written and on one whose writer was killed (opened in SWMR read
    mode; a plain ``h5py.File(path)`` refuses such a file until a writer reopens it).

    Raises:
        InvalidInputError: The file is missing, not HDF5, or not a stream's map file.
    """
    try:
        with h5py.File(path, "r", libver="latest", swmr=True) as store:
            _check_format(store, path)
            rows, values = store["parts"][:], store["values"]
            end = values.shape[0]
            maps = {}
            for row in rows:  # newest last, so a replaced name keeps its newest map
                name, offset = row["name"].decode("ascii"), int(row["offset"])
                height, width = int(row["height"]), int(row["width"])
                if name and 0 <= offset and offset + height * width <= end:
                    maps[name] = values[offset : offset + height * width].reshape(height, width)
            return maps
    except OSError as err:
        raise InvalidInputError(
            f"{path}: cannot be read as a stream's maps.h5 ({err}). Move it away, or choose "
            "another output folder."
        ) from err


class StreamWriter:
    """Writes the stream's output folder; one instance per folder at a time.

    Args:
        out_dir: Created if needed. Existing files are appended to (a re-run into the same
            folder keeps the earlier parts).

    Raises:
        InvalidInputError: The folder cannot be created or written, another stream is writing
            it, or it holds a ``stream.csv`` or ``maps.h5`` not written by a stream.
    """

    def __init__(self, out_dir: Path):
        self.out_dir = Path(out_dir)
        self._lock: int | None = None
        self._csv: int | None = None
        self._store: _MapStore | None = None
        try:
            (self.out_dir / "maps").mkdir(parents=True, exist_ok=True)
            self._lock = _lock_folder(self.out_dir)
            self._csv = _open_csv(self.out_dir / "stream.csv")
            self._store = _MapStore(self.out_dir / "maps.h5")
        except OSError as err:
            self.close()
            raise InvalidInputError(
                f"{self.out_dir}: cannot write the stream's output here "
                f"({err.strerror or err}). Choose a folder you can write to, or fix its "
                "permissions."
            ) from err
        except BaseException:
            self.close()
            raise

    def write(
        self,
        record: StreamRecord,
        anomaly_map: np.ndarray,
        image_size: tuple[int, int] | None = None,
        levels: tuple[float, float] | None = None,
    ) -> None:
        """Store one part: its float map, its heatmap PNG, then its CSV line.

        Args:
            record: The part's line.
            anomaly_map: (H, W) anomaly map, stored in ``maps.h5`` as float32 as given.
            image_size: (height, width) of the PNG; the map's own size when None.
            levels: (low, high) colour levels; from the map itself when None.

        Raises:
            InvalidInputError: Bad name, verdict or map shape.
            OSError: The disk refused the write (e.g. full).
        """
        if self._store is None or self._csv is None:
            raise RuntimeError("StreamWriter.write: the writer is closed.")
        _check_record(record)
        values = np.asarray(anomaly_map, dtype=np.float32)
        if values.ndim != 2:
            raise InvalidInputError(
                f"{record.sample}: anomaly map must have shape (H, W), got {values.shape}."
            )
        self._store.append(record.sample, values)
        self._write_png(record.sample, values, image_size, levels)
        _append_line(self._csv, _csv_line(_cells(record)))

    def log_skip(self, sample_name: str, path: Path, reason: str) -> None:
        """Append ``time, name, path, reason`` (tab-separated) to ``skipped.log``, flushed."""
        fields = (now_iso(), sample_name, str(path), reason)
        line = "\t".join(" ".join(str(f).split()) for f in fields) + "\n"  # one line each
        fd = os.open(self.out_dir / "skipped.log", os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o666)
        try:
            _append_line(fd, line.encode("utf-8"))
        finally:
            os.close(fd)

    def close(self) -> None:
        """Close the files (idempotent); ``maps.h5`` then opens with plain ``h5py.File``."""
        store, self._store = self._store, None
        if store is not None:
            store.close()
        for name in ("_csv", "_lock"):
            fd = getattr(self, name)
            setattr(self, name, None)
            if fd is not None:
                os.close(fd)  # closing the lock file releases the lock

    def __enter__(self) -> StreamWriter:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()

    def _write_png(
        self,
        name: str,
        values: np.ndarray,
        image_size: tuple[int, int] | None,
        levels: tuple[float, float] | None,
    ) -> None:
        if levels is None:
            levels = heatmap_levels(values[None])
        if image_size is not None:
            height, width = image_size
            values = cv2.resize(values, (width, height), interpolation=cv2.INTER_LINEAR)
        with atomic_path(self.out_dir / "maps" / f"{name}.png") as tmp:
            Image.fromarray(colorize(values, levels)).save(tmp, format="PNG", compress_level=1)


def _check_record(record: StreamRecord) -> None:
    name = record.sample
    if not name or name in (".", "..") or "/" in name or "\\" in name or not name.isascii():
        raise InvalidInputError(
            f"sample name {name!r} cannot name a file; use discovery's names (letters, "
            "digits, '.', '_', '-')."
        )
    if len(name.encode("ascii")) > _NAME_BYTES:
        raise InvalidInputError(f"sample name {name!r} is longer than {_NAME_BYTES} characters.")
    if record.verdict not in VERDICTS:
        raise InvalidInputError(
            f"{name}: verdict must be one of {VERDICTS}, got {record.verdict!r}."
        )


def _cells(record: StreamRecord) -> list[str]:
    """The CSV cells of a record: unknown label and type are empty, the score keeps all digits."""
    return [
        record.time,
        record.sample,
        repr(float(record.score)),
        record.verdict,
        "" if record.label is None else str(int(record.label)),
        record.defect_type or "",
        f"{float(record.latency_ms):.1f}",
    ]


def _csv_line(cells: Sequence[str]) -> bytes:
    buffer = io.StringIO()
    csv.writer(buffer, lineterminator="\n").writerow(cells)
    return buffer.getvalue().encode("utf-8")


def _append_line(fd: int, data: bytes) -> None:
    """Write ``data`` at the end of the file in one call (looping only on a short write)."""
    view = memoryview(data)
    while view:
        view = view[os.write(fd, view) :]
    os.fsync(fd)


def _lock_folder(out_dir: Path) -> int:
    fd = os.open(out_dir / _LOCK_NAME, os.O_RDWR | os.O_CREAT, 0o666)
    if fcntl is None:
        return fd
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)  # the kernel drops it if we are killed
    except BlockingIOError:
        os.close(fd)
        raise InvalidInputError(
            f"{out_dir}: another stream is writing to this folder. Stop it, or choose another "
            "output folder."
        ) from None
    return fd


def _open_csv(path: Path) -> int:
    """``stream.csv`` opened for appending: header written if new, a torn last line cut off."""
    fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_APPEND, 0o666)
    try:
        size = os.fstat(fd).st_size
        header = _csv_line(CSV_HEADER)
        if size == 0:
            _append_line(fd, header)
            return fd
        first = os.pread(fd, len(header), 0)
        if first != header:
            raise InvalidInputError(
                f"{path}: starts with {first.decode('utf-8', 'replace')!r}, expected the "
                f"stream header {header.decode()!r}. Move the file away, or choose another "
                "output folder."
            )
        if os.pread(fd, 1, size - 1) != b"\n":  # only a power cut can leave this
            end = os.pread(fd, size, 0).rfind(b"\n") + 1
            logger.warning("%s: cutting off a torn last line (%d bytes)", path, size - end)
            os.ftruncate(fd, end)
        return fd
    except BaseException:
        os.close(fd)
        raise


def _check_format(store: h5py.File, path: Path) -> None:
    found = store.attrs.get("format")
    if found != MAPS_FORMAT:
        raise InvalidInputError(
            f"{path}: is not a stream's map file (format {found!r}, expected {MAPS_FORMAT!r}); "
            "a batch run's maps.h5 perhaps. Move it away, or choose another output folder."
        )


def _new_store(path: Path) -> h5py.File:
    """An empty map file at ``path``; the datasets must exist before SWMR writing starts."""
    store = h5py.File(path, "w", libver="latest")
    store.attrs["format"] = MAPS_FORMAT
    store.attrs["layout"] = (
        "map i is values[parts[i].offset : offset + height * width] as (height, width); "
        "a name's last row wins"
    )
    store.create_dataset(
        "values", shape=(0,), maxshape=(None,), chunks=(_VALUES_CHUNK,), dtype="<f4"
    )
    store.create_dataset("parts", shape=(0,), maxshape=(None,), chunks=(256,), dtype=_PART_ROW)
    return store


def _write_all(store: h5py.File, maps: dict[str, np.ndarray]) -> None:
    if not maps:
        return
    offsets = np.cumsum([0] + [m.size for m in maps.values()])
    store["values"].resize((int(offsets[-1]),))
    store["parts"].resize((len(maps),))
    for i, (name, values) in enumerate(maps.items()):
        store["values"][offsets[i] : offsets[i + 1]] = values.ravel()
        store["parts"][i] = (name.encode("ascii"), offsets[i], *values.shape)


class _MapStore:
    """``maps.h5`` held open in SWMR write mode; see the module docstring."""

    def __init__(self, path: Path):
        self.path = path
        if not path.exists():
            with atomic_path(path) as tmp, _new_store(tmp):
                pass  # created whole or not at all
        try:
            self._file = h5py.File(path, "a", libver="latest")
        except OSError:  # a writer killed mid-stream leaves the file marked "open for writing"
            self._recover()
            self._file = h5py.File(path, "a", libver="latest")
        try:
            _check_format(self._file, path)
            self._file.swmr_mode = True
        except BaseException:
            self._file.close()
            raise
        self._values, self._parts = self._file["values"], self._file["parts"]

    def append(self, name: str, values: np.ndarray) -> None:
        """Append one map and commit it (see the module docstring for the order)."""
        offset = self._append_values(values.ravel())
        self._commit(name, offset, values.shape)

    def close(self) -> None:
        self._file.close()

    def _append_values(self, flat: np.ndarray) -> int:
        offset = self._values.shape[0]
        self._values.resize((offset + flat.size,))
        self._values[offset:] = flat
        self._values.flush()
        return offset

    def _commit(self, name: str, offset: int, shape: tuple[int, ...]) -> None:
        row = self._parts.shape[0]
        self._parts.resize((row + 1,))
        self._parts[row] = (name.encode("ascii"), offset, *shape)
        self._parts.flush()
        self._file.flush()
        os.fsync(self._file.id.get_vfd_handle())  # durable across a power cut too

    def _recover(self) -> None:
        """Rewrite the file from its committed maps; this also clears the "open" mark."""
        maps = read_maps(self.path)  # raises InvalidInputError for a file that is not ours
        logger.warning(
            "%s: was not closed (writer killed?); kept its %d maps", self.path, len(maps)
        )
        with atomic_path(self.path) as tmp, _new_store(tmp) as store:
            _write_all(store, maps)
