"""bf16 autocast in the backbones: float32 out, close to the float32 forward, but really bf16."""

from __future__ import annotations

import pytest
import torch

from engine.backbones import create_backbone, create_point_backbone
from tests.engine.backbones.test_point_mae import small_cloud


def _pearson(a: torch.Tensor, b: torch.Tensor) -> float:
    return torch.corrcoef(torch.stack([a.flatten(), b.flatten()]))[0, 1].item()


def _compare(fp32: list[torch.Tensor], bf16: list[torch.Tensor]) -> None:
    assert len(fp32) == len(bf16)
    for a, b in zip(fp32, bf16, strict=True):
        assert b.dtype == torch.float32 and b.shape == a.shape and b.is_contiguous()
        assert _pearson(a, b) >= 0.999
        # the forward really ran in bf16: identical outputs would mean autocast never applied
        assert not torch.equal(a, b)


@pytest.mark.parametrize(
    ("name", "size"), [("efficientnet_lite0", 64), ("dino_vits8", 32)], ids=["effnet", "vit"]
)
def test_2d_backbone_bf16_returns_close_float32(name: str, size: int) -> None:
    torch.manual_seed(0)
    backbone = create_backbone(name, "random", image_size=size)
    assert backbone.precision is None  # float32 until the session says otherwise
    images = torch.randn(2, 3, size, size)
    fp32 = backbone.extract(images)
    backbone.precision = torch.bfloat16
    _compare(fp32, backbone.extract(images))
    backbone.precision = None  # and back: the setting is read on every call
    assert all(torch.equal(a, b) for a, b in zip(fp32, backbone.extract(images), strict=True))


def test_point_mae_bf16_returns_close_float32() -> None:
    backbone = create_point_backbone("point_mae", "random")
    cloud = small_cloud()
    fp32 = backbone.extract(*cloud)
    backbone.precision = torch.bfloat16
    _compare(fp32, backbone.extract(*cloud))


def test_fpfh_ignores_precision() -> None:
    backbone = create_point_backbone("fpfh")
    cloud = small_cloud()
    fp32 = backbone.extract(*cloud)
    backbone.precision = torch.bfloat16
    assert all(torch.equal(a, b) for a, b in zip(fp32, backbone.extract(*cloud), strict=True))


@pytest.mark.parametrize("native", [True, False])
def test_auto_is_bf16_only_for_the_backbones_that_opt_in(
    monkeypatch: pytest.MonkeyPatch, native: bool
) -> None:
    """ViT and Point-MAE gain ~2.4x with maps Pearson >= 0.999; EfficientNet-Lite does not pay."""
    from engine import precision

    monkeypatch.setattr(precision, "cpu_has_bf16", lambda: native)
    backbones = {
        "vit": create_backbone("dino_vits8", "random", image_size=32),
        "effnet": create_backbone("efficientnet_lite0", "random", image_size=64),
        "point_mae": create_point_backbone("point_mae", "random"),
        "fpfh": create_point_backbone("fpfh"),
    }
    for name, backbone in backbones.items():
        precision.apply_precision(backbone, "auto")
        opted_in = name in ("vit", "point_mae")
        assert backbone.precision is (torch.bfloat16 if native and opted_in else None), name
        precision.apply_precision(backbone, "bf16")  # asked for: every backbone
        assert backbone.precision is torch.bfloat16
        precision.apply_precision(backbone, "fp32")
        assert backbone.precision is None
