"""Latency of a running line: parts copied into a watched folder at a fixed rate.

A bank of B parts is built from the dev data (cable_gland), then the parts are copied one by
one into an empty folder (RGB, then XYZ for 2D+3D) every ``--interval`` seconds while a
PartWatcher (watchdog) hands complete parts to the StreamScorer, as ``musc watch`` does. It
prints latency from "part complete" (its files settled) to verdict: p50, p95, max; parts dropped
(must be 0); peak RSS. The settle time (``--settle``) comes on top of these figures.

    .venv/bin/python bench/bench_stream.py --modality 2d
    .venv/bin/python bench/bench_stream.py --modality 2d+3d --interval 2
    .venv/bin/python bench/bench_stream.py --modality 2d --backbone dino_vitb8 --weights random
"""

from __future__ import annotations

import argparse
import platform
import shutil
import sys
import tempfile
import threading
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench.common import CABLE_GLAND, peak_rss_mib  # noqa: E402
from engine.config import MuscConfig  # noqa: E402
from engine.data.discover import discover_dataset  # noqa: E402
from engine.decision.thresholds import image_threshold_auto  # noqa: E402
from engine.progress import run_to_completion  # noqa: E402
from engine.session.session import InspectionSession  # noqa: E402
from engine.stream.bank import Bank  # noqa: E402
from engine.stream.from_session import bank_members, session_parts  # noqa: E402
from engine.stream.scorer import StreamScorer  # noqa: E402
from engine.stream.watch import PartWatcher  # noqa: E402


def build_scorer(args: argparse.Namespace) -> tuple[StreamScorer, list]:
    """A scorer whose bank is the first ``--bank`` dev parts (latency, not quality, is measured)."""
    dataset = discover_dataset(args.data)
    config = MuscConfig(modality=args.modality, backbone=args.backbone, weights=args.weights,
                        backbone_3d="fpfh", image_size=args.image_size)  # fmt: skip
    batch = InspectionSession(dataset, config)
    result = run_to_completion(batch.run())
    parts = session_parts(batch)
    names = list(parts)[: args.bank]
    members = run_to_completion(bank_members(parts, names, batch))
    cut = image_threshold_auto(result.image_scores)
    scorer = StreamScorer(batch.config, batch.modality, Bank(members), cut,
                          backbone=batch.backbone, backbone_3d=batch.backbone_3d)  # fmt: skip
    return scorer, dataset.samples


def copy_parts(samples: list, folder: Path, interval: float, with_xyz: bool) -> None:
    """The line: one part every ``interval`` seconds, image first, then its XYZ map."""
    for index, sample in enumerate(samples):
        started = time.monotonic()
        target = folder / "test" / "good"
        (target / "rgb").mkdir(parents=True, exist_ok=True)
        (target / "xyz").mkdir(parents=True, exist_ok=True)
        shutil.copyfile(sample.rgb_path, target / "rgb" / f"{index:03d}.png")
        if with_xyz:
            shutil.copyfile(sample.xyz_path, target / "xyz" / f"{index:03d}.tiff")
        time.sleep(max(0.0, interval - (time.monotonic() - started)))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", type=Path, default=CABLE_GLAND)
    parser.add_argument("--modality", default="2d", choices=("2d", "2d+3d"))
    parser.add_argument("--backbone", default="efficientnet_lite0")
    parser.add_argument("--weights", default=None, help="weights file, or 'random' for timing")
    parser.add_argument("--image-size", type=int, default=None)
    parser.add_argument("--bank", type=int, default=50)
    parser.add_argument("--parts", type=int, default=30, help="parts streamed")
    parser.add_argument("--interval", type=float, default=1.0, help="seconds between parts")
    parser.add_argument("--settle", type=float, default=0.3)
    args = parser.parse_args()
    if not args.data.is_dir():
        sys.exit(f"{args.data}: not found; pass --data with an MVTec 3D-AD category folder")
    scorer, samples = build_scorer(args)
    streamed = samples[: args.parts]
    latencies, scoring = [], []
    with tempfile.TemporaryDirectory() as scratch:
        folder = Path(scratch) / "line"
        folder.mkdir()
        watcher = PartWatcher(folder, needs_xyz="3d" in args.modality,
                              settle_seconds=args.settle)  # fmt: skip
        with watcher:
            line = threading.Thread(
                target=copy_parts,
                daemon=True,
                args=(streamed, folder, args.interval, "3d" in args.modality),
            )
            line.start()
            deadline = time.monotonic() + args.parts * args.interval + 120
            while len(latencies) < len(streamed) and time.monotonic() < deadline:
                for arrived in watcher.poll(0.5):
                    part = scorer.score_new(arrived.sample)
                    latencies.append(time.time() - arrived.arrived)
                    scoring.append(part.seconds)
    dropped = len(streamed) - len(latencies)
    ms = np.array(latencies) * 1000
    print(f"bench_stream | {platform.machine()} {platform.processor() or ''}, bank "
          f"{len(scorer.bank)}, {args.modality}, {args.backbone}"
          f"{' (random weights)' if args.weights == 'random' else ''}, one part every "
          f"{args.interval:g} s, settle {args.settle:g} s")  # fmt: skip
    print("parts | dropped | latency p50 ms | p95 ms | max ms | scoring mean ms | peak RSS MiB")
    print(f"{len(latencies)} | {dropped} | {np.percentile(ms, 50):.0f} | "
          f"{np.percentile(ms, 95):.0f} | {ms.max():.0f} | {1000 * np.mean(scoring):.0f} | "
          f"{peak_rss_mib():.0f}")  # fmt: skip


if __name__ == "__main__":
    main()
