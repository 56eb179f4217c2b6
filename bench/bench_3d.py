"""Benchmark of the 3D branch: per-stage time per sample and peak memory for several N.

    .venv/bin/python bench/bench_3d.py                       # cable_gland dev set, N=10,25,53, 3d
    .venv/bin/python bench/bench_3d.py --modality 2d+3d      # the fused run
    .venv/bin/python bench/bench_3d.py --backbone-3d point_mae --weights-3d random

Also times the re-scoring paths: a new X % (cheap) and a new C_thr / K_iter (re-groups).
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
    """Score N samples once, then re-score; report stage timings (the child process)."""
    from engine.config import MuscConfig
    from engine.progress import run_to_completion
    from engine.session.session import InspectionSession

    with tempfile.TemporaryDirectory() as scratch:
        dataset = dataset_of_size(args.data, args.n, Path(scratch), with_xyz=True)
        config = MuscConfig(
            modality=args.modality, backbone="efficientnet_lite0", backbone_3d=args.backbone_3d,
            weights_3d=args.weights_3d, device=args.device, precision=args.precision,
        )  # fmt: skip
        session = InspectionSession(dataset, config)
        started = time.perf_counter()
        run_to_completion(session.run())
        total = time.perf_counter() - started
        stages = {k: v for k, v in session.timings.items() if k != "read-out"}
        stages["rescore (interpolation, blur, RsCon)"] = session.timings["read-out"]
        t0 = time.perf_counter()
        session.rescore(x_percent=20.0)
        x_time = time.perf_counter() - t0
        t0 = time.perf_counter()
        session.update(session.config.replace(c_thr=0.02, k_iter=40))
        run_to_completion(session.run())
        regroup_time = time.perf_counter() - t0
    return {
        "n": args.n,
        "stages": stages,
        "total": total,
        "rescore_s": {"new X%": x_time, "new C_thr+K_iter": regroup_time},
        "peak_rss_mib": peak_rss_mib(),
        "device": str(session.backbone_3d.device) if session.backbone_3d else "",
    }


def main() -> None:
    """Parse options, run each N in a subprocess, print the table."""
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--data", default=str(CABLE_GLAND), help="dataset folder or 'synthetic'")
    parser.add_argument("--sizes", type=int, nargs="+", default=[10, 25, 53])
    parser.add_argument("--modality", default="3d", choices=("3d", "2d+3d"))
    parser.add_argument("--backbone-3d", default="fpfh")
    parser.add_argument("--weights-3d", default=None, help="weights file, or 'random' for timing")
    parser.add_argument("--device", default="auto")
    parser.add_argument("--precision", default="fp32", choices=("auto", "fp32", "bf16"))
    parser.add_argument("--child", type=int, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child is not None:
        args.n = args.child
        print(json.dumps(run_one(args)))
        return
    if args.data != "synthetic" and not Path(args.data).is_dir():
        sys.exit(f"bench_3d: {args.data} not found; pass --data PATH or --data synthetic")
    forwarded = ["--data", args.data, "--modality", args.modality, "--backbone-3d",
                 args.backbone_3d, "--device", args.device,
                 "--precision", args.precision]  # fmt: skip
    if args.weights_3d:
        forwarded += ["--weights-3d", args.weights_3d]
    rows = run_children(__file__, args.sizes, forwarded)
    print_table(rows, f"bench_3d {args.modality} with {args.backbone_3d}, {args.precision}")


if __name__ == "__main__":
    main()
