"""Dataset discovery, file readers and the synthetic demo product line."""

from __future__ import annotations

from engine.data.discover import discover_dataset, discover_datasets
from engine.data.readers import (
    IMAGE_EXTENSIONS,
    load_sample_image,
    read_mask,
    read_rgb,
    read_xyz,
)
from engine.data.samples import NORMAL_NAMES, DatasetIndex, Sample, SkippedFile
from engine.data.synthetic import (
    DEFECT_TYPES,
    PartGeometry,
    render_part,
    render_part_with_geometry,
    write_synthetic_dataset,
)

__all__ = [
    "DEFECT_TYPES",
    "IMAGE_EXTENSIONS",
    "NORMAL_NAMES",
    "DatasetIndex",
    "PartGeometry",
    "Sample",
    "SkippedFile",
    "discover_dataset",
    "discover_datasets",
    "load_sample_image",
    "read_mask",
    "read_rgb",
    "read_xyz",
    "render_part",
    "render_part_with_geometry",
    "write_synthetic_dataset",
]
