"""Stream vs batch quality: a recipe from 15 parts, then the other parts as a stream.

On cable_gland (dev data), the parts are put in a seeded random order; the first 15 make the
recipe (pinned bank), the others are scored one by one against it. The yardstick is a batch run
of *all* parts: its image AUROC on those same other parts. Target: within 0.03, 2D and 2D+3D.

    .venv/bin/python bench/bench_stream_quality.py [--data FOLDER] [--recipe-parts 15] [--seed 0]
"""

from __future__ import annotations

import argparse
import copy
import random
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench.common import CABLE_GLAND  # noqa: E402
from engine.config import MuscConfig  # noqa: E402
from engine.data.discover import discover_dataset  # noqa: E402
from engine.evaluation.metrics import image_metrics  # noqa: E402
from engine.progress import run_to_completion  # noqa: E402
from engine.session.session import InspectionSession  # noqa: E402
from engine.stream.bank import Bank  # noqa: E402
from engine.stream.recipe_create import make_recipe  # noqa: E402
from engine.stream.scorer import StreamScorer  # noqa: E402


def auroc(labels: np.ndarray, scores: np.ndarray) -> float:
    return image_metrics(labels, scores)["image_auroc"]


def stream_scores(first, rest, config: MuscConfig, policy: str) -> tuple[dict, int, float, int]:
    """Recipe from ``first``, then ``rest`` as a stream: (scores, bank size, s/part, fails)."""
    session = InspectionSession(first, config)
    recipe = run_to_completion(make_recipe(first, config, bank_size=50, session=session)).recipe
    bank = Bank(recipe.members, policy, rolling_size=50 - len(recipe.members))
    scorer = StreamScorer(recipe.config, recipe.modality, bank, recipe.image_cut,
                          recipe.pixel_cut, backbone=session.backbone,
                          backbone_3d=session.backbone_3d)  # fmt: skip
    started = time.perf_counter()
    scores = {s.name: scorer.score_new(s).score for s in rest}
    seconds = (time.perf_counter() - started) / len(rest)
    fails = sum(scorer.verdict(v) == "fail" for v in scores.values())
    return scores, len(recipe.members), seconds, fails


def compare(data: Path, modality: str, recipe_parts: int, seed: int, policies: list[str]) -> None:
    """Print one row per bank policy: stream AUROC against the batch-all AUROC."""
    dataset = discover_dataset(data)
    config = MuscConfig(modality=modality, backbone="efficientnet_lite0", backbone_3d="fpfh")
    order = list(dataset.samples)
    random.Random(seed).shuffle(order)
    first = copy.copy(dataset)
    first.samples = sorted(order[:recipe_parts], key=lambda s: s.name)
    rest = order[recipe_parts:]
    labels = np.array([s.label for s in rest])
    batch = run_to_completion(InspectionSession(dataset, config).run())
    by_name = dict(zip(batch.names, batch.image_scores, strict=True))
    batch_auroc = auroc(labels, np.array([by_name[s.name] for s in rest]))
    for policy in policies:
        scores, bank, seconds, fails = stream_scores(first, rest, config, policy)
        stream_auroc = auroc(labels, np.array([scores[s.name] for s in rest]))
        print(f"{modality} | {policy} | {bank} | {len(rest)} | {stream_auroc:.3f} | "
              f"{batch_auroc:.3f} | {stream_auroc - batch_auroc:+.3f} | {fails} | "
              f"{seconds:.2f}", flush=True)  # fmt: skip


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", type=Path, default=CABLE_GLAND)
    parser.add_argument("--recipe-parts", type=int, default=15)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--modalities", nargs="+", default=["2d", "2d+3d"])
    parser.add_argument(
        "--policies",
        nargs="+",
        default=["pinned", "both"],
        help="bank policies to compare (both: recipe bank + passing parts, <= 50)",
    )
    args = parser.parse_args()
    if not args.data.is_dir():
        sys.exit(f"{args.data}: not found; pass --data with an MVTec 3D-AD category folder")
    print("modality | bank policy | recipe bank | stream parts | stream AUROC | "
          "batch-all AUROC | difference | fails | stream s/part")  # fmt: skip
    for modality in args.modalities:
        compare(args.data, modality, args.recipe_parts, args.seed, args.policies)


if __name__ == "__main__":
    main()
