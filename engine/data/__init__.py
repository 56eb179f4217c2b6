"""Dataset discovery, file readers, XYZ handling and the synthetic demo product line."""

from __future__ import annotations

from engine.data.background import BackgroundResult, black_background, remove_background
from engine.data.discover import (
    DatasetList,
    Discovery,
    discover_all,
    discover_dataset,
    discover_datasets,
)
from engine.data.eyecandies import depth_to_xyz
from engine.data.readers import (
    IMAGE_EXTENSIONS,
    load_sample_image,
    read_mask,
    read_rgb,
    read_xyz,
)
from engine.data.samples import NORMAL_NAMES, CategoryFailure, DatasetIndex, Sample, SkippedFile
from engine.data.synthetic import (
    DEFECT_TYPES,
    DEFECT_TYPES_3D,
    PartGeometry,
    render_part,
    render_part_3d,
    render_part_with_geometry,
    write_synthetic_dataset,
)
from engine.data.xyz import (
    foreground_mask,
    mask_xyz,
    normalize_cloud,
    organized_to_cloud,
    resize_xyz,
    validate_xyz,
)

__all__ = [
    "DEFECT_TYPES",
    "DEFECT_TYPES_3D",
    "IMAGE_EXTENSIONS",
    "NORMAL_NAMES",
    "BackgroundResult",
    "CategoryFailure",
    "DatasetIndex",
    "DatasetList",
    "Discovery",
    "PartGeometry",
    "Sample",
    "SkippedFile",
    "black_background",
    "depth_to_xyz",
    "discover_all",
    "discover_dataset",
    "discover_datasets",
    "foreground_mask",
    "load_sample_image",
    "mask_xyz",
    "normalize_cloud",
    "organized_to_cloud",
    "read_mask",
    "read_rgb",
    "read_xyz",
    "remove_background",
    "render_part",
    "render_part_3d",
    "render_part_with_geometry",
    "resize_xyz",
    "validate_xyz",
    "write_synthetic_dataset",
]
