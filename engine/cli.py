"""Headless command line: ``musc score``, ``musc demo``, ``musc backbones``.

Exit status: 0 all categories scored; 2 error (bad input or output folder, nothing written);
3 finished, but some categories failed (the others are written; see stderr and the manifest);
130 interrupted (Ctrl-C); 143 terminated (SIGTERM). Interrupted runs change nothing in --out.
"""

from __future__ import annotations

import argparse
import signal
import sys
from collections.abc import Generator, Sequence
from pathlib import Path
from typing import Any

from tqdm import tqdm

from engine import cli_stream
from engine.cli_decision import check_policy, decide_and_say, policies_from_args
from engine.cli_options import SCORE_HELP, add_model_options, add_score_options, config_from_args
from engine.cluster.cli_support import cluster_backend
from engine.config import MuscConfig
from engine.data.discover import discover_datasets
from engine.data.samples import DatasetIndex, SkippedFile
from engine.decision import DecisionPolicy
from engine.errors import InvalidInputError, MuscError
from engine.evaluation.evaluate import evaluate_all
from engine.method.subsets import effective_subsets
from engine.outputs.export import ensure_writable, write_outputs
from engine.outputs.staging import check_target, commit, staged_output
from engine.progress import Progress, run_to_completion
from engine.session.compute_backend import DistanceBackend
from engine.session.results import ScoreResult
from engine.session.session import InspectionSession

EXIT_OK, EXIT_ERROR, EXIT_PARTIAL = 0, 2, 3
_config_from_args = config_from_args  # its name here for engine.cli_stream and the tests


class Terminated(KeyboardInterrupt):
    """SIGTERM as an exception, so that clean-up (``finally``) runs as for Ctrl-C."""


def _on_sigterm(_signum: int, _frame: object) -> None:
    raise Terminated


def _stopped(signum: int) -> tuple[str, int]:
    """What a signal did to the run, in a word, and the conventional exit status (128 + it)."""
    word = "terminated" if signum == signal.SIGTERM else "interrupted"
    return word, 128 + signum


def _say(message: str) -> None:
    print(f"musc: {message}", file=sys.stderr)


def _with_progress(steps: Generator[Progress, None, ScoreResult]) -> ScoreResult:
    """Drive a pipeline generator, showing one tqdm bar per stage on stderr."""
    bar: tqdm | None = None
    stage = None

    def show(event: Progress) -> None:
        nonlocal bar, stage
        if event.stage != stage:
            if bar is not None:
                bar.close()
            stage = event.stage
            # disable=None: a live bar on a terminal, one line per stage in a log file
            bar = tqdm(total=event.total, desc=stage, file=sys.stderr, leave=False,
                       disable=None, mininterval=0.5)  # fmt: skip
            if bar.disable:
                _say(f"{stage} ({event.total} steps)")
        assert bar is not None
        bar.n = event.done
        bar.refresh()

    try:
        return run_to_completion(steps, show)
    finally:
        if bar is not None:
            bar.close()


def _evaluate(
    result: ScoreResult, skipped: list[SkippedFile], warnings: list[str]
) -> tuple[dict[str, dict[str, float]], str | None]:
    """Metrics of the run, or none and the reason: a finished run is written either way.

    Unusable ground-truth files go to ``skipped``, ground-truth doubts to ``warnings``.
    """
    try:
        return evaluate_all(result, skipped=skipped, warnings=warnings), None
    except Exception as error:  # any metric failure must not lose the scores
        return {}, f"{type(error).__name__}: {error}"


