"""Which samples a run scores, and the warnings a partly usable dataset deserves."""

from __future__ import annotations

from engine.data.samples import DatasetIndex, Sample
from engine.method.subsets import check_count


def scored_samples(
    dataset: DatasetIndex,
    image_samples: list[Sample] | None,
    cloud_names: set[str],
    use_2d: bool,
    use_3d: bool,
    warnings: list[str],
) -> list[Sample]:
    """The samples of a run: readable images with 2D, else the samples with a usable cloud.

    Args:
        dataset: The dataset being scored.
        image_samples: Samples whose image could be read (the "extract 2D" output), or None.
        cloud_names: Names of the samples with a usable cloud ("load 3D").
        use_2d: Whether the run scores 2D.
        use_3d: Whether the run scores 3D.
        warnings: Receives a note when some samples of a 2D+3D run have no cloud.

    Raises:
        InvalidInputError: Fewer than 2 samples are usable.
    """
    if use_2d:
        samples = list(image_samples or [])
        total = sum(s.rgb_path is not None for s in dataset.samples)
    else:
        samples = [s for s in dataset.samples if s.name in cloud_names]
        total = sum(s.xyz_path is not None for s in dataset.samples)
    check_count(dataset.root, len(samples), total, warnings)
    if use_2d and use_3d:
        missing = [s.name for s in samples if s.name not in cloud_names]
        if missing:
            listed = ", ".join(missing[:5]) + (", ..." if len(missing) > 5 else "")
            warnings.append(
                f"{len(missing)} of {len(samples)} samples have no usable XYZ map and are "
                f"scored in 2D only ({listed}); cross-modal enhancement is off for their "
                "subsets."
            )
    return samples
