"""The on-disk session cache: hits restore a scored session, changes give misses."""

from __future__ import annotations

import json
import os
import time

import h5py
import numpy as np
import pytest

from engine.config import MuscConfig
from engine.data.discover import discover_dataset
from engine.data.synthetic import DEFECT_TYPES, DEFECT_TYPES_3D, write_synthetic_dataset
from engine.progress import run_to_completion
from engine.session import branch_2d, cache
from engine.session.cache import (
    cache_path,
    cache_usage,
    enforce_cap,
    fingerprint,
    load_session,
    save_session,
)
from engine.session.session import InspectionSession

CONFIG = MuscConfig(backbone="efficientnet_lite0", backbone_3d="fpfh", num_groups=256)


@pytest.fixture(scope="module")
def line(tmp_path_factory):
    root = tmp_path_factory.mktemp("cache") / "line"
    write_synthetic_dataset(root, n_good=6, n_per_defect=1, seed=4, with_xyz=True,
                            defects=DEFECT_TYPES + DEFECT_TYPES_3D)  # fmt: skip
    return root


@pytest.fixture(scope="module")
def scored(line):
    session = InspectionSession(discover_dataset(line), CONFIG)
    return session, run_to_completion(session.run())


@pytest.fixture(autouse=True)
def cache_home(tmp_path, monkeypatch):
    monkeypatch.setenv("MUSC_CACHE_DIR", str(tmp_path / "cache"))
    return tmp_path / "cache"


def _assert_same(a, b):
    np.testing.assert_allclose(a.image_scores, b.image_scores, atol=1e-6)
    for index in range(len(a.samples)):
        np.testing.assert_allclose(a.anomaly_map(index), b.anomaly_map(index), atol=1e-6)


def test_save_load_rescore_is_identical_without_backbones(scored, line, monkeypatch):
    session, result = scored
    path = save_session(session)
    assert path == cache_path(session.dataset, CONFIG) and path.is_file()
    assert path.parent.parent == cache.cache_dir().parent

    calls = []
    monkeypatch.setattr(branch_2d, "extract_2d", lambda *a, **k: calls.append(1))
    restored = load_session(discover_dataset(line), CONFIG)
    again = restored.rescore()
    assert restored.backbone is None and restored.backbone_3d is None
    assert [s.name for s in again.samples] == [s.name for s in result.samples]
    _assert_same(result, again)
    assert again.backbone == result.backbone and again.backbone_3d == result.backbone_3d
    assert run_to_completion(restored.run()) is not None  # nothing to recompute
    assert calls == [] and restored.backbone is None
    # how fast saving and restoring are, is measured by bench/bench_io.py


def test_cheap_change_hits_and_expensive_change_or_touched_file_misses(scored, line):
    session, _ = scored
    save_session(session)
    dataset = discover_dataset(line)
    hit = load_session(dataset, CONFIG.replace(x_percent=20.0, device="cpu"))
    assert hit is not None and hit.config.x_percent == 20.0
    assert load_session(dataset, CONFIG.replace(num_groups=128)) is None
    assert load_session(dataset, CONFIG.replace(backbone="resnet18")) is None
    assert fingerprint(dataset, CONFIG) != fingerprint(dataset, CONFIG.replace(c_thr=0.02))

    touched = dataset.samples[0].rgb_path
    stat = touched.stat()
    os.utime(touched, ns=(stat.st_atime_ns, stat.st_mtime_ns + 1_000_000_000))
    try:
        assert load_session(discover_dataset(line), CONFIG) is None
    finally:
        os.utime(touched, ns=(stat.st_atime_ns, stat.st_mtime_ns))
    assert load_session(discover_dataset(line), CONFIG) is not None


