"""Shared plumbing of the benchmark scripts: datasets, one subprocess per N, the table."""

from __future__ import annotations

import json
import os
import platform
import resource
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
CABLE_GLAND = REPO.parent / "shared" / "data" / "mvtec3d" / "cable_gland"


def dataset_of_size(data: str, n: int, scratch: Path, *, with_xyz: bool = False):
    """``n`` samples of ``data`` (a folder, or "synthetic"), spread evenly over the sorted list
    so that every defect type stays present for small N."""
    from engine.data.discover import discover_dataset
    from engine.data.synthetic import DEFECT_TYPES, DEFECT_TYPES_3D, write_synthetic_dataset

    if data == "synthetic":
        defects = DEFECT_TYPES + DEFECT_TYPES_3D if with_xyz else DEFECT_TYPES
        per_type = max(1, n // (2 * len(defects)))
        root = write_synthetic_dataset(
            scratch, n_good=n - per_type * len(defects), n_per_defect=per_type,
            with_xyz=with_xyz, defects=defects,
        )  # fmt: skip
        dataset = discover_dataset(root)
    else:
        dataset = discover_dataset(data)
    step = len(dataset.samples) / n
    dataset.samples = [dataset.samples[int(i * step)] for i in range(n)]
    return dataset


def peak_rss_mib() -> float:
    """Peak resident memory of this process in MiB."""
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def run_children(script: str, sizes: list[int], args: list[str]) -> list[dict]:
    """Run ``script --child N args`` for every N (fresh process: its own peak memory)."""
    rows = []
    for n in sizes:
        command = [sys.executable, script, "--child", str(n), *args]
        output = subprocess.run(command, check=True, capture_output=True, text=True, cwd=REPO)
        rows.append(json.loads(output.stdout.strip().splitlines()[-1]))
    return rows


def print_table(rows: list[dict], title: str) -> None:
    """Per-stage seconds per sample, total, re-score times and peak memory, as a table."""
    import torch

    stages = list(rows[0]["stages"])
    print(
        f"{title} | machine: {platform.machine()}, {len(os.sched_getaffinity(0))} cores, "
        f"torch threads {torch.get_num_threads()}, device {rows[0]['device']}"
    )
    extra = list(rows[0].get("rescore_s", {}))
    header = ["N", *(f"{s} s/sample" for s in stages), "total s/sample"]
    header += [f"{name} s" for name in extra] + ["peak RSS MiB"]
    print(" | ".join(header))
    for row in rows:
        n = row["n"]
        cells = [str(n), *(f"{row['stages'][s] / n:.3f}" for s in stages)]
        cells.append(f"{row['total'] / n:.3f}")
        cells += [f"{row['rescore_s'][name]:.3f}" for name in extra]
        cells.append(f"{row['peak_rss_mib']:.0f}")
        print(" | ".join(cells))
