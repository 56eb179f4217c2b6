"""The decision part of the command line: thresholds, minimum area, known-good reference.

``musc score`` takes ``--threshold auto|max-f1|VALUE``, ``--pixel-threshold auto|VALUE``,
``--min-area-px``, ``--min-area-mm2`` and ``--reference-good PATH`` (docs/method.md §13); the
verdicts and regions go into results.json and scores.csv, and a few lines on stderr say what was
decided and how.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable, Generator
from pathlib import Path
from typing import Any

from engine.data.reference import with_reference
from engine.data.samples import DatasetIndex
from engine.decision import Decision, DecisionPolicy, decide, outcome
from engine.decision.batch import batch_defects
from engine.errors import InvalidInputError
from engine.outputs.export import Verdicts
from engine.progress import Progress
from engine.session.results import ScoreResult


def _say(message: str) -> None:
    print(f"musc: {message}", file=sys.stderr)


def _threshold_value(text: str, modes: tuple[str, ...], option: str) -> str | float:
    """``auto`` / ``max-f1`` as words, anything else as a number (argparse type)."""
    if text in modes:
        return text
    try:
        return float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(
            f"{option} takes {' or '.join(modes)} or a number; got {text!r}"
        ) from None


def check_policy(dataset: DatasetIndex, policy: DecisionPolicy) -> None:
    """Refuse ``max-f1`` before a long run when the ground truth cannot support it."""
    if policy.image == "max-f1":
        labels = {s.label for s in dataset.samples if s.label is not None}
        if labels != {0, 1}:
            raise InvalidInputError(
                f"{dataset.root}: --threshold max-f1 needs ground truth with good and defective "
                "parts (an MVTec-style layout); this folder has none. Use --threshold auto "
                "(default) or a value."
            )


def decide_and_say(
    category: str,
    result: ScoreResult,
    policy: DecisionPolicy,
    warnings: list[str],
    drive: Callable[[Generator[Progress, None, Any]], Any],
) -> Verdicts:
    """Decide on ``result`` under ``policy``, cut every part's regions and say the verdicts.

    Args:
        drive: Runs a progress generator to its end (the CLI's progress bar).
    """
    decision = decide(result, policy)
    defects = drive(batch_defects(result, decision, warnings))
    _say_decision(category, result, decision)
    return Verdicts(decision, defects)


def _say_decision(category: str, result: ScoreResult, decision: Decision) -> None:
    """The verdicts in a few lines: counts, both cuts and how, notes, mistakes with GT."""
    counts = outcome(result, decision)
    _say(f"{category}: {counts.failed} fail, {counts.passed} pass; image cut "
         f"{decision.image.value:.4f} ({decision.image.how})")  # fmt: skip
    _say(f"{category}: pixel cut {decision.pixel.value:.4f} ({decision.pixel.how})")
    for note in decision.notes:
        _say(f"{category}: note: {note}")
    if counts.false_rejects is not None and counts.escapes is not None:
        for word, names in (("false rejects", counts.false_rejects), ("escapes", counts.escapes)):
            shown = ", ".join(names[:10]) + (" ..." if len(names) > 10 else "")
            _say(
                f"{category}: {word} (ground truth): {len(names)}" + (f": {shown}" if names else "")
            )


def policies_from_args(
    args: argparse.Namespace,
    datasets: list[DatasetIndex],
    exclude: tuple[Path, ...],
    say: Callable[[str], None],
) -> tuple[list[DatasetIndex], dict[str, DecisionPolicy]]:
    """Each category's decision policy; ``--reference-good`` parts join their batch."""
    base = DecisionPolicy(image=args.threshold, pixel=args.pixel_threshold,
                          min_area_px=args.min_area_px, min_area_mm2=args.min_area_mm2)  # fmt: skip
    if args.reference_good is None:
        return datasets, {d.category: base for d in datasets}
    if len(datasets) != 1:
        raise InvalidInputError(
            f"--reference-good holds the good parts of one product; {args.dataset} has "
            f"{len(datasets)} categories. Point at one category folder."
        )
    merged, names = with_reference(datasets[0], args.reference_good, exclude)
    say(f"{merged.category}: {len(names)} known-good reference parts from {args.reference_good}")
    return [merged], {merged.category: base.replace(reference=names)}


def add_decision_options(parser: argparse.ArgumentParser) -> None:
    """The decision options of ``musc score`` and ``musc demo``."""
    decision = parser.add_argument_group("decision (docs/method.md §13)")
    decision.add_argument(
        "--threshold",
        type=lambda text: _threshold_value(text, ("auto", "max-f1"), "--threshold"),
        default="auto",
        metavar="auto|max-f1|VALUE",
        help="image cut: auto = from the known-good or lowest-scoring parts (no labels); "
        "max-f1 = best F1 on the ground truth (only when asked); or a score",
    )
    decision.add_argument(
        "--pixel-threshold",
        type=lambda text: _threshold_value(text, ("auto",), "--pixel-threshold"),
        default="auto",
        metavar="auto|VALUE",
        help="pixel cut for defect regions, in the units of the maps in maps.h5",
    )
    decision.add_argument(
        "--min-area-px",
        type=int,
        help="smallest defect region in pixels (default: 0.01%% of the image)",
    )
    decision.add_argument(
        "--min-area-mm2", type=float, help="smallest defect region in mm² (parts with XYZ)"
    )
    decision.add_argument(
        "--reference-good",
        metavar="PATH",
        help="folder or glob of known-good parts, scored with the batch; the cuts come from them",
    )
    parser.add_argument(
        "--force",
        action="store_true",
        help="replace a non-empty --out folder that musc did not write (its contents are lost)",
    )