def score_dataset(
    dataset: DatasetIndex,
    config: MuscConfig,
    out_dir: Path,
    *,
    maps: bool = True,
    policy: DecisionPolicy | None = None,
    distances: DistanceBackend | None = None,
) -> tuple[ScoreResult, dict[str, dict[str, float]]]:
    """Score one category and write its outputs into ``out_dir``; returns result and metrics.

    The decision (``policy``; default all automatic) gives every part its verdict and defect
    regions. When the metrics cannot be computed the outputs are written anyway, with the
    reason under ``metrics_error`` in results.json. ``distances``: where mutual scoring runs
    (default: this process; ``--cluster``: Ray).
    """
    policy = policy or DecisionPolicy()
    check_policy(dataset, policy)
    session = InspectionSession(dataset, config, distances=distances)
    for line in session.choose_backbones():
        _say(line)  # one visible line per automatic choice: which backbone and why
    result = _with_progress(session.run())
    skipped, warnings = list(session.skipped), list(session.warnings)
    metrics, metrics_error = _evaluate(result, skipped, warnings)
    verdicts = decide_and_say(dataset.category, result, policy, warnings, _with_progress)
    for file in skipped:
        _say(f"skipped {file.path}: {file.reason}")
    for warning in warnings:
        _say(f"warning: {warning}")
    extra: dict[str, Any] = {
        "dataset": {
            "root": str(dataset.root),
            "layout": dataset.layout,
            "category": dataset.category,
        },
        "backbone_choice": session.backbone_reason or "named by the user",
        "backbone_3d_choice": session.backbone_3d_reason or "named by the user",
        "cae_used": session.uses_cae,
        # options the run clipped, at the value actually used
        "subsets_effective": effective_subsets(len(result.samples), result.config.subsets),
        "skipped": [{"path": str(s.path), "reason": s.reason} for s in skipped],
        "warnings": warnings,
    }
    if metrics_error is not None:
        _say(f"warning: metrics not computed, outputs written without them: {metrics_error}")
        extra["metrics_error"] = metrics_error
    write_outputs(out_dir, result, metrics, extra, maps=maps, root=dataset.root, verdicts=verdicts)
    return result, metrics


def _report(
    category: str, result: ScoreResult, metrics: dict[str, dict[str, float]], out_dir: Path
) -> None:
    used = [
        f"{info.name} ({info.weights_source})"
        for info in (result.backbone, result.backbone_3d)
        if info is not None
    ]
    _say(
        f"{category}: scored {len(result.samples)} samples in {result.modality} with "
        f"{' + '.join(used)} -> {out_dir}"
    )
    for key, values in metrics.items():
        if values:
            label = key.removeprefix("metrics").lstrip("_") or result.modality
            print(
                f"{category} [{label}]: "
                + ", ".join(f"{k}={100 * v:.1f}" for k, v in values.items())
            )


def _failure(category: str, root: Path, reason: str) -> dict[str, str]:
    """A category that was not written, as reported on stderr and kept in the manifest."""
    _say(f"{category}: failed, not written: {reason}")
    return {"category": category, "path": str(root), "reason": reason}


def _score_all(
    datasets: Sequence[DatasetIndex],
    config: MuscConfig,
    staging: Path,
    target: Path,
    *,
    several: bool,
    maps: bool,
    policies: dict[str, DecisionPolicy],
    distances: DistanceBackend | None = None,
) -> list[dict[str, str]]:
    """Score every category into ``staging``; returns the categories that failed, with reasons.

    With ``several`` categories each goes to its own subfolder, and a failing one is reported
    while the others go on; a lone category's error propagates (exit 2).
    """
    failed = []
    for dataset in datasets:
        sub = dataset.category if several else ""
        try:
            result, metrics = score_dataset(dataset, config, staging / sub, maps=maps,
                                            policy=policies[dataset.category],
                                            distances=distances)  # fmt: skip
        except MuscError as error:
            if not several:
                raise
            failed.append(_failure(dataset.category, dataset.root, str(error)))
            continue
        _report(dataset.category, result, metrics, target / sub)
    return failed


