"""Benchmark of memory and time for many parts: seconds per part and peak RSS for several N.

Each N runs in a fresh subprocess so its peak resident memory is its own. Beside the measured
peak it prints :mod:`engine.session.memory`'s estimate and the subsets g the run scored with
(raised above 1 only when the estimate exceeds ``MUSC_MEMORY_BUDGET_BYTES``, default 6 GB).

    .venv/bin/python bench/bench_memory.py                      # N = 250, 500, 1000 at 96 px
    .venv/bin/python bench/bench_memory.py --sizes 250 --image-size 224   # slow: > 5 min here
    .venv/bin/python bench/bench_memory.py --model      # the model at full image size, no run

96 px is the default because at 224 px N = 250 alone ran over 5 minutes on the 2-core machine.
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench.common import dataset_of_size, peak_rss_mib, run_children


def run_one(args: argparse.Namespace) -> dict:
    """Score N synthetic parts once (the child process)."""
    from engine.config import MuscConfig
    from engine.progress import run_to_completion
    from engine.session import memory
    from engine.session.session import InspectionSession
    from engine.session.stages import Stage

    with tempfile.TemporaryDirectory() as scratch:
        dataset = dataset_of_size("synthetic", args.n, Path(scratch))
        config = MuscConfig(
            modality="2d", backbone=args.backbone, weights=args.weights,
            image_size=args.image_size, batch_size=args.batch_size, device="cpu",
        )  # fmt: skip
        session = InspectionSession(dataset, config)
        started = time.perf_counter()
        run_to_completion(session.run())
        total = time.perf_counter() - started
    sizes = memory.FeatureSizes.of_run(session.config, "2d", session._cache)
    groups = len(session._cache[Stage.SCORE_2D])
    return {
        "n": args.n,
        "total": total,
        "peak_rss_mib": peak_rss_mib(),
        "estimate_mib": memory.estimate(args.n, sizes, groups).total / 2**20,
        "subsets": groups,
        "stages": {k: v for k, v in session.timings.items() if k != "read-out"},
    }


MODELS = {  # (patches L, 2D channels per layer, 3D groups G, 3D channels, map side)
    "EfficientNet-Lite0 320 px, 2D": (1600, (40, 112), 0, (), 0),
    "DINO ViT-B/8 224 px, 2D": (784, (768, 768, 768), 0, (), 0),
    "EfficientNet-Lite0 + FPFH, 2D+3D": (1600, (40, 112), 1024, (33,), 224),
    "ViT-B/8 + Point-MAE, 2D+3D": (784, (768, 768, 768), 1024, (384, 384, 384), 224),
}


def print_model(sizes: list[int]) -> None:
    """The memory model at the backbones' real image sizes, with the automatic subsets."""
    from engine.config import MuscConfig
    from engine.session import memory

    budget = memory.memory_budget()
    print(f"memory model (engine.session.memory), budget {budget / 1e9:.1f} GB")
    print("run | N | g (auto) | features GB | clouds GB | tables GB | scoring GB | maps GB | "
          "total GB (with the runtime)")  # fmt: skip
    for name, (patches, channels, groups, channels_3d, side) in MODELS.items():
        feature_sizes = memory.FeatureSizes(patches, channels, groups, channels_3d or (384,),
                                            side * side, 128 if groups else 0, 224)  # fmt: skip
        for n in sizes:
            g, _ = memory.auto_subsets(n, MuscConfig(), feature_sizes, budget)
            e = memory.estimate(n, feature_sizes, g)
            print(
                f"{name} | {n} | {g} | {e.features / 1e9:.2f} | {e.clouds / 1e9:.2f} | "
                f"{e.tables / 1e9:.2f} | {e.scoring / 1e9:.2f} | {e.maps / 1e9:.2f} | "
                f"{e.total / 1e9:.2f}"
            )


def main() -> None:
    """Parse options, run each N in a subprocess, print the table."""
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawTextHelpFormatter
    )
    parser.add_argument("--sizes", type=int, nargs="+", default=[250, 500, 1000])
    parser.add_argument("--backbone", default="efficientnet_lite0")
    parser.add_argument("--weights", default=None, help="weights file, or 'random' for timing")
    parser.add_argument("--image-size", type=int, default=96)
    parser.add_argument("--batch-size", type=int, default=8)
    parser.add_argument("--child", type=int, help=argparse.SUPPRESS)
    parser.add_argument("--model", action="store_true", help="print the memory model only")
    args = parser.parse_args()
    if args.model:
        print_model(args.sizes + ([5000] if 5000 not in args.sizes else []))
        return
    if args.child is not None:
        args.n = args.child
        print(json.dumps(run_one(args)))
        return
    forwarded = ["--backbone", args.backbone, "--image-size", str(args.image_size),
                 "--batch-size", str(args.batch_size)]  # fmt: skip
    if args.weights:
        forwarded += ["--weights", args.weights]
    print(f"bench_memory with {args.backbone} at {args.image_size} px, CPU")
    print("N | s/part | extract s/part | scoring s/part | g | estimate MiB | peak RSS MiB")
    for row in run_children(__file__, args.sizes, forwarded):
        n, stages = row["n"], row["stages"]
        extract = stages.get("extract 2D", 0.0) / n
        scoring = stages.get("mutual scoring 2D", 0.0) / n
        print(
            f"{n} | {row['total'] / n:.3f} | {extract:.3f} | {scoring:.3f} | {row['subsets']} | "
            f"{row['estimate_mib']:.0f} | {row['peak_rss_mib']:.0f}"
        )


if __name__ == "__main__":
    main()
