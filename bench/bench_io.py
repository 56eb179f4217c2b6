"""Benchmark of the I/O paths whose speed the tests used to assert: writing the synthetic line,
saving and restoring a scored session (session cache), and removing the background of one real
XYZ map. The tests check what these compute; how fast they are is measured here.

    .venv/bin/python bench/bench_io.py

Figures the tests used to require (on the development machine) are printed next to each line.
"""

from __future__ import annotations

import os
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench.common import CABLE_GLAND


def _timed(function, *args, **kwargs) -> tuple[object, float]:
    started = time.perf_counter()
    value = function(*args, **kwargs)
    return value, time.perf_counter() - started


def main() -> None:
    """Time each path once and print one line per path (in a scratch folder, removed after)."""
    with tempfile.TemporaryDirectory(prefix="musc-bench-io-") as scratch:
        os.environ["MUSC_CACHE_DIR"] = str(Path(scratch) / "cache")  # private, empty cache
        run(Path(scratch))


def run(scratch: Path) -> None:
    """The timings, with all files under ``scratch``."""

    from engine.config import MuscConfig
    from engine.data.background import remove_background
    from engine.data.discover import discover_dataset
    from engine.data.readers import read_xyz
    from engine.data.synthetic import DEFECT_TYPES, DEFECT_TYPES_3D, write_synthetic_dataset
    from engine.progress import run_to_completion
    from engine.session.cache import load_session, save_session
    from engine.session.session import InspectionSession

    _, seconds = _timed(write_synthetic_dataset, scratch / "fast", n_good=12, n_per_defect=4,
                        with_xyz=True, defects=("dent", "bump", "scratch"))  # fmt: skip
    print(f"write synthetic line, 24 parts of 256 px (png + tiff): {seconds:.2f} s   (was < 2 s)")

    defects = DEFECT_TYPES + DEFECT_TYPES_3D
    root = write_synthetic_dataset(scratch / "line", n_good=6, n_per_defect=1, seed=4,
                                   with_xyz=True, defects=defects)  # fmt: skip
    config = MuscConfig(backbone="efficientnet_lite0", backbone_3d="fpfh", num_groups=256)
    session = InspectionSession(discover_dataset(root), config)
    result = run_to_completion(session.run())
    path, save_s = _timed(save_session, session)
    started = time.perf_counter()
    restored = load_session(discover_dataset(root), config)
    restored.rescore()
    load_s = time.perf_counter() - started
    print(f"session cache, synthetic N={len(result.samples)}: save {save_s * 1000:.0f} ms, "
          f"load+rescore {load_s * 1000:.0f} ms, {path.stat().st_size / 1e6:.2f} MB")  # fmt: skip

    xyz_path = CABLE_GLAND / "test" / "good" / "xyz" / "000.tiff"
    if xyz_path.is_file():
        xyz = read_xyz(xyz_path)
        remove_background(xyz)  # warm-up: the first call imports open3d and scipy
        _, seconds = _timed(remove_background, xyz)
        print(f"background removal, one cable_gland XYZ map: {seconds:.2f} s   (was < 1 s)")
    else:
        print(f"background removal: skipped, {xyz_path} not found (shared data absent)")


if __name__ == "__main__":
    main()
