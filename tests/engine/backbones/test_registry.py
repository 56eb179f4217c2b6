"""Backbone registry: names, errors, and the choice of the default backbone."""

from __future__ import annotations

import socket
from pathlib import Path

import pytest
import torch

import engine.backbones.registry as registry
from engine.backbones import (
    backbone_entry,
    choose_default_backbone,
    create_backbone,
    default_backbone,
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
    names = list_backbones("2d")
    assert set(names) == EXPECTED
    assert names == sorted(names)
    assert list_backbones() == [*names, "fpfh", "point_mae"]  # 2D first, then 3D
    for name in names:
        assert backbone_entry(name).description and backbone_entry(name).modality == "2d"
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
        backbone_entry("nope")
    with pytest.raises(UnknownBackboneError, match="Unknown backbone 'fpfh'"):
        create_backbone("fpfh")  # a 3D name is no 2D backbone


def test_defaults_are_flagged_in_the_registry() -> None:
    assert default_backbone("2d") == "dino_vitb8"
    assert default_backbone("2d", "offline") == "efficientnet_lite0"
    assert default_backbone("3d") == "point_mae"
    assert default_backbone("3d", "offline") == "fpfh"


def test_duplicate_registration_rejected() -> None:
    entry = backbone_entry("efficientnet_lite0")
    with pytest.raises(ValueError, match="twice"):
        register_backbone(
            "efficientnet_lite0",
            entry.factory,
            modality="2d",
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


@pytest.mark.parametrize(
    ("modality", "host", "reason"),
    [
        (
            "2d",
            "huggingface.co",
            "DINO ViT-B/8 weights are not cached and huggingface.co is unreachable; using the "
            "offline EfficientNet-Lite0 (efficientnet_lite0)",
        ),
        (
            "3d",
            "github.com",
            "Point-MAE weights are not cached and github.com is unreachable; using the "
            "weight-free FPFH descriptor (fpfh)",
        ),
    ],
)
def test_default_offline(
    modality: str, host: str, reason: str, cache: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    seen: list[tuple[float, str]] = []

    def unreachable(timeout: float, host: str = "?", port: int = 443) -> bool:
        seen.append((timeout, host))
        return False

    monkeypatch.setattr(registry, "hub_reachable", unreachable)
    choice = choose_default_backbone(timeout=0.5, modality=modality)
    assert choice == (default_backbone(modality, "offline"), reason)
    assert seen == [(0.5, host)]


def test_default_online(cache: Path) -> None:
    name, reason = choose_default_backbone(probe=lambda timeout: True)
    assert name == "dino_vitb8"
    assert "download" in reason


def test_default_cached_skips_probe(cache: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    def no_probe(timeout: float) -> bool:
        raise AssertionError("the network must not be probed when the weights are cached")

    monkeypatch.setattr(registry, "hub_reachable", no_probe)
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
