"""How much memory a run of N parts takes, and the subsets g that keep it under a budget.

Mutual scoring compares every patch with every other part, so its tables grow with N²: 5000
parts at L = 784 patches need ~78 GB for one layer's distances. Scoring in g subsets of N/g
parts (docs/method.md §9) divides that by g. :func:`plan_subsets` raises g above the default
1 only when the estimate exceeds the budget, and says so in one line.
"""

from __future__ import annotations

import math
import os
from dataclasses import dataclass

import numpy as np
import torch

from engine.backbones.fpfh import FPFH_DIM, POINT_MEMO_BYTES
from engine.config import MuscConfig
from engine.method.subsets import effective_subsets
from engine.session.stages import Stage

BUDGET_ENV = "MUSC_MEMORY_BUDGET_BYTES"
DEFAULT_BUDGET = 6 * 10**9
# below this many parts per subset the interval average has too few references to rank
# anomalies well, so the automatic split never goes finer (a user's explicit g still does)
MIN_SUBSET = 100
# live (n, L, n) float32 tables while one layer of one subset is scored: the distances, the
# copy without self-matches, the sort's values and int64 indices, the cumsum, the running total
_TRANSIENT_TABLES = 7
_FLOAT = 4
# measured: importing the engine and building EfficientNet-Lite0 takes ~570 MiB of RSS
RUNTIME_BYTES = 600 * 2**20
_SCORE_STAGES = (Stage.SCORE_2D, Stage.SCORE_3D, Stage.SCORE_CAE)


@dataclass(frozen=True)
class FeatureSizes:
    """Per-part sizes that the memory of a run scales with.

    Attributes:
        patches_2d: L, tokens per part (0 without 2D).
        channels_2d: Channels of each scored 2D layer.
        groups_3d: G, point groups per part (0 without 3D).
        channels_3d: Channels of each 3D layer (Point-MAE's 3 x 384 until measured).
        points_3d: Points of one cloud at most (the map grid).
        group_size: Points per group.
        map_side: Side S of the square anomaly maps the read-out keeps per part (0: none).
    """

    patches_2d: int = 0
    channels_2d: tuple[int, ...] = ()
    groups_3d: int = 0
    channels_3d: tuple[int, ...] = (384, 384, 384)
    points_3d: int = 0
    group_size: int = 0
    map_side: int = 0

    @classmethod
    def of_run(cls, config: MuscConfig, modality: str, cache: dict[Stage, object]) -> FeatureSizes:
        """The sizes of a session's run, measured from its cached 2D features and 3D features."""
        sizes: dict[str, object] = {"map_side": config.eval_size}
        features_2d = cache.get(Stage.AGGREGATE_2D) if "2d" in modality else None
        if features_2d:
            sizes["patches_2d"] = int(features_2d[0].shape[1])
            sizes["channels_2d"] = tuple(int(layer.shape[-1]) for layer in features_2d)
        if "3d" in modality:
            sizes.update(groups_3d=config.num_groups, points_3d=config.eval_size**2,
                         group_size=config.group_size)  # fmt: skip
            features_3d = cache.get(Stage.EXTRACT_3D)
            if features_3d:
                sizes["channels_3d"] = tuple(int(layer.shape[-1]) for layer in features_3d)
        return cls(**sizes)


@dataclass(frozen=True)
class MemoryEstimate:
    """Bytes of the dominant tensors of a run, by kind."""

    features: int  # raw 2D tokens + SNAMD features per layer, 3D features
    clouds: int  # 3D clouds and their groups
    tables: int  # the kept sorted cumulative distance tables of every subset
    scoring: int  # the transient tables while the largest subset is scored
    maps: int = 0  # the read-out's anomaly maps (N, S, S), and one more copy while it builds them
    runtime: int = RUNTIME_BYTES  # the interpreter, torch, open3d and a backbone, before any data

    @property
    def total(self) -> int:
        """All of it."""
        return (self.features + self.clouds + self.tables + self.scoring + self.maps
                + self.runtime)  # fmt: skip


def estimate(n_parts: int, sizes: FeatureSizes, subsets: int = 1) -> MemoryEstimate:
    """Memory of a run of ``n_parts`` scored in ``subsets`` subsets (clipped like the split)."""
    groups = effective_subsets(n_parts, subsets)
    largest = math.ceil(n_parts / groups)
    rows = sizes.patches_2d + sizes.groups_3d  # both modalities' tables, per part
    # tokens (N, h, w, C) and SNAMD features (N, L, C) are both kept, per layer
    features = 2 * n_parts * sizes.patches_2d * sum(sizes.channels_2d) * _FLOAT
    if sizes.groups_3d:
        features += n_parts * sizes.groups_3d * sum(sizes.channels_3d) * _FLOAT
    # per point: sensor and normalised xyz, pixel index, 3 interpolation indices and weights;
    # per group: its FPS search neighbourhood and its IPG members (int64)
    per_cloud = sizes.points_3d * (2 * 3 * _FLOAT + 8 + 3 * 8 + 3 * _FLOAT)
    per_cloud += 2 * sizes.groups_3d * sizes.group_size * 8
    clouds = n_parts * per_cloud if sizes.groups_3d else 0
    if sizes.groups_3d:
        # FPFH keeps its per-point descriptors for re-groups, up to its own cap (counted for
        # every 3D backbone: an upper bound, at most POINT_MEMO_BYTES too high for Point-MAE)
        clouds += min(POINT_MEMO_BYTES, n_parts * sizes.points_3d * FPFH_DIM * _FLOAT)
    tables = n_parts * rows * max(0, largest - 1) * _FLOAT
    scoring = _TRANSIENT_TABLES * largest * max(sizes.patches_2d, sizes.groups_3d) * largest
    # fused maps plus a transient copy; with both modalities each one's own maps as well
    per_map = sizes.map_side**2 * _FLOAT
    copies = 2 + (2 if sizes.patches_2d and sizes.groups_3d else 0)
    maps = n_parts * per_map * copies
    return MemoryEstimate(features, clouds, tables, scoring * _FLOAT, maps)


