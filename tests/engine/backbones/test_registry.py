"""Backbone registry: names, errors, and the choice of the default backbone."""

from __future__ import annotations

import socket
from pathlib import Path

import pytest
import torch

import engine.backbones as backbones
from engine.backbones import (
    backbone_description,
    backbone_entry,
    choose_default_backbone,
    create_backbone,
    hub_reachable,
    list_backbones,
    register_backbone,
)
from engine.errors import InvalidInputError, UnknownBackboneError

EXPECTED = {
    "dino_vitb8",
    "dino_vits8",
    "dinov2_vits14",
    "dinov2_vitb14",
    "clip_vitl14_336",
    "efficientnet_lite0",
    "efficientnet_lite1",
    "efficientnet_lite2",
}


def test_all_backbones_listed() -> None:
    names = list_backbones()
    assert set(names) == EXPECTED
    assert names == sorted(names)
    for name in names:
        assert backbone_description(name)
    assert backbone_entry("efficientnet_lite0").offline
    assert not backbone_entry("dino_vitb8").offline
    spec = backbone_entry("dino_vitb8").weights_spec
    assert spec.filename == "vit_base_patch8_224.dino.safetensors"
    assert spec.url == (
        "https://huggingface.co/timm/vit_base_patch8_224.dino/resolve/main/model.safetensors"
    )


def test_unknown_name_lists_valid_names() -> None:
    with pytest.raises(UnknownBackboneError) as err:
        create_backbone("dino_vitb16")
    msg = str(err.value)
    assert "'dino_vitb16'" in msg
    assert all(name in msg for name in EXPECTED)
    assert isinstance(err.value, KeyError)
    with pytest.raises(UnknownBackboneError):
        backbone_description("nope")


def test_duplicate_registration_rejected() -> None:
    entry = backbone_entry("efficientnet_lite0")
    with pytest.raises(ValueError, match="twice"):
        register_backbone(
            "efficientnet_lite0",
            entry.factory,
            description="x",
            offline=True,
            default_image_size=224,
            weights_spec=entry.weights_spec,
        )


def test_missing_explicit_weights(tmp_path: Path) -> None:
    with pytest.raises(InvalidInputError, match="missing.pth"):
        create_backbone("efficientnet_lite0", tmp_path / "missing.pth")


def test_unfitting_weights_file_is_named(tmp_path: Path) -> None:
    bad = tmp_path / "other.pth"
    torch.save({"not_a_key": torch.zeros(1)}, bad)
    with pytest.raises(InvalidInputError, match="other.pth"):
        create_backbone("efficientnet_lite0", bad)


def test_default_offline(cache: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    seen: list[float] = []

    def unreachable(timeout: float) -> bool:
        seen.append(timeout)
        return False

    monkeypatch.setattr(backbones, "hub_reachable", unreachable)
    name, reason = choose_default_backbone(timeout=0.5)
    assert name == "efficientnet_lite0"
    assert seen == [0.5]
    assert "efficientnet_lite0" in reason and "unreachable" in reason and "\n" not in reason


def test_default_online(cache: Path) -> None:
    name, reason = choose_default_backbone(probe=lambda timeout: True)
    assert name == "dino_vitb8"
    assert "download" in reason


def test_default_cached_skips_probe(cache: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    def no_probe(timeout: float) -> bool:
        raise AssertionError("the network must not be probed when the weights are cached")

    monkeypatch.setattr(backbones, "hub_reachable", no_probe)
    cache.mkdir()
    (cache / "vit_base_patch8_224.dino.safetensors").write_bytes(b"fake")
    name, reason = choose_default_backbone()
    assert name == "dino_vitb8"
    assert "cached" in reason


def test_hub_reachable_probe(closed_port: int) -> None:
    assert not hub_reachable(1.0, host="127.0.0.1", port=closed_port)
    with socket.socket() as server:
        server.bind(("127.0.0.1", 0))
        server.listen(1)
        assert hub_reachable(1.0, host="127.0.0.1", port=server.getsockname()[1])
