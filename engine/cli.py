"""Headless command line: ``musc score``, ``musc demo``, ``musc backbones``."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Generator
from pathlib import Path
from typing import Any

from tqdm import tqdm

from engine.config import DEVICES, MODALITIES, MuscConfig
from engine.data.discover import discover_datasets
from engine.data.samples import DatasetIndex
from engine.errors import MuscError
from engine.evaluation.evaluate import evaluate_all
from engine.outputs.export import ensure_writable, write_outputs
from engine.progress import Progress, run_to_completion
from engine.session.results import ScoreResult
from engine.session.session import InspectionSession


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


def _config_from_args(args: argparse.Namespace) -> MuscConfig:
    return MuscConfig(
        modality=args.modality,
        backbone_3d=args.backbone_3d,
        weights_3d=args.weights_3d,
        k_iter=args.k_iter,
        c_thr=args.c_thr,
        remove_background=not args.keep_background,
        black_rgb_background=args.black_rgb_background,
        cae={"auto": None, "on": True, "off": False}[args.cae],
        fusion=args.fusion,
        backbone=args.backbone,
        weights=args.weights,
        image_size=args.image_size,
        layers=tuple(args.layers) if args.layers else None,
        x_percent=args.x_percent,
        rscon_window=args.k,
        subsets=args.subsets,
        device=args.device,
        batch_size=args.batch_size,
    )


def score_dataset(
    dataset: DatasetIndex,
    config: MuscConfig,
    out_dir: Path,
    *,
    maps: bool = True,
) -> tuple[ScoreResult, dict[str, dict[str, float]]]:
    """Score one category and write its outputs; returns the result and its metrics."""
    ensure_writable(out_dir)  # fail before the long computation, not after it
    session = InspectionSession(dataset, config)
    for line in session.choose_backbones():
        _say(line)  # one visible line per automatic choice: which backbone and why
    result = _with_progress(session.run())
    for skipped in session.skipped:
        _say(f"skipped {skipped.path}: {skipped.reason}")
    for warning in session.warnings:
        _say(f"warning: {warning}")
    metrics = evaluate_all(result)
    extra: dict[str, Any] = {
        "dataset": {
            "root": str(dataset.root),
            "layout": dataset.layout,
            "category": dataset.category,
        },
        "backbone_choice": session.backbone_reason or "named by the user",
        "backbone_3d_choice": session.backbone_3d_reason or "named by the user",
        "cae_used": session.uses_cae,
        "skipped": [{"path": str(s.path), "reason": s.reason} for s in session.skipped],
        "warnings": session.warnings,
    }
    write_outputs(out_dir, result, metrics, extra, maps=maps)
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


def cmd_score(args: argparse.Namespace) -> int:
    """Score every category found under the dataset folder."""
    config = _config_from_args(args)
    datasets = discover_datasets(args.dataset)
    out_root = Path(args.out)
    for dataset in datasets:
        out_dir = out_root / dataset.category if len(datasets) > 1 else out_root
        result, metrics = score_dataset(dataset, config, out_dir, maps=not args.no_maps)
        _report(dataset.category, result, metrics, out_dir)
    return 0


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


def _add_score_options(parser: argparse.ArgumentParser) -> None:
    defaults = MuscConfig()
    parser.add_argument("--modality", choices=MODALITIES, default=defaults.modality)
    parser.add_argument("--backbone", help="registry name (see `musc backbones`); default: auto")
    parser.add_argument("--weights", help="local weights file for the backbone")
    parser.add_argument("--backbone-3d", help="3D registry name (point_mae, fpfh); default: auto")
    parser.add_argument("--weights-3d", help="local weights file for the 3D backbone")
    parser.add_argument("--k-iter", type=int, default=defaults.k_iter, help="IPG K_iter")
    parser.add_argument("--c-thr", type=float, default=defaults.c_thr, help="IPG curvature C_thr")
    parser.add_argument(
        "--keep-background",
        action="store_true",
        help="do not remove the background plane from XYZ maps",
    )
    parser.add_argument(
        "--black-rgb-background",
        action="store_true",
        help="black out the RGB background found in 3D (reference preprocessing)",
    )
    parser.add_argument(
        "--fusion",
        choices=("sum", "scaled"),
        default=defaults.fusion,
        help="how 2D and 3D maps are added (see README)",
    )
    parser.add_argument(
        "--cae",
        choices=("auto", "on", "off"),
        default="auto",
        help="cross-modal enhancement (auto: on with point_mae, off with fpfh)",
    )
    parser.add_argument(
        "--x-percent",
        type=float,
        default=defaults.x_percent,
        help="interval average over the lowest X%% of the other samples",
    )
    parser.add_argument("--k", type=int, default=defaults.rscon_window, help="RsCon window")
    parser.add_argument("--subsets", type=int, default=defaults.subsets, help="subsets g")
    parser.add_argument("--image-size", type=int, help="input side in pixels")
    parser.add_argument("--layers", type=int, nargs="+", help="backbone layer indices")
    parser.add_argument("--device", choices=DEVICES, default=defaults.device)
    parser.add_argument("--batch-size", type=int, default=defaults.batch_size)
    parser.add_argument("--no-maps", action="store_true", help="skip heatmap PNGs and maps.h5")


def build_parser() -> argparse.ArgumentParser:
    """The ``musc`` argument parser."""
    parser = argparse.ArgumentParser(prog="musc", description=__doc__)
    commands = parser.add_subparsers(dest="command", required=True)
    score = commands.add_parser("score", help="score a folder of product images")
    score.add_argument("dataset", help="dataset folder (MVTec 3D-AD, MVTec AD or plain images)")
    score.add_argument("--out", required=True, help="output folder")
    _add_score_options(score)
    score.set_defaults(func=cmd_score)
    demo = commands.add_parser("demo", help="score the bundled synthetic product line")
    demo.add_argument("--out", default="out/demo", help="output folder (default out/demo)")
    demo.add_argument("--seed", type=int, default=0, help="seed of the synthetic line")
    _add_score_options(demo)
    demo.set_defaults(func=cmd_demo)
    listing = commands.add_parser("backbones", help="list the available backbones")
    listing.set_defaults(func=cmd_backbones)
    return parser


def main(argv: list[str] | None = None) -> int:
    """Entry point of the ``musc`` console script."""
    args = build_parser().parse_args(argv)
    try:
        return int(args.func(args))
    except MuscError as error:
        _say(f"error: {error}")
        return 2
    except OSError as error:
        _say(f"error: {error}")
        return 2
    except KeyboardInterrupt:
        _say("interrupted")
        return 130


if __name__ == "__main__":
    sys.exit(main())
