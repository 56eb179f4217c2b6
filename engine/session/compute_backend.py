"""Where mutual scoring's distance tables, and optionally the features, are computed.

The all-pairs distance job is the one stage that outgrows a machine, so the session takes it
from a pluggable backend: :class:`LocalDistances` (this process, the default) or
:class:`engine.cluster.ray_backend.RayDistances` (the same tile pairs as Ray tasks). Both
return the same (N, L, N) table, so everything downstream (sorted cumulative sums, CAE, X %,
RsCon, re-scoring) is unchanged and stays local. A backend that also implements
:class:`RemoteExtraction` extracts the features elsewhere too (Ray actors holding the backbone).
"""

from __future__ import annotations

from collections.abc import Generator
from typing import Protocol, runtime_checkable

import numpy as np
import torch

from engine.backbones.base import BackboneInfo, PointBackboneInfo
from engine.config import MuscConfig
from engine.data.samples import Sample, SkippedFile
from engine.method import mutual_scoring
from engine.progress import CancelToken, Progress


class DistanceBackend(Protocol):
    """Computes :func:`engine.method.mutual_scoring.patch_to_sample_distances`' table."""

    def distances(
        self,
        features: torch.Tensor,
        chunk_mib: int,
        stage: str,
        *,
        unit_norm: bool,
        cancel: CancelToken | None = None,
    ) -> Generator[Progress, None, torch.Tensor]:
        """(N, L, N) distances of ``features`` (N, L, C); yields Progress per finished block."""
        ...


class LocalDistances:
    """The single-process computation: tile pairs one after the other in this process."""

    def distances(
        self,
        features: torch.Tensor,
        chunk_mib: int,
        stage: str,
        *,
        unit_norm: bool,
        cancel: CancelToken | None = None,
    ) -> Generator[Progress, None, torch.Tensor]:
        """See :class:`DistanceBackend`; ``cancel`` is honoured by the caller between yields."""
        table = yield from mutual_scoring.patch_to_sample_distances(
            features, chunk_mib, stage, unit_norm=unit_norm
        )
        return table


@runtime_checkable
class RemoteExtraction(Protocol):
    """Feature extraction away from this process, building the backbones from the config."""

    def extract_2d(
        self,
        samples: list[Sample],
        config: MuscConfig,
        skipped: list[SkippedFile],
        foregrounds: dict[str, np.ndarray] | None,
        cancel: CancelToken | None = None,
    ) -> Generator[Progress, None, tuple[object, BackboneInfo]]:
        """:func:`engine.session.branch_2d.extract_2d`'s tokens, and the backbone's info."""
        ...

    def extract_3d(
        self, clouds: dict, groups: dict, config: MuscConfig, cancel: CancelToken | None = None
    ) -> Generator[Progress, None, tuple[list[torch.Tensor], PointBackboneInfo]]:
        """:func:`engine.session.branch_3d.extract_3d`'s features, and the backbone's info."""
        ...