def estimate_bytes(n_parts: int, config: MuscConfig, sizes: FeatureSizes) -> int:
    """Estimated peak bytes of a run of ``n_parts`` with ``config.subsets``."""
    return estimate(n_parts, sizes, config.subsets).total


def memory_budget() -> int:
    """Bytes a run may take: ``MUSC_MEMORY_BUDGET_BYTES`` when set, else 6 GB."""
    configured = os.environ.get(BUDGET_ENV, "").strip()
    return int(float(configured)) if configured else DEFAULT_BUDGET


def auto_subsets(
    n_parts: int, config: MuscConfig, sizes: FeatureSizes, budget_bytes: int
) -> tuple[int, str | None]:
    """The subsets g that keep the estimate under ``budget_bytes``, and why it was raised.

    Only the default g = 1 is raised; an explicit g is the user's choice and kept. g grows no
    further than subsets of :data:`MIN_SUBSET` parts; when even that does not fit, the line says
    so.

    Returns:
        (g, None) when ``config.subsets`` is kept, else (g, a one-line reason).
    """
    if config.subsets != 1 or estimate(n_parts, sizes).total <= budget_bytes:
        return config.subsets, None
    finest = max(1, n_parts // MIN_SUBSET)
    groups = next(
        (g for g in range(2, finest + 1) if estimate(n_parts, sizes, g).total <= budget_bytes),
        finest,
    )
    if groups == 1:
        return 1, None  # too few parts to split into useful subsets
    full = estimate(n_parts, sizes)
    need = (full.tables + full.scoring) / 1e9
    after = estimate(n_parts, sizes, groups).total / 1e9
    reason = (
        f"{n_parts} parts need ~{need:.1f} GB for the distance tables; scoring in {groups} "
        f"subsets of ~{math.ceil(n_parts / groups)} to stay under {budget_bytes / 1e9:.1f} GB"
    )
    if after > budget_bytes / 1e9:
        reason = (
            f"{n_parts} parts need ~{need:.1f} GB for the distance tables; even {groups} "
            f"subsets of ~{math.ceil(n_parts / groups)} need ~{after:.1f} GB, over the "
            f"{budget_bytes / 1e9:.1f} GB budget ({BUDGET_ENV}); lower the image size"
        )
    return groups, reason


def plan_subsets(
    n_parts: int, config: MuscConfig, modality: str, cache: dict[Stage, object], warnings: list
) -> int:
    """The g a session scores ``n_parts`` with; notes a clipped or raised g in ``warnings``.

    Score stages already cached keep the g they were computed with, so 2D and 3D tables always
    pair up subset by subset (a config change that re-scores one modality re-scores with it).
    """
    cached = next((cache[s] for s in _SCORE_STAGES if s in cache), None)
    if cached is not None:
        return len(cached)
    used = effective_subsets(n_parts, config.subsets)
    if used != config.subsets:
        warnings.append(
            f"subsets g={config.subsets} clipped to {used}: every subset needs at "
            f"least 2 of the {n_parts} samples (4 or more to split at all)."
        )
        return used
    sizes = FeatureSizes.of_run(config, modality, cache)
    groups, reason = auto_subsets(n_parts, config, sizes, memory_budget())
    if reason:
        warnings.append(reason + ".")
    return groups


def tensor_bytes(value: object) -> int:
    """Bytes of every tensor reachable in ``value`` (lists, dicts, dataclasses), counted once."""
    seen: set[int] = set()

    def walk(item: object) -> int:
        if isinstance(item, torch.Tensor):
            key = item.untyped_storage().data_ptr()
            if key in seen:
                return 0
            seen.add(key)
            return item.untyped_storage().nbytes()
        if isinstance(item, np.ndarray):
            return item.nbytes
        if isinstance(item, dict):
            return sum(walk(v) for v in item.values())
        if isinstance(item, list | tuple):
            return sum(walk(v) for v in item)
        if hasattr(item, "__dataclass_fields__"):
            return sum(walk(getattr(item, name)) for name in item.__dataclass_fields__)
        return 0

    return walk(value)
