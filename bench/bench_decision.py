"""How good are the default (label-free) cuts? Pixel F1 at the default cut vs the best F1.

For each dataset and modality the batch is scored with the default configuration, the default
decision is taken (never looking at the ground truth), and then, with the ground truth:

* pixel F1 at the default pixel cut (raw ``map >= cut`` and the exported masks, i.e. after the
  minimum-area filter) against the pixel F1-max over all cuts, both at image resolution;
* the image verdicts: fails, false rejects and escapes.

    .venv/bin/python bench/bench_decision.py            # cable_gland 2D, 2D+3D; tire 2D; demo
    .venv/bin/python bench/bench_decision.py --only demo

The issue's target: ratio >= 0.7 on the dev data in 2D and 2D+3D.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

DEV = Path(__file__).resolve().parents[2] / "shared" / "data" / "mvtec3d"
RUNS = (("cable_gland", "2d"), ("cable_gland", "2d+3d"), ("tire", "2d"), ("demo", "2d"),
        ("demo", "2d+3d"))  # fmt: skip


def f1_at(masks: np.ndarray, predicted: np.ndarray) -> float:
    tp = int((predicted & masks).sum())
    wrong = int((predicted ^ masks).sum())
    return 2 * tp / max(2 * tp + wrong, 1)


def f1_max(masks: np.ndarray, maps: np.ndarray) -> float:
    order = np.argsort(-maps.ravel(), kind="stable")
    truth = masks.ravel()[order]
    tp = np.cumsum(truth)
    return float((2 * tp / (np.arange(1, truth.size + 1) + truth.sum())).max())


def measure(name: str, modality: str, scratch: Path) -> dict:
    from engine.config import MuscConfig
    from engine.data.demo import write_demo_dataset
    from engine.data.discover import discover_dataset
    from engine.data.readers import read_mask
    from engine.decision import decide, outcome
    from engine.decision.batch import batch_defects
    from engine.progress import run_to_completion
    from engine.session.session import InspectionSession

    root = write_demo_dataset(scratch / "demo") if name == "demo" else DEV / name
    dataset = discover_dataset(root)
    session = InspectionSession(dataset, MuscConfig(modality=modality))
    started = time.perf_counter()
    session.choose_backbones()
    result = run_to_completion(session.run())
    scored_s = time.perf_counter() - started
    decision = decide(result)
    started = time.perf_counter()
    found = run_to_completion(batch_defects(result, decision))
    regions_s = time.perf_counter() - started
    maps = np.stack([result.anomaly_map(i) for i in range(len(result.samples))])
    masks = np.stack([
        read_mask(s.mask_path, size) if s.mask_path else np.zeros(size, bool)
        for s, size in zip(result.samples, result.image_sizes, strict=True)
    ])  # fmt: skip
    best = f1_max(masks, maps)
    counts = outcome(result, decision)
    return {
        "run": f"{name} {modality}",
        "N": len(result.samples),
        "F1 raw/max": f1_at(masks, maps >= decision.pixel.value) / best,
        "F1 masks/max": f1_at(masks, np.stack([d.mask for d in found])) / best,
        "F1max": best,
        "fail": counts.failed,
        "FR": len(counts.false_rejects or ()),
        "escapes": len(counts.escapes or ()),
        "notes": len(decision.notes),
        "regions s/part": regions_s / len(result.samples),
        "score s": scored_s,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--only", help="run only datasets whose name contains this")
    args = parser.parse_args()
    rows = []
    with tempfile.TemporaryDirectory() as scratch:
        for name, modality in RUNS:
            if args.only and args.only not in name:
                continue
            if name != "demo" and not (DEV / name).is_dir():
                print(f"skipping {name}: {DEV / name} not found")
                continue
            rows.append(measure(name, modality, Path(scratch)))
            print(rows[-1], flush=True)
    keys = list(rows[0]) if rows else []
    print("\n| " + " | ".join(keys) + " |\n|" + "---|" * len(keys))
    for row in rows:
        cells = [f"{v:.2f}" if isinstance(v, float) else str(v) for v in row.values()]
        print("| " + " | ".join(cells) + " |")


if __name__ == "__main__":
    main()
