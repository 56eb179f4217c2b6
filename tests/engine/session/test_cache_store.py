"""The session cache's size cap: least recently used out first, only our own files touched."""

from __future__ import annotations

import os
import time
from pathlib import Path

import h5py
import numpy as np
import pytest
import torch

from engine.session import cache_store
from engine.session.cache_codec import Writer, compact, read
from engine.session.cache_store import (
    DEFAULT_CAP_BYTES,
    cache_dir,
    cache_usage,
    clear_cache,
    enforce_cap,
    touch,
)

KIB = 1024


@pytest.fixture(autouse=True)
def cache_home(tmp_path, monkeypatch):
    monkeypatch.setenv("MUSC_CACHE_DIR", str(tmp_path / "cache"))
    monkeypatch.delenv("MUSC_CACHE_MAX_BYTES", raising=False)
    cache_dir().mkdir(parents=True)
    return cache_dir()


def _session_file(index: int, used: float, size: int = 10 * KIB) -> Path:
    """A stand-in session file last used at ``used`` (seconds since the epoch)."""
    path = cache_dir() / f"{index:064x}.h5"
    path.write_bytes(b"\0" * size)
    os.utime(path, (used, used))
    return path


def test_the_least_recently_used_go_first_not_the_oldest() -> None:
    first, second, third = (_session_file(i, 1000.0 + 100 * i) for i in range(3))
    touch(first)  # created first, but used last
    assert cache_usage() == 30 * KIB
    assert enforce_cap(20 * KIB) == [second]
    assert enforce_cap(10 * KIB) == [third]
    assert first.exists() and cache_usage() == 10 * KIB
    assert enforce_cap(10 * KIB) == []  # within the cap: nothing to do


def test_the_kept_file_stays_even_alone_over_the_cap() -> None:
    old, new = _session_file(0, 1000.0), _session_file(1, 2000.0)
    assert enforce_cap(0, keep=old) == [new]
    assert old.exists() and cache_usage() == 10 * KIB


def test_the_cap_comes_from_the_environment(monkeypatch) -> None:
    for i in range(4):
        _session_file(i, 1000.0 + i)
    assert enforce_cap() == []  # 40 KiB is far below the 4 GiB default
    assert DEFAULT_CAP_BYTES == 4 * 1024**3
    monkeypatch.setenv("MUSC_CACHE_MAX_BYTES", str(25 * KIB))
    assert len(enforce_cap()) == 2 and cache_usage() <= 25 * KIB
    monkeypatch.setenv("MUSC_CACHE_MAX_BYTES", "lots")
    assert cache_store.cap_bytes() == DEFAULT_CAP_BYTES


def test_two_names_of_one_file_count_once_and_go_together() -> None:
    main = _session_file(0, 1000.0)
    alias = cache_dir() / f"{1:064x}.h5"
    os.link(main, alias)
    newer = _session_file(2, 2000.0)
    assert cache_usage() == 20 * KIB
    assert sorted(enforce_cap(10 * KIB)) == sorted([main, alias])
    assert newer.exists() and not alias.exists()


def test_clear_cache_removes_only_session_and_leftover_files() -> None:
    ours = [_session_file(i, 1000.0) for i in range(2)]
    leftover = cache_dir() / f".{3:064x}.h5.x1y2.tmp"
    leftover.write_bytes(b"\0" * KIB)
    others = [cache_dir() / "notes.txt", cache_dir() / "other.h5", cache_dir() / "ABC.h5"]
    for path in others:
        path.write_bytes(b"keep me")
    (cache_dir() / "folder").mkdir()
    assert clear_cache() == 21 * KIB
    assert not any(p.exists() for p in [*ours, leftover])
    assert all(p.exists() for p in others) and (cache_dir() / "folder").is_dir()
    assert clear_cache() == 0 and cache_usage() == 0


def test_enforce_cap_removes_stale_temporary_files_only() -> None:
    stale, fresh = (cache_dir() / f".{i:064x}.h5.tmp{i}.tmp" for i in range(2))
    for path in (stale, fresh):
        path.write_bytes(b"\0")
    old = time.time() - cache_store.STALE_TEMP_S - 60
    os.utime(stale, (old, old))
    enforce_cap()
    assert not stale.exists() and fresh.exists()  # a save may still be writing it


def test_integers_are_stored_small_and_features_halved_around_their_mean(tmp_path) -> None:
    generator = torch.Generator().manual_seed(0)
    unit = torch.nn.functional.normalize(1 + 0.01 * torch.randn(50, 16, generator=generator), dim=1)
    values = {
        "index": torch.tensor([0, 5, 50_000], dtype=torch.int64),
        "signed": np.array([-1, 70_000], dtype=np.int64),
        "features": 1 + 0.01 * torch.randn(50, 16, generator=generator),
        "unit": unit,
        "read_out": torch.linspace(-3, 3, 12).reshape(3, 4),
        "huge": torch.tensor([[1e6, 1.0], [0.0, 1.0]]),
    }
    assert compact(np.array([0, 255], dtype=np.int64)).dtype == np.uint8
    halved = frozenset({id(values[k]) for k in ("features", "unit", "huge")})
    with h5py.File(tmp_path / "x.h5", "w") as f:
        Writer(half=halved).put(f, "v", values)
    with h5py.File(tmp_path / "x.h5", "r") as f:
        stored = {k: f["v"][str(i)].dtype for i, k in enumerate(values)}
        back = read(f["v"], {}, torch.device("cpu"))
    assert stored == {"index": np.uint16, "signed": np.int32, "features": np.float16,
                      "unit": np.float16, "read_out": np.float32, "huge": np.float32}  # fmt: skip
    assert back["index"].dtype == torch.int64 and back["signed"].dtype == np.int64
    assert torch.equal(back["index"], values["index"])
    np.testing.assert_array_equal(back["signed"], values["signed"])
    assert torch.equal(back["read_out"], values["read_out"])
    assert torch.equal(back["huge"], values["huge"])  # float16 would overflow: kept
    # around the channel mean, float16 keeps the small differences between features
    assert back["features"].dtype == torch.float32
    plain = (values["features"].half().float() - values["features"]).abs().max()
    assert (back["features"] - values["features"]).abs().max() < plain / 10
    torch.testing.assert_close(back["unit"].norm(dim=1), torch.ones(50), rtol=0, atol=1e-6)
    assert (back["unit"] - unit).abs().max() < (unit.half().float() - unit).abs().max() / 10
