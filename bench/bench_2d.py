"""Benchmark of the 2D pipeline: per-stage time per sample and peak memory for several N.

Each N runs in a fresh subprocess so its peak resident memory is its own.

    .venv/bin/python bench/bench_2d.py                          # cable_gland dev set, N=10,25,53
    .venv/bin/python bench/bench_2d.py --data synthetic --sizes 55 \
        --backbone dino_vitb8 --weights random                  # the ViT-B/8 speed target
"""

from __future__ import annotations

import argparse
import json
import platform
import resource
import subprocess
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
DEFAULT_DATA = REPO.parent / "shared" / "data" / "mvtec3d" / "cable_gland"


def _dataset(data: str, n: int, scratch: Path):
    from engine.data.discover import discover_dataset
    from engine.data.synthetic import write_synthetic_dataset

    if data == "synthetic":
        per_type = max(1, n // 8)
        root = write_synthetic_dataset(scratch, n_good=n - 3 * per_type, n_per_defect=per_type)
        dataset = discover_dataset(root)
    else:
        dataset = discover_dataset(data)
    # an evenly spread subset keeps every defect type present for small N
    step = len(dataset.samples) / n
    dataset.samples = [dataset.samples[int(i * step)] for i in range(n)]
    return dataset


def run_one(args: argparse.Namespace) -> dict:
    """Score N samples once and report stage timings (the child process)."""
    import tempfile

    import torch

    from engine.config import MuscConfig
    from engine.pipeline import InspectionSession
    from engine.progress import run_to_completion

    with tempfile.TemporaryDirectory() as scratch:
        dataset = _dataset(args.data, args.n, Path(scratch))
        config = MuscConfig(
            backbone=args.backbone, weights=args.weights, device=args.device,
            image_size=args.image_size, batch_size=args.batch_size,
        )  # fmt: skip
        session = InspectionSession(dataset, config)
        started = time.perf_counter()
        run_to_completion(session.run())
        total = time.perf_counter() - started
        rescore = []
        for x_percent in (20.0, 40.0, 30.0):
            t0 = time.perf_counter()
            session.rescore(x_percent=x_percent, rscon_window=5)
            rescore.append(time.perf_counter() - t0)
    peak_gpu = torch.cuda.max_memory_allocated() / 2**20 if torch.cuda.is_available() else 0.0
    return {
        "n": args.n,
        "stages": {k: v for k, v in session.timings.items() if k != "rescore"},
        "total": total,
        "rescore": min(rescore),
        "peak_rss_mib": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
        "peak_gpu_mib": peak_gpu,
        "backbone": session.backbone.info.name if session.backbone else "",
        "device": str(session.backbone.device) if session.backbone else "",
    }


def main() -> None:
    """Parse options, run each N in a subprocess, print the table."""
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawTextHelpFormatter
    )
    parser.add_argument("--data", default=str(DEFAULT_DATA), help="dataset folder or 'synthetic'")
    parser.add_argument("--sizes", type=int, nargs="+", default=[10, 25, 53])
    parser.add_argument("--backbone", default="efficientnet_lite0")
    parser.add_argument("--weights", default=None, help="weights file, or 'random' for timing")
    parser.add_argument("--image-size", type=int, default=None)
    parser.add_argument("--batch-size", type=int, default=8)
    parser.add_argument("--device", default="auto")
    parser.add_argument("--child", type=int, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child is not None:
        args.n = args.child
        print(json.dumps(run_one(args)))
        return
    if args.data != "synthetic" and not Path(args.data).is_dir():
        sys.exit(f"bench_2d: {args.data} not found; pass --data PATH or --data synthetic")
    rows = []
    for n in args.sizes:
        command = [sys.executable, __file__, "--child", str(n), "--data", args.data,
                   "--backbone", args.backbone, "--batch-size", str(args.batch_size),
                   "--device", args.device]  # fmt: skip
        if args.weights:
            command += ["--weights", args.weights]
        if args.image_size:
            command += ["--image-size", str(args.image_size)]
        output = subprocess.run(command, check=True, capture_output=True, text=True, cwd=REPO)
        rows.append(json.loads(output.stdout.strip().splitlines()[-1]))
    stages = list(rows[0]["stages"])
    print(
        f"machine: {platform.machine()}, {_cpu_count()} cores, torch threads {_threads()}, "
        f"device {rows[0]['device']}, backbone {rows[0]['backbone']}"
    )
    header = ["N", *(f"{s} s/sample" for s in stages), "total s/sample", "rescore ms"]
    header.append("peak RSS MiB")
    if any(r["peak_gpu_mib"] for r in rows):
        header.append("peak GPU MiB")
    print(" | ".join(header))
    for row in rows:
        n = row["n"]
        cells = [str(n)] + [f"{row['stages'][s] / n:.3f}" for s in stages]
        cells += [f"{row['total'] / n:.3f}", f"{1000 * row['rescore']:.1f}"]
        cells.append(f"{row['peak_rss_mib']:.0f}")
        if row["peak_gpu_mib"]:
            cells.append(f"{row['peak_gpu_mib']:.0f}")
        print(" | ".join(cells))


def _cpu_count() -> int:
    import os

    return len(os.sched_getaffinity(0))


def _threads() -> int:
    import torch

    return torch.get_num_threads()


if __name__ == "__main__":
    sys.path.insert(0, str(REPO))
    main()
