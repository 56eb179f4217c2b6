"""Property-based fuzzing of the readers: any file either loads as documented or raises
InvalidInputError naming it; never another exception, and never a stray tifffile log line."""

from __future__ import annotations

import io
import logging
import tempfile
import warnings
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

import numpy as np
import tifffile
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp
from PIL import Image

from engine.data import read_mask, read_rgb, read_xyz
from engine.errors import InvalidInputError

FUZZ = settings(
    max_examples=80, deadline=None, suppress_health_check=[HealthCheck.too_slow], database=None
)
SUFFIXES = (".png", ".tiff", ".tif", ".jpg", ".bmp")


def _seed_files() -> dict[str, bytes]:
    """Small valid files of every format: mutations of them reach deep into the decoders."""
    rng = np.random.default_rng(0)
    rgb = rng.integers(0, 255, (5, 7, 3), dtype=np.uint8)
    seeds = {}
    for fmt, suffix in (("PNG", ".png"), ("JPEG", ".jpg"), ("BMP", ".bmp")):
        buffer = io.BytesIO()
        Image.fromarray(rgb).save(buffer, fmt)
        seeds[suffix] = buffer.getvalue()
    for suffix, array, kwargs in (
        (".tiff", rng.random((5, 7, 3)).astype(np.float32), {"photometric": "rgb"}),
        (".tif", rgb, {"compression": "zlib"}),
    ):
        buffer = io.BytesIO()
        tifffile.imwrite(buffer, array, **kwargs)
        seeds[suffix] = buffer.getvalue()
    return seeds


SEEDS = _seed_files()


def check_rgb(out: np.ndarray) -> None:
    assert out.dtype == np.uint8 and out.ndim == 3 and out.shape[2] == 3 and out.size > 0


def check_mask(out: np.ndarray) -> None:
    assert out.dtype == np.bool_ and out.ndim == 2 and out.size > 0


def check_xyz(out: np.ndarray) -> None:
    assert out.dtype == np.float32 and out.ndim == 3 and out.shape[2] == 3
    assert np.isfinite(out).all() and np.all(out != 0, axis=2).any()


READERS: list[tuple[Callable[[Path], np.ndarray], Callable[[np.ndarray], None]]] = [
    (read_rgb, check_rgb),
    (read_mask, check_mask),
    (read_xyz, check_xyz),
]


class _Records(logging.Handler):
    def __init__(self) -> None:
        super().__init__(logging.DEBUG)
        self.messages: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.messages.append(record.getMessage())


@contextmanager
def tifffile_log() -> Iterator[list[str]]:
    """What tifffile logs (a logger-level handler sees records that pass the logger's filters)."""
    handler, logger = _Records(), logging.getLogger("tifffile")
    level = logger.level
    logger.addHandler(handler)
    logger.setLevel(logging.DEBUG)
    try:
        yield handler.messages
    finally:
        logger.removeHandler(handler)
        logger.setLevel(level)


def assert_contract(path: Path) -> None:
    """Each reader returns its documented array or raises InvalidInputError naming the file."""
    with tifffile_log() as logged:
        for reader, check in READERS:
            try:
                out = reader(path)
            except InvalidInputError as err:
                assert str(path) in str(err) and "\n" not in str(err)
            else:
                check(out)
    assert logged == []


@contextmanager
def scratch(suffix: str) -> Iterator[Path]:
    with tempfile.TemporaryDirectory() as folder:
        yield Path(folder) / f"fuzz{suffix}"


@FUZZ
@given(data=st.binary(max_size=512), suffix=st.sampled_from(SUFFIXES))
def test_arbitrary_bytes(data: bytes, suffix: str) -> None:
    with scratch(suffix) as path:
        path.write_bytes(data)
        assert_contract(path)


@FUZZ
@given(
    suffix=st.sampled_from(sorted(SEEDS)),
    edits=st.lists(st.tuples(st.integers(0, 10_000), st.integers(0, 255)), max_size=8),
    keep=st.one_of(st.none(), st.integers(0, 10_000)),
)
def test_mutated_valid_files(suffix: str, edits: list[tuple[int, int]], keep: int | None) -> None:
    data = bytearray(SEEDS[suffix])
    for position, value in edits:
        data[position % len(data)] = value
    with scratch(suffix) as path:
        path.write_bytes(bytes(data[:keep] if keep is not None else data))
        assert_contract(path)


DTYPES = st.sampled_from(
    [np.uint8, np.uint16, np.int16, np.int32, np.float32, np.float64, np.bool_]
)
SHAPES = hnp.array_shapes(min_dims=2, max_dims=3, min_side=1, max_side=5)


@FUZZ
@given(array=hnp.arrays(DTYPES, SHAPES), suffix=st.sampled_from([".tiff", ".tif"]))
def test_arbitrary_arrays_as_tiff(array: np.ndarray, suffix: str) -> None:
    with scratch(suffix) as path:
        try:
            with warnings.catch_warnings():  # tifffile announces future defaults for 3-D data
                warnings.simplefilter("ignore", DeprecationWarning)
                tifffile.imwrite(path, array)
        except Exception:  # an array tifffile cannot store says nothing about our readers
            return
        assert_contract(path)


PNG_ARRAYS = st.one_of(
    hnp.arrays(np.uint8, hnp.array_shapes(min_dims=2, max_dims=2, max_side=5)),
    hnp.arrays(np.uint8, st.tuples(st.integers(1, 5), st.integers(1, 5), st.sampled_from([3, 4]))),
    hnp.arrays(np.uint16, hnp.array_shapes(min_dims=2, max_dims=2, max_side=5)),
    hnp.arrays(np.bool_, hnp.array_shapes(min_dims=2, max_dims=2, max_side=5)),
)


@FUZZ
@given(array=PNG_ARRAYS)
def test_arbitrary_arrays_as_png(array: np.ndarray) -> None:
    with scratch(".png") as path:
        Image.fromarray(array).save(path)
        assert_contract(path)
        if array.dtype == np.uint8 and array.ndim == 2:
            assert read_rgb(path)[..., 0].tolist() == array.tolist()  # grey is read exactly
        if array.dtype == np.bool_:
            assert read_mask(path).tolist() == array.tolist()


@FUZZ
@given(
    array=hnp.arrays(
        np.float32,
        st.tuples(st.integers(1, 5), st.integers(1, 5), st.just(3)),
        elements=st.floats(allow_nan=True, allow_infinity=True, width=32),
    )
)
def test_xyz_maps_keep_finite_points(array: np.ndarray) -> None:
    with scratch(".tiff") as path:
        tifffile.imwrite(path, array, photometric="rgb")
        finite = np.all(np.isfinite(array), axis=2)
        try:
            out = read_xyz(path)
        except InvalidInputError as err:
            assert "every point" in str(err)  # the only way a well-formed map can fail
            assert not np.all(np.where(finite[..., None], array, 0) != 0, axis=2).any()
        else:
            check_xyz(out)
            assert np.array_equal(out[finite], array[finite])
            assert not out[~finite].any()