def cmd_score(args: argparse.Namespace) -> int:
    """Score every category found under the dataset folder into one output set."""
    config = config_from_args(args)
    target = check_target(args.out, force=args.force, protect=[Path(args.dataset)])
    # never score our own outputs, even when --out lies inside the dataset folder
    datasets = discover_datasets(args.dataset, exclude=[target.path])
    if target.note:
        _say(target.note)
    failed = [_failure(f.category, f.root, f.reason) for f in datasets.failures]
    total = len(datasets) + len(failed)
    datasets, policies = policies_from_args(args, list(datasets), (target.path,), _say)
    with cluster_backend(args.cluster) as distances, staged_output(target.path) as staging:
        failed += _score_all(datasets, config, staging, target.path, several=total > 1,
                             maps=not args.no_maps, policies=policies,
                             distances=distances)  # fmt: skip
        if len(failed) == total:
            raise InvalidInputError(
                f"{args.dataset}: none of the {total} categories could be scored "
                "(reasons above); nothing was written."
            )
        scored = sorted({d.category for d in datasets} - {f["category"] for f in failed})
        held = commit(staging, target.path, {"categories": scored, "failed": failed})
    if held is not None:  # Ctrl-C or SIGTERM while the finished run was put in place
        word, code = _stopped(held)
        _say(f"{word} as the run finished; {target.path} holds its complete outputs")
        return code
    if failed:
        _say(f"finished with {len(failed)} of {total} categories failed (exit 3)")
        return EXIT_PARTIAL
    return EXIT_OK


def cmd_demo(args: argparse.Namespace) -> int:
    """Generate the bundled synthetic product line and score it."""
    from engine.data.demo import write_demo_dataset

    out_root = ensure_writable(args.out)
    data_dir = write_demo_dataset(out_root, seed=args.seed)
    _say(f"demo data: synthetic product line written to {data_dir}")
    args.dataset, args.out = str(data_dir), str(out_root / "results")
    return cmd_score(args)


def cmd_backbones(_: argparse.Namespace) -> int:
    """List the registered 2D and 3D backbones."""
    from engine.backbones import backbone_entry, list_backbones

    for name in list_backbones():
        entry = backbone_entry(name)
        print(f"{name:18s} {entry.modality.upper()}  {entry.description}")
    return 0


def build_parser() -> argparse.ArgumentParser:
    """The ``musc`` argument parser."""
    parser = argparse.ArgumentParser(
        prog="musc", description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    commands = parser.add_subparsers(dest="command", required=True)
    score = commands.add_parser(
        "score",
        help="score a folder of product images",
        description=SCORE_HELP,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    score.add_argument("dataset", help="dataset folder (MVTec 3D-AD, MVTec AD or plain images)")
    score.add_argument(
        "--out",
        required=True,
        help="output folder; replaced as a whole by the new run (see above)",
    )
    add_score_options(score)
    score.set_defaults(func=cmd_score)
    demo = commands.add_parser("demo", help="score the bundled synthetic product line")
    demo.add_argument("--out", default="out/demo", help="output folder (default out/demo)")
    demo.add_argument("--seed", type=int, default=0, help="seed of the synthetic line")
    add_score_options(demo)
    demo.set_defaults(func=cmd_demo)
    listing = commands.add_parser("backbones", help="list the available backbones")
    listing.set_defaults(func=cmd_backbones)
    cli_stream.add_commands(commands, add_model_options)
    return parser


def main(argv: list[str] | None = None) -> int:
    """Entry point of the ``musc`` console script; returns the exit status."""
    args = build_parser().parse_args(argv)
    previous = _install_sigterm()
    try:
        return int(args.func(args))
    except (MuscError, OSError) as error:
        _say(f"error: {error}")
        return EXIT_ERROR
    except KeyboardInterrupt as stop:
        word, code = _stopped(signal.SIGTERM if isinstance(stop, Terminated) else signal.SIGINT)
        _say(f"{word}; the output folder was left as it was")
        return code
    finally:
        if previous is not None:
            signal.signal(signal.SIGTERM, previous)


def _install_sigterm() -> object:
    """Turn SIGTERM into :class:`Terminated`; returns the handler to restore (None: none set)."""
    try:
        return signal.signal(signal.SIGTERM, _on_sigterm)
    except ValueError:  # not the main thread: leave signals to the embedding program
        return None


if __name__ == "__main__":
    sys.exit(main())
