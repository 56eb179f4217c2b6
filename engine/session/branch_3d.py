"""The 3D branch: XYZ maps -> foreground clouds -> point groups -> per-group features.

Stages and what they depend on (docs/method.md §10): :func:`load_clouds` (background removal,
resizing to the map grid, normalisation, FPS/KNN/curvature) depends only on the data;
:func:`group_clouds` (IPG) on ``k_iter``/``c_thr``; :func:`extract_3d` (backbone + SNAMD-3D)
on the groups.
"""

from __future__ import annotations

import time
from collections.abc import Generator
from contextlib import closing
from dataclasses import dataclass

import numpy as np
import torch
from PIL import Image

from engine.backbones.base import Backbone3D
from engine.config import MuscConfig
from engine.data.background import remove_background
from engine.data.prefetch import default_workers, prefetched
from engine.data.readers import read_xyz
from engine.data.samples import Sample, SkippedFile
from engine.data.xyz import foreground_mask, organized_to_cloud, resize_xyz
from engine.errors import InvalidInputError
from engine.method.maps import interpolation_weights
from engine.method.point_groups import (
    GroupingBasis,
    PointGroups,
    normalize_unit_ball,
    prepare_groups,
    regroup,
)
from engine.method.snamd import snamd_3d
from engine.progress import Progress


@dataclass
class Cloud:
    """One sample's foreground cloud on the square map grid."""

    points: torch.Tensor  # (P, 3) normalised to the unit ball, on the compute device
    xyz: np.ndarray  # (P, 3) the same points in sensor coordinates (metres), for viewers
    pixel_index: torch.Tensor  # (P,) row-major pixel on the map grid
    basis: GroupingBasis  # FPS centres, their search neighbourhoods and curvatures
    interpolation: tuple[torch.Tensor, torch.Tensor]  # 3-NN centres and weights per point
    foreground: np.ndarray  # (H, W) bool foreground at the original resolution


def _image_size(path) -> tuple[int, int] | None:
    try:
        with Image.open(path) as image:
            return image.height, image.width
    except (OSError, ValueError):
        return None  # the 2D branch reports unreadable images itself


def _add_time(timings: dict[str, float] | None, key: str, started: float) -> float:
    now = time.perf_counter()
    if timings is not None:
        timings[key] = timings.get(key, 0.0) + now - started
    return now


@dataclass
class CleanedMap:
    """One sample's XYZ map read and split into part and background (the reader thread's work)."""

    xyz: np.ndarray  # (H, W, 3) as read
    mask: np.ndarray  # (H, W) bool, the part
    note: str  # from background removal, "" when there is nothing to say
    seconds: float  # spent reading and cleaning


def read_cleaned(sample: Sample, config: MuscConfig) -> CleanedMap:
    """Read ``sample``'s XYZ map and find the part's pixels; raises InvalidInputError if unusable.

    Pure numpy/open3d work that can run on a reader thread (:func:`load_clouds`).
    """
    started = time.perf_counter()
    shape = _image_size(sample.rgb_path) if sample.rgb_path is not None else None
    xyz = read_xyz(sample.xyz_path, shape)
    note = ""
    if config.remove_background:
        cleaned = remove_background(xyz)
        mask, note = cleaned.mask, "; ".join(cleaned.notes)
    else:
        mask = foreground_mask(xyz)
    return CleanedMap(xyz, mask, note, time.perf_counter() - started)


