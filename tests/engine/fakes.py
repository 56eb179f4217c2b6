"""A tiny deterministic backbone so pipeline tests run in milliseconds without weights."""

from __future__ import annotations

import torch
import torch.nn.functional as F

from engine.backbones.base import Backbone2D, Backbone3D, BackboneInfo, PointBackboneInfo


class PixelPatchBackbone(Backbone2D):
    """Tokens = 8x8 average-pooled pixels through a fixed random projection (two layers)."""

    def __init__(self, image_size: int = 64, channels: int = 16) -> None:
        generator = torch.Generator().manual_seed(0)
        self.projection = torch.randn(3, channels, generator=generator)
        self.info = BackboneInfo(
            name="pixel_patches",
            architecture="avg-pool + random projection",
            weights_source="random (timing only)",
            weights_path=None,
            image_size=image_size,
            patch_stride=8,
            layers=("pool8", "pool8+3x3"),
        )
        self.calls = 0

    def extract(self, images: torch.Tensor) -> list[torch.Tensor]:
        self.calls += 1
        pooled = F.avg_pool2d(images, 8)  # (B, 3, h, w)
        tokens = torch.einsum("bchw,cd->bhwd", pooled, self.projection)
        smooth = F.avg_pool2d(pooled, 3, stride=1, padding=1, count_include_pad=False)
        return [tokens, torch.einsum("bchw,cd->bhwd", smooth, self.projection)]


class GroupShapeBackbone(Backbone3D):
    """Per-group features = centred member coordinates summarised (mean, spread), two layers."""

    def __init__(self, name: str = "group_shape") -> None:
        self.info = PointBackboneInfo(
            name=name,
            architecture="group mean + std of centred points",
            weights_source="weight-free",
            weights_path=None,
            layers=("mean|std", "abs"),
        )
        self.calls = 0

    def extract(
        self, points: torch.Tensor, centers: torch.Tensor, groups: torch.Tensor
    ) -> list[torch.Tensor]:
        self.calls += 1
        local = points[groups] - centers[:, None, :]  # (G, K, 3)
        first = torch.cat([local.mean(dim=1), local.std(dim=1)], dim=1)
        return [first, local.abs().mean(dim=1)]
