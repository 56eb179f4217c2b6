"""Vision transformers through timm: DINO (paper default), DINOv2 and CLIP.

Features follow docs/method.md §3: the *final* LayerNorm is applied to the output of each
selected block (timm ``forward_intermediates(norm=True)``), prefix/CLS tokens are dropped, no L2
normalisation.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import partial
from pathlib import Path

import torch

from engine.backbones.base import Backbone2D, BackboneInfo, block_indices, check_images
from engine.backbones.registry import register_backbone
from engine.backbones.weights import WeightsSpec, load_checkpoint
from engine.errors import InvalidInputError

HUB_URL = "https://huggingface.co/timm/{name}/resolve/main/model.safetensors"


def hub_weights_spec(timm_name: str) -> WeightsSpec:
    """Weights of a timm model on the Hugging Face hub (no published hash), cached by tag name."""
    return WeightsSpec(f"{timm_name}.safetensors", HUB_URL.format(name=timm_name))


@dataclass(frozen=True)
class VitVariant:
    """A registered ViT: our name, the timm model (architecture.tag) and its defaults."""

    name: str
    timm_name: str
    description: str
    default_image_size: int
    default_layers: tuple[int, ...]


# Default sizes: the patch-8 models at their native 224 (28x28 grid, the paper's setting); DINOv2 at
# 392 so that its grid is also 28x28 (224 would give a coarse 16x16 grid, and pixel metrics depend
# most on grid resolution) at the same token count, hence the same cost, as ViT-B/8 at 224; CLIP at
# its native 336 (24x24). Layers: 4th, 8th and last block of 12 (docs/method.md §3), 8th/16th/24th
# of 24.
VARIANTS: tuple[VitVariant, ...] = (
    VitVariant(
        "dino_vitb8",
        "vit_base_patch8_224.dino",
        "DINO ViT-B/8, the paper's default (timm vit_base_patch8_224.dino, ~350 MB download)",
        224,
        (3, 7, 11),
    ),
    VitVariant(
        "dino_vits8",
        "vit_small_patch8_224.dino",
        "DINO ViT-S/8 (timm vit_small_patch8_224.dino, ~90 MB download)",
        224,
        (3, 7, 11),
    ),
    VitVariant(
        "dinov2_vits14",
        "vit_small_patch14_dinov2.lvd142m",
        "DINOv2 ViT-S/14 (timm vit_small_patch14_dinov2.lvd142m, ~90 MB download)",
        392,
        (3, 7, 11),
    ),
    VitVariant(
        "dinov2_vitb14",
        "vit_base_patch14_dinov2.lvd142m",
        "DINOv2 ViT-B/14 (timm vit_base_patch14_dinov2.lvd142m, ~350 MB download)",
        392,
        (3, 7, 11),
    ),
    VitVariant(
        "clip_vitl14_336",
        "vit_large_patch14_clip_336.openai",
        "CLIP ViT-L/14 at 336 px, the paper's 2D-only tables (timm "
        "vit_large_patch14_clip_336.openai, ~1.2 GB download)",
        336,
        (7, 15, 23),
    ),
)


def _state_dict(path: Path, variant: VitVariant) -> dict[str, torch.Tensor]:
    """The tensors of a timm-style checkpoint (bare, or wrapped in ``state_dict``/``model``)."""
    state = load_checkpoint(path, f"{variant.timm_name} weights (.safetensors or .pth)")
    for key in ("state_dict_ema", "model_ema", "state_dict", "model"):  # as timm unwraps
        if isinstance(state, dict) and isinstance(state.get(key), dict):
            state = state[key]
            break
    if not isinstance(state, dict) or not state:
        raise InvalidInputError(
            f"Weights file {path} is not a state dict: expected a dict of tensors for "
            f"{variant.timm_name}, found {type(state).__name__}"
        )
    return {str(k).removeprefix("_orig_mod.").removeprefix("module."): v for k, v in state.items()}


class TimmViTBackbone(Backbone2D):
    """A frozen timm ViT returning normalised patch tokens of selected blocks."""

    # ViT-B/8 under bf16 autocast: extraction 2.45x faster on a 2-core AMX CPU, maps Pearson
    # 0.99938 with float32 (cable_gland, N = 53, random weights; README "Precision")
    auto_bf16 = True

    def __init__(
        self,
        variant: VitVariant,
        weights: Path | None,
        weights_source: str,
        *,
        image_size: int,
        layers: tuple[int, ...] | None,
        device: torch.device,
    ) -> None:
        import timm  # lazy: importing timm costs seconds and is not needed to list backbones

        # img_size builds the position embedding for the requested grid; timm's checkpoint filter
        # resamples the pretrained one on load. num_classes=0: the classifier is never used.
        kwargs = dict(img_size=image_size, num_classes=0)
        if weights is None:
            model = timm.create_model(variant.timm_name, pretrained=False, **kwargs)
        else:
            # Read here (safely, one-line errors) and hand timm the tensors: its own file loader
            # names neither the file nor the fault in words a user can act on.
            state = _state_dict(weights, variant)
            try:
                model = timm.create_model(
                    variant.timm_name,
                    pretrained=True,
                    pretrained_cfg_overlay=dict(state_dict=state),
                    **kwargs,
                )
            except (RuntimeError, KeyError, ValueError, OSError, AssertionError) as exc:
                raise InvalidInputError(
                    f"Weights file {weights} does not fit {variant.timm_name} ({variant.name}): "
                    f"{type(exc).__name__}: {' '.join(str(exc).split())[:300]}"
                ) from exc
            del state
            model.pretrained_cfg.pop("state_dict", None)  # do not keep a second copy alive
        patch = int(model.patch_embed.patch_size[0])
        if image_size % patch:
            raise InvalidInputError(
                f"image_size {image_size} is not a multiple of {variant.name}'s patch size {patch}"
            )
        layers = layers if layers is not None else variant.default_layers
        self.layers = block_indices(layers, len(model.blocks), variant.name)
        self.model = model.eval().requires_grad_(False).to(device)
        self.device = device
        # CLIP uses its own normalisation constants; the pretrained config carries them.
        self.mean = tuple(model.pretrained_cfg["mean"])
        self.std = tuple(model.pretrained_cfg["std"])
        self.info = BackboneInfo(
            name=variant.name,
            architecture=variant.timm_name,
            weights_source=weights_source,
            weights_path=str(weights) if weights is not None else None,
            image_size=image_size,
            patch_stride=patch,
            layers=tuple(f"blocks.{i}" for i in self.layers),
        )

    def extract(self, images: torch.Tensor) -> list[torch.Tensor]:
        """Patch tokens of each configured block, see :meth:`Backbone2D.extract`."""
        check_images(images, self.image_size)
        with torch.no_grad(), self.autocast():
            feats = self.model.forward_intermediates(
                images,
                indices=list(self.layers),
                norm=True,
                output_fmt="NCHW",
                intermediates_only=True,
            )
        return [f.permute(0, 2, 3, 1).float().contiguous() for f in feats]


for _v in VARIANTS:
    register_backbone(
        _v.name,
        partial(TimmViTBackbone, _v),  # the constructor is the factory
        modality="2d",
        description=_v.description,
        offline=False,
        weights_spec=hub_weights_spec(_v.timm_name),
        default_image_size=_v.default_image_size,
        default="paper" if _v.name == "dino_vitb8" else None,
    )
