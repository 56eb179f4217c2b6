"""The bundled demo: a synthetic product line with RGB images, XYZ maps and ground truth."""

from __future__ import annotations

from pathlib import Path

from engine.data.synthetic import DEFECT_TYPES, DEFECT_TYPES_3D, write_synthetic_dataset


def write_demo_dataset(out_dir: str | Path, seed: int = 0) -> Path:
    """Write the demo line (27 parts: 12 good, 3 each of scratch, spot, missing, dent, bump).

    Dents and bumps exist only in the XYZ maps, the other defects in RGB, so the demo exercises
    2D, 3D and their fusion. Returns the dataset folder ``out_dir/synthetic_line``.
    """
    return write_synthetic_dataset(
        Path(out_dir) / "synthetic_line", n_per_defect=3, seed=seed, with_xyz=True,
        defects=DEFECT_TYPES + DEFECT_TYPES_3D,
    )  # fmt: skip
