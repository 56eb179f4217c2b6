"""Benchmark of the 2D pipeline: per-stage time per sample and peak memory for several N.

Each N runs in a fresh subprocess so its peak resident memory is its own.

    .venv/bin/python bench/bench_2d.py                          # cable_gland dev set, N=10,25,53
    .venv/bin/python bench/bench_2d.py --data synthetic --sizes 55 \\
        --backbone dino_vitb8 --weights random --image-size 224  # the ViT-B/8 speed target
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench.common import CABLE_GLAND, dataset_of_size, peak_rss_mib, print_table, run_children


def run_one(args: argparse.Namespace) -> dict:
    """Score N samples once, then re-score with a new X % and k (the child process)."""
    from engine.config import MuscConfig
    from engine.progress import run_to_completion
    from engine.session.session import InspectionSession

    with tempfile.TemporaryDirectory() as scratch:
        dataset = dataset_of_size(args.data, args.n, Path(scratch))
        config = MuscConfig(
            modality="2d", backbone=args.backbone, weights=args.weights, device=args.device,
            image_size=args.image_size, batch_size=args.batch_size, precision=args.precision,
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
    return {
        "n": args.n,
        "stages": {k: v for k, v in session.timings.items() if k != "read-out"},
        "total": total,
        "rescore_s": {"rescore (new X%, k)": min(rescore)},
        "peak_rss_mib": peak_rss_mib(),
        "device": str(session.backbone.device) if session.backbone else "",
    }


def main() -> None:
    """Parse options, run each N in a subprocess, print the table."""
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawTextHelpFormatter
    )
    parser.add_argument("--data", default=str(CABLE_GLAND), help="dataset folder or 'synthetic'")
    parser.add_argument("--sizes", type=int, nargs="+", default=[10, 25, 53])
    parser.add_argument("--backbone", default="efficientnet_lite0")
    parser.add_argument("--weights", default=None, help="weights file, or 'random' for timing")
    parser.add_argument("--image-size", type=int, default=None)
    parser.add_argument("--batch-size", type=int, default=8)
    parser.add_argument("--device", default="auto")
    parser.add_argument("--precision", default="fp32", choices=("auto", "fp32", "bf16"))
    parser.add_argument("--child", type=int, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child is not None:
        args.n = args.child
        print(json.dumps(run_one(args)))
        return
    if args.data != "synthetic" and not Path(args.data).is_dir():
        sys.exit(f"bench_2d: {args.data} not found; pass --data PATH or --data synthetic")
    forwarded = ["--data", args.data, "--backbone", args.backbone,
                 "--batch-size", str(args.batch_size), "--device", args.device,
                 "--precision", args.precision]  # fmt: skip
    if args.weights:
        forwarded += ["--weights", args.weights]
    if args.image_size:
        forwarded += ["--image-size", str(args.image_size)]
    rows = run_children(__file__, args.sizes, forwarded)
    print_table(rows, f"bench_2d with {args.backbone}, {args.precision}")


if __name__ == "__main__":
    main()