def test_corrupt_or_missing_file_is_a_miss(scored, line):
    session, _ = scored
    dataset = discover_dataset(line)
    assert load_session(dataset, CONFIG) is None  # nothing saved yet
    path = save_session(session)
    path.write_bytes(path.read_bytes()[: path.stat().st_size // 2])
    assert load_session(dataset, CONFIG) is None
    assert not path.exists()  # it would only fail again: removed
    path = save_session(session)
    path.write_bytes(b"not hdf5")
    assert load_session(dataset, CONFIG) is None and not path.exists()


def test_regroup_after_load_reuses_2d_features(scored, line, monkeypatch):
    session, result = scored
    save_session(session)
    restored = load_session(discover_dataset(line), CONFIG)
    tokens, features = restored._cache["extract 2D"], restored._cache["aggregate 2D"]
    clouds = restored._cache["load 3D"]
    monkeypatch.setattr(branch_2d, "extract_2d", lambda *a, **k: pytest.fail("re-read images"))
    stale = restored.update(restored.config.replace(c_thr=0.05))
    assert "group 3D" in stale and "extract 2D" not in stale
    regrouped = run_to_completion(restored.run())
    assert restored._cache["extract 2D"] is tokens and restored._cache["aggregate 2D"] is features
    assert restored._cache["load 3D"] is clouds
    assert restored.backbone is None and restored.backbone_3d is not None  # fpfh was needed
    assert len(regrouped.samples) == len(result.samples)


def test_big_tokens_are_stripped_and_reextracted_for_r_list(scored, line, monkeypatch):
    session, result = scored
    monkeypatch.setattr(cache, "TOKENS_LIMIT_BYTES", 0)
    save_session(session)
    restored = load_session(discover_dataset(line), CONFIG)
    assert restored._cache["extract 2D"].stripped
    _assert_same(result, restored.rescore())  # grid and image sizes are kept
    restored.update(restored.config.replace(r_list=(1, 3)))
    run_to_completion(restored.run())
    assert not restored._cache["extract 2D"].stripped and restored.backbone is not None


def _pearson(a: np.ndarray, b: np.ndarray) -> float:
    return float(np.corrcoef(a.ravel(), b.ravel())[0, 1])


def test_float16_features_score_again_like_the_float32_session(scored, line):
    """The features are stored in float16 but for the read-out layer; re-scoring reads them."""
    session, result = scored
    path = save_session(session)
    with h5py.File(path, "r") as f:
        stages = f["stages"]
        features = stages[str(json.loads(stages.attrs["keys"]).index("aggregate 2D"))]
        assert [features[str(i)].dtype for i in range(2)] == [np.float32, np.float16]
    restored = load_session(discover_dataset(line), CONFIG)
    _assert_same(result, restored.rescore())  # the read-out itself is exact
    reference = InspectionSession.from_snapshot(session.dataset, session.snapshot())
    config = CONFIG.replace(subsets=2)  # mutual scoring runs again, on the float16 features
    assert restored.update(config) == reference.update(config) == ["mutual scoring 2D",
                                                                   "mutual scoring 3D"]  # fmt: skip
    exact, rounded = run_to_completion(reference.run()), run_to_completion(restored.run())
    assert _pearson(exact.maps, rounded.maps) >= 0.9999
    assert min(_pearson(a, b) for a, b in zip(exact.maps, rounded.maps, strict=True)) >= 0.9999
    assert list(exact.ranking()) == list(rounded.ranking())


def test_applying_a_config_used_before_hits(scored, line):
    """Apply B, then back A: both were saved, both load."""
    session, result = scored
    path_a = save_session(session)
    other = InspectionSession.from_snapshot(session.dataset, session.snapshot())
    config_b = CONFIG.replace(subsets=2)
    other.update(config_b)
    run_to_completion(other.run())
    path_b = save_session(other)
    assert path_b != path_a and cache_usage() == path_a.stat().st_size + path_b.stat().st_size
    dataset = discover_dataset(line)
    back = load_session(dataset, CONFIG)
    assert back is not None and back.config.subsets == CONFIG.subsets
    _assert_same(result, back.rescore())
    assert load_session(dataset, config_b).config.subsets == 2


def test_auto_backbones_are_found_under_the_backbones_they_resolved_to(scored, line):
    session, _ = scored
    opened_with = CONFIG.replace(backbone=None, backbone_3d=None)  # the app's first run
    path = save_session(session, config=opened_with)
    assert path == cache_path(session.dataset, opened_with)
    dataset = discover_dataset(line)
    assert load_session(dataset, opened_with) is not None
    resolved = cache_path(dataset, CONFIG)
    assert resolved.is_file() and os.path.samefile(resolved, path)  # one file, two names
    assert load_session(dataset, CONFIG) is not None
    assert cache_usage() == path.stat().st_size
    stamp = path.stat().st_mtime_ns
    assert save_session(session, config=opened_with) == path  # the same keys: not rewritten
    assert path.stat().st_mtime_ns >= stamp and cache_usage() == path.stat().st_size


def test_a_load_counts_as_a_use_and_saving_keeps_the_cap(scored, line, monkeypatch):
    session, _ = scored
    path_a = save_session(session)
    other = InspectionSession.from_snapshot(session.dataset, session.snapshot())
    other.update(CONFIG.replace(seed=7, subsets=2))
    run_to_completion(other.run())
    path_b = save_session(other)
    long_ago = time.time() - 3600
    for age, path in enumerate((path_a, path_b)):  # A written first, B later
        os.utime(path, (long_ago + age, long_ago + age))
    assert load_session(discover_dataset(line), CONFIG) is not None  # A used now
    assert path_a.stat().st_mtime > path_b.stat().st_mtime
    assert enforce_cap(path_a.stat().st_size) == [path_b]
    # a cap that holds one file: saving B again evicts A, never the file just written
    monkeypatch.setenv("MUSC_CACHE_MAX_BYTES", str(path_a.stat().st_size))
    path_b = save_session(other)
    assert path_b.is_file() and not path_a.exists()
    assert cache_usage() == path_b.stat().st_size
