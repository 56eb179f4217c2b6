"""float32 against bfloat16 backbones: extraction speed, map agreement and metric differences.

Both precisions run the same 2D session in this process, alternating (bf16 first, so a warm-up
advantage could only favour fp32), ``--repeats`` times; the fastest run of each is reported.
Prints the extraction seconds per part, the speed ratio, the Pearson correlation of the pixel
maps and each metric's difference in points.

    .venv/bin/python bench/bench_precision.py                      # cable_gland, efficientnet_lite0
    .venv/bin/python bench/bench_precision.py --backbone dino_vitb8 --weights random --n 10
    .venv/bin/python bench/bench_precision.py --backbone-3d point_mae --weights-3d random --n 10

With ``--backbone-3d`` the run is 2D+3D and the 3D backbone's time is reported as well.
"""

from __future__ import annotations

import argparse
import platform
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench.common import CABLE_GLAND, dataset_of_size

PRECISIONS = ("bf16", "fp32")


def run_once(args: argparse.Namespace, precision: str, scratch: Path) -> dict:
    """Score the dataset at ``precision``: extraction s/part, total s, maps, metrics."""
    import numpy as np
    import torch

    from engine.config import MuscConfig
    from engine.evaluation.evaluate import evaluate_all
    from engine.progress import run_to_completion
    from engine.session.session import InspectionSession
    from engine.session.stages import Stage

    with_3d = args.backbone_3d is not None
    dataset = dataset_of_size(args.data, args.n, scratch, with_xyz=with_3d)
    config = MuscConfig(
        modality="2d+3d" if with_3d else "2d", backbone=args.backbone, weights=args.weights,
        backbone_3d=args.backbone_3d, weights_3d=args.weights_3d,
        precision=precision, batch_size=args.batch_size,
    )  # fmt: skip
    session = InspectionSession(dataset, config)
    started = time.perf_counter()
    result = run_to_completion(session.run())
    total = time.perf_counter() - started
    metrics = evaluate_all(result, skipped=[], warnings=[])["metrics"] if args.metrics else {}
    return {
        "extract_s": session.timings[str(Stage.EXTRACT_2D)] / args.n,
        "backbone_3d_s": session.timings.get("3D backbone", 0.0) / args.n,
        "total_s": total / args.n,
        "maps": torch.from_numpy(np.asarray(result.maps, dtype=np.float32)).flatten(),
        "metrics": metrics,
    }


def main() -> None:
    """Parse options, run both precisions, print the comparison."""
    import torch

    from engine.precision import cpu_has_bf16

    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawTextHelpFormatter
    )
    parser.add_argument("--data", default=str(CABLE_GLAND), help="dataset folder or 'synthetic'")
    parser.add_argument("--n", type=int, default=53, help="parts scored (spread over the set)")
    parser.add_argument("--backbone", default="efficientnet_lite0")
    parser.add_argument("--weights", default=None, help="weights file, or 'random' for timing")
    parser.add_argument("--backbone-3d", default=None, help="a 3D backbone: run 2D+3D")
    parser.add_argument("--weights-3d", default=None, help="3D weights file, or 'random'")
    parser.add_argument("--batch-size", type=int, default=8)
    parser.add_argument("--repeats", type=int, default=2, help="runs per precision (fastest kept)")
    args = parser.parse_args()
    if args.data != "synthetic" and not Path(args.data).is_dir():
        sys.exit(f"bench_precision: {args.data} not found; pass --data PATH or --data synthetic")
    # metrics of random weights mean nothing; the maps still show the numerical agreement
    args.metrics = args.weights != "random" and args.weights_3d != "random"
    runs: dict[str, dict] = {}
    with tempfile.TemporaryDirectory() as scratch:
        # alternate and keep each precision's fastest run: the CPU is shared, one run is noisy
        for repeat in range(args.repeats):
            for precision in PRECISIONS:
                run = run_once(args, precision, Path(scratch) / f"{precision}{repeat}")
                best = runs.setdefault(precision, run)
                for key in ("extract_s", "backbone_3d_s", "total_s"):
                    best[key] = min(best[key], run[key])
    fp32, bf16 = runs["fp32"], runs["bf16"]
    with_3d = f" + {args.backbone_3d} ({args.weights_3d})" if args.backbone_3d else ""
    pearson = torch.corrcoef(torch.stack([fp32["maps"], bf16["maps"]]))[0, 1].item()
    print(
        f"bench_precision: {args.backbone} ({args.weights or 'pretrained'}){with_3d}, N={args.n}, "
        f"{Path(args.data).name} | {platform.machine()}, {torch.get_num_threads()} threads, "
        f"native bf16: {cpu_has_bf16()}"
    )
    print("| precision | extract 2D s/part | 3D backbone s/part | total s/part |")
    print("|---|---|---|---|")
    for precision in ("fp32", "bf16"):
        run = runs[precision]
        print(
            f"| {precision} | {run['extract_s']:.3f} | {run['backbone_3d_s']:.3f} "
            f"| {run['total_s']:.3f} |"
        )
    print(
        f"extraction speed-up bf16/fp32: {fp32['extract_s'] / bf16['extract_s']:.2f}x; "
        f"total: {fp32['total_s'] / bf16['total_s']:.2f}x; maps Pearson {pearson:.5f}"
    )
    for name, value in fp32["metrics"].items():
        other = bf16["metrics"].get(name, float("nan"))
        print(f"  {name}: fp32 {100 * value:.2f}, bf16 {100 * other:.2f}, "
              f"diff {100 * (other - value):+.2f} points")  # fmt: skip


if __name__ == "__main__":
    main()
