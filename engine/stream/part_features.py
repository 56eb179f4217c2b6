"""Features of one new part, extracted once with the batch run's own per-part functions.

Every stage before mutual scoring works part by part (docs/method.md, "Pipeline"), so a part
extracted alone has exactly the features it has in a batch: the stream reuses
:mod:`engine.session.branch_2d` and :mod:`engine.session.branch_3d`.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from engine.backbones.base import Backbone2D, Backbone3D
from engine.config import MuscConfig
from engine.data.samples import Sample, SkippedFile
from engine.errors import InvalidInputError
from engine.method.point_groups import regroup
from engine.progress import run_to_completion
from engine.session import branch_2d, branch_3d
from engine.session.tables import cloud_rows
from engine.stream.part_readout import PartTables, penultimate


@dataclass
class PartFeatures:
    """One part's features and cloud (what scoring it, and adding it to a bank, needs).

    Attributes:
        layers_2d: Per layer (L, C) SNAMD features, or None without 2D.
        layers_3d: Per layer (G, C) SNAMD-3D features, or None without 3D.
        grid: (h, w) of the 2D token grid.
        image_size: (height, width) of the part's image (or of its XYZ map in 3D only).
        cloud: The part's foreground cloud, or None without 3D.
        patch_of_group: (G,) 2D patch of each group centre (CAE), or None.
    """

    layers_2d: list[torch.Tensor] | None
    layers_3d: list[torch.Tensor] | None
    grid: tuple[int, int] | None
    image_size: tuple[int, int]
    cloud: branch_3d.Cloud | None = None
    patch_of_group: torch.Tensor | None = None

    def tables(self, cumsum_2d: torch.Tensor | None, cumsum_3d: torch.Tensor | None) -> PartTables:
        """The read-out inputs of this part with the given distance tables."""
        cloud = self.cloud
        return PartTables(
            cumsum_2d=cumsum_2d,
            cumsum_3d=cumsum_3d,
            salient_2d=penultimate(self.layers_2d),
            salient_3d=penultimate(self.layers_3d),
            grid=self.grid,
            interpolation=cloud.interpolation if cloud is not None else None,
            pixel_index=cloud.pixel_index if cloud is not None else None,
        )


def extract_part(
    sample: Sample,
    config: MuscConfig,
    modality: str,
    device: torch.device,
    backbone: Backbone2D | None,
    backbone_3d: Backbone3D | None,
) -> PartFeatures:
    """Extract one part's features for ``modality`` ("2d", "3d" or "2d+3d").

    Raises:
        InvalidInputError: A file the modality needs is missing or unreadable; the message
            names the file and the reason.
    """
    cloud = None
    if "3d" in modality:
        if sample.xyz_path is None:
            raise InvalidInputError(
                f"{sample.name}: no XYZ map, but the recipe scores 2D+3D; the 3D sensor's "
                "file must land next to the image."
            )
        cloud, _ = branch_3d.load_cloud(sample, config, device)
    layers_2d, grid, image_size = None, None, None
    if "2d" in modality:
        if sample.rgb_path is None:
            raise InvalidInputError(f"{sample.name}: no image, but the recipe scores 2D.")
        skipped: list[SkippedFile] = []
        foregrounds = (
            {sample.name: cloud.foreground}
            if config.black_rgb_background and cloud is not None
            else None
        )
        tokens = run_to_completion(
            branch_2d.extract_2d([sample], backbone, 1, skipped, foregrounds, workers=0)
        )
        if skipped:
            raise InvalidInputError(f"{skipped[0].path}: {skipped[0].reason}")
        features = run_to_completion(branch_2d.aggregate_2d(tokens, config.r_list))
        layers_2d = [layer[0] for layer in features]
        grid, image_size = tokens.grid, tokens.image_sizes[0]
    layers_3d, patch_of_group = None, None
    if cloud is not None:
        groups = regroup(cloud.basis, cloud.points, config.k_iter, config.c_thr, config.ipg_variant)
        clouds = {sample.name: cloud}
        features_3d = run_to_completion(
            branch_3d.extract_3d(clouds, {sample.name: groups}, backbone_3d, config)
        )
        layers_3d = [layer[0] for layer in features_3d]
        backbone_3d.release(cloud.points)  # a part on the line is never re-grouped
        _, patches = cloud_rows([cloud], grid, config.eval_size)
        patch_of_group = patches[0] if patches is not None else None
        image_size = image_size or tuple(cloud.foreground.shape)
    return PartFeatures(layers_2d, layers_3d, grid, image_size, cloud, patch_of_group)
