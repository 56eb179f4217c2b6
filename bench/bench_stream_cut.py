"""How often the stream's label-free cut fails new good parts, by recipe size (synthetic line).

A recipe is made from a synthetic batch of ``--good`` good parts and 2 of each defect type; then
30 new good parts (another seed) are scored as a stream, with a pinned and a ``both`` bank. It
prints the cut, the bank size and the share of the new good parts that fail (false rejects).

    .venv/bin/python bench/bench_stream_cut.py --good 12 48
"""

from __future__ import annotations

import argparse
import sys
import tempfile
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from engine.config import MuscConfig  # noqa: E402
from engine.data.discover import discover_dataset  # noqa: E402
from engine.data.synthetic import write_synthetic_dataset  # noqa: E402
from engine.progress import run_to_completion  # noqa: E402
from engine.session.session import InspectionSession  # noqa: E402
from engine.stream.bank import Bank  # noqa: E402
from engine.stream.recipe_create import make_recipe  # noqa: E402
from engine.stream.scorer import StreamScorer  # noqa: E402


def false_rejects(good: int, scratch: Path) -> None:
    batch = write_synthetic_dataset(scratch / f"batch{good}", n_good=good, n_per_defect=2, seed=21)
    fresh = write_synthetic_dataset(scratch / "new", n_good=30, n_per_defect=0, seed=22)
    config = MuscConfig(modality="2d", backbone="efficientnet_lite0")
    dataset = discover_dataset(batch)
    session = InspectionSession(dataset, config)
    recipe = run_to_completion(make_recipe(dataset, config, session=session)).recipe
    for policy in ("pinned", "both"):
        bank = Bank(recipe.members, policy, rolling_size=50 - len(recipe.members))
        scorer = StreamScorer(recipe.config, recipe.modality, bank, recipe.image_cut,
                              backbone=session.backbone)  # fmt: skip
        scores = np.array([scorer.score_new(s).score for s in discover_dataset(fresh).samples])
        rate = float((scores >= recipe.image_cut.value).mean())
        print(f"{len(dataset.samples)} | {len(recipe.members)} | {policy} | "
              f"{recipe.image_cut.value:.3f} | {100 * rate:.0f} %", flush=True)  # fmt: skip


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--good", type=int, nargs="+", default=[12, 48])
    args = parser.parse_args()
    print("recipe parts | bank | policy | image cut | new good parts failing")
    with tempfile.TemporaryDirectory() as scratch:
        for good in args.good:
            false_rejects(good, Path(scratch))


if __name__ == "__main__":
    main()