def load_cloud(
    sample: Sample,
    config: MuscConfig,
    device: torch.device,
    timings: dict[str, float] | None = None,
    cleaned: CleanedMap | None = None,
) -> tuple[Cloud, str]:
    """Read, clean and prepare one sample's XYZ map; raises InvalidInputError when unusable.

    Args:
        sample: A sample with an XYZ map.
        config: Background removal, map size and grouping sizes are read from it.
        device: Where the cloud's tensors live.
        timings: Optional accumulator of seconds per sub-stage (for benchmarks).
        cleaned: The map already read by :func:`read_cleaned` (on a reader thread), or None
            to read it here.

    Returns:
        The cloud and a note from background removal ("" when there is nothing to say).
    """
    cleaned = cleaned or read_cleaned(sample, config)
    if timings is not None:  # the reader's own time, even where it overlapped other work
        key = "3D read + background removal"
        timings[key] = timings.get(key, 0.0) + cleaned.seconds
    started = time.perf_counter()
    xyz, mask = cleaned.xyz, cleaned.mask
    grid = resize_xyz(np.where(mask[..., None], xyz, 0.0).astype(np.float32), config.eval_size)
    points, pixel_index = organized_to_cloud(grid)
    if len(points) < config.group_size:
        raise InvalidInputError(
            f"{sample.xyz_path}: only {len(points)} foreground points on the "
            f"{config.eval_size}x{config.eval_size} map grid, fewer than one group of "
            f"{config.group_size}; check the background removal or the sensor data."
        )
    normalised, _, _ = normalize_unit_ball(torch.from_numpy(points).to(device))
    basis = prepare_groups(normalised, config.num_groups, config.group_size)
    interpolation = interpolation_weights(normalised, basis.centers)
    index = torch.from_numpy(pixel_index).to(device)
    _add_time(timings, "3D FPS + KNN + curvature", started)
    return Cloud(normalised, points, index, basis, interpolation, mask), cleaned.note


def load_clouds(
    samples: list[Sample],
    config: MuscConfig,
    device: torch.device,
    skipped: list[SkippedFile],
    warnings: list[str],
    timings: dict[str, float] | None = None,
) -> Generator[Progress, None, dict[str, Cloud]]:
    """Clouds of every sample with a usable XYZ map, by sample name.

    A missing or bad map is reported (skipped file + reason) and that sample goes on without 3D.
    The next maps are read and cleaned on a reader thread while this one is grouped.
    """
    clouds: dict[str, Cloud] = {}
    with_xyz = [s for s in samples if s.xyz_path is not None]
    # one reader only: background removal reseeds open3d's process-wide RANSAC generator, so
    # two concurrent removals could draw from each other's sequence and differ run to run
    workers = min(1, default_workers())
    reader = prefetched(with_xyz, lambda s: read_cleaned(s, config), workers=workers, ahead=2)
    with closing(reader):
        read = iter(reader)
        for done, sample in enumerate(samples, start=1):
            if sample.xyz_path is not None:
                _, pending = next(read)
                try:
                    clouds[sample.name], note = load_cloud(
                        sample, config, device, timings, pending.result()
                    )
                except InvalidInputError as error:
                    # the skipped entry names the file already
                    reason = str(error).removeprefix(f"{sample.xyz_path}: ")
                    skipped.append(SkippedFile(sample.xyz_path, reason))
                else:
                    if note:
                        warnings.append(f"{sample.xyz_path}: {note}")
            yield Progress("load 3D", done, len(samples), sample.name)
    return clouds


def group_clouds(
    clouds: dict[str, Cloud], config: MuscConfig
) -> Generator[Progress, None, dict[str, PointGroups]]:
    """IPG point groups of every cloud (the only 3D stage that depends on k_iter and C_thr)."""
    groups = {}
    for done, (name, cloud) in enumerate(clouds.items(), start=1):
        groups[name] = regroup(
            cloud.basis, cloud.points, config.k_iter, config.c_thr, config.ipg_variant
        )
        yield Progress("group 3D", done, len(clouds), name)
    return groups


def extract_3d(
    clouds: dict[str, Cloud],
    groups: dict[str, PointGroups],
    backbone: Backbone3D,
    config: MuscConfig,
    timings: dict[str, float] | None = None,
) -> Generator[Progress, None, list[torch.Tensor]]:
    """SNAMD-3D features per layer, stacked over the clouds in ``clouds`` order: (N3, G, C)."""
    per_layer: list[list[torch.Tensor]] = []
    for done, (name, cloud) in enumerate(clouds.items(), start=1):
        grouping = groups[name]
        started = time.perf_counter()
        with torch.inference_mode():
            tokens = backbone.extract(cloud.points, grouping.centers, grouping.groups)
        started = _add_time(timings, "3D backbone", started)
        per_layer = per_layer or [[] for _ in tokens]
        for store, layer in zip(per_layer, tokens, strict=True):
            store.append(
                snamd_3d(layer, grouping.centers, grouping.curvatures, config.c_thr, config.r_list)
            )
        _add_time(timings, "3D SNAMD", started)
        yield Progress("extract 3D", done, len(clouds), name)
    return [torch.stack(layer) for layer in per_layer]
