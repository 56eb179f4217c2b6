"""The line commands: ``musc recipe create`` and ``musc watch`` (docs/method.md §14).

``musc recipe create BATCH --out RECIPE`` scores a batch and saves config, backbones, cuts and
bank in one HDF5 file. ``musc watch FOLDER --recipe RECIPE --out DIR`` scores every new part
in FOLDER against the recipe's bank as soon as its files are complete, appending one line per
part to DIR/stream.csv; ``--once`` takes the parts already there, in arrival order, and exits.
Ctrl+C (or SIGTERM) stops after the part in hand is written: nothing is left half-written.
"""

from __future__ import annotations

import argparse
import dataclasses
import datetime as dt
import signal
import sys
import time
from collections.abc import Callable
from pathlib import Path

from engine.data.discover import discover_dataset
from engine.errors import InvalidInputError
from engine.stream.bank import BANK_POLICIES, Bank
from engine.stream.recipe import check_backbones, load_recipe, save_recipe
from engine.stream.recipe_create import DEFAULT_BANK, make_recipe
from engine.stream.scorer import StreamScorer, build_backbones
from engine.stream.stream_output import StreamRecord, StreamWriter
from engine.stream.watch import ArrivedPart, PartWatcher


def _say(message: str) -> None:
    print(f"musc: {message}", file=sys.stderr, flush=True)


ModelOptions = Callable[[argparse.ArgumentParser], None]


def add_commands(commands: argparse._SubParsersAction, add_model_options: ModelOptions) -> None:
    """Register ``recipe create`` and ``watch`` on the ``musc`` parser."""
    from engine.cli_decision import _threshold_value

    recipe = commands.add_parser("recipe", help="make a recipe (config, cuts, bank) for a line")
    actions = recipe.add_subparsers(dest="recipe_command", required=True)
    create = actions.add_parser(
        "create",
        help="score a batch and save it as a recipe",
        description="Score BATCH_FOLDER as `musc score` does and save the recipe a line needs: "
        "configuration, backbones and weights identity, the cuts (chosen on the parts scored "
        "as the stream will score them) and the bank of passing parts, features included.",
    )
    create.add_argument("batch", metavar="BATCH_FOLDER", help="folder of one product's parts")
    create.add_argument("--out", required=True, metavar="RECIPE", help="recipe file (.h5)")
    create.add_argument("--bank", type=int, default=DEFAULT_BANK,
                        help=f"most parts in the bank (default {DEFAULT_BANK})")  # fmt: skip
    create.add_argument(
        "--threshold",
        type=lambda t: _threshold_value(t, ("auto", "max-f1"), "--threshold"),
        default="auto",
        help="image cut: auto (label-free robust cut), max-f1 (needs ground truth) or a value",
    )
    create.add_argument(
        "--pixel-threshold",
        type=lambda t: _threshold_value(t, ("auto",), "--pixel-threshold"),
        default="auto",
        help="defect-pixel cut: auto or a value in map units",
    )
    add_model_options(create)
    create.set_defaults(func=cmd_recipe_create)

    watch = commands.add_parser(
        "watch",
        help="score each new part in a folder against a recipe",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    watch.add_argument("folder", help="the folder the line writes parts into")
    watch.add_argument("--recipe", required=True, help="recipe from `musc recipe create`")
    watch.add_argument("--out", required=True, help="output folder (stream.csv, maps)")
    watch.add_argument("--bank-policy", choices=BANK_POLICIES, default="both",
                       help="both (default): the recipe's bank plus the last passing parts; "
                       "pinned: the recipe's bank; rolling: the last passing parts")  # fmt: skip
    watch.add_argument("--rolling", type=int,
                       help=f"most recent passing parts in the bank (default: up to "
                       f"{DEFAULT_BANK} parts in all)")  # fmt: skip
    watch.add_argument(
        "--once", action="store_true", help="score the parts in FOLDER (arrival order) and exit"
    )
    watch.add_argument("--settle", type=float, default=0.5,
                       help="seconds a part's files must stay unchanged (default 0.5)")  # fmt: skip
    watch.add_argument("--device", choices=("auto", "cpu", "cuda"), help="override the recipe's")
    watch.set_defaults(func=cmd_watch)


def cmd_recipe_create(args: argparse.Namespace) -> int:
    """Score a batch and save its recipe."""
    from engine.cli import _config_from_args, _with_progress

    out = Path(args.out)
    if out.is_dir():
        raise InvalidInputError(f"{out}: is a folder; --out takes the recipe's file name.")
    dataset = discover_dataset(args.batch)  # a recipe file is never taken for a part
    made = _with_progress(
        make_recipe(dataset, _config_from_args(args), bank_size=args.bank,
                    threshold=args.threshold, pixel_threshold=args.pixel_threshold)
    )  # fmt: skip
    recipe = made.recipe
    save_recipe(recipe, out)
    scores = made.stream_scores
    fails = sum(score >= recipe.image_cut.value for score in scores.values())
    _say(f"recipe {out}: {recipe.modality}, bank of {len(recipe.members)} passing parts")
    _say(f"image cut {recipe.image_cut.value:.4g} ({recipe.image_cut.how})")
    _say(f"pixel cut {recipe.pixel_cut.value:.4g} ({recipe.pixel_cut.how})")
    _say(f"{fails} of {len(scores)} batch parts fail when scored as the stream scores them")
    return 0


class _StopFlag:
    """SIGINT/SIGTERM set a flag; the loop stops between parts. A second Ctrl+C stops at once."""

    def __init__(self) -> None:
        self.stop = False
        self._previous: dict[int, object] = {}

    def __enter__(self) -> _StopFlag:
        for signum in (signal.SIGINT, signal.SIGTERM):
            try:
                self._previous[signum] = signal.signal(signum, self._on_signal)
            except ValueError:  # not the main thread
                pass
        return self

    def __exit__(self, *exc: object) -> None:
        for signum, handler in self._previous.items():
            signal.signal(signum, handler)

    def _on_signal(self, signum: int, _frame: object) -> None:
        if self.stop:
            raise KeyboardInterrupt
        self.stop = True
        _say("stopping after the part in hand (Ctrl+C again to stop at once)")


def default_rolling(policy: str, recipe_bank: int, rolling: int | None) -> int:
    """The rolling share of the bank: ``--rolling``, else what fills the bank to
    max(50, the recipe's bank) — the bank size the latency figures are measured at."""
    if rolling is not None:
        return rolling
    total = max(DEFAULT_BANK, recipe_bank)
    return total - recipe_bank if policy == "both" else total


def open_scorer(recipe_path: str | Path, policy: str, rolling: int | None = None,
                device: str | None = None) -> StreamScorer:  # fmt: skip
    """A scorer from a recipe file, refused when this machine's backbones differ from its."""
    recipe = load_recipe(recipe_path)
    config = recipe.config.replace(device=device) if device else recipe.config
    backbone, backbone_3d = build_backbones(config, recipe.modality)
    check_backbones(recipe, backbone and backbone.info, backbone_3d and backbone_3d.info,
                    recipe_path)  # fmt: skip
    bank = Bank(recipe.members, policy, rolling_size=default_rolling(policy, len(recipe.members),
                                                                     rolling))  # fmt: skip
    return StreamScorer(config, recipe.modality, bank, recipe.image_cut, recipe.pixel_cut,
                        backbone=backbone, backbone_3d=backbone_3d)  # fmt: skip


def score_arrived(scorer: StreamScorer, arrived: ArrivedPart, writer: StreamWriter) -> str | None:
    """Score one part and write its line and map; a bad part is logged and skipped.

    Returns:
        The verdict, or None when the part was skipped.
    """
    sample = arrived.sample
    try:
        part = scorer.score_new(sample)
    except Exception as error:  # noqa: BLE001 - one bad part must never stop the stream
        path = sample.rgb_path or sample.xyz_path or Path(sample.name)
        reason = str(error) or type(error).__name__
        writer.log_skip(sample.name, path, reason)
        _say(f"skipped {sample.name}: {reason}")
        return None
    latency_ms = (time.time() - arrived.arrived) * 1000.0
    record = StreamRecord(
        time=dt.datetime.now().astimezone().isoformat(timespec="seconds"),
        sample=sample.name,
        score=part.score,
        verdict=part.verdict,
        label=sample.label,
        defect_type=sample.defect_type,
        latency_ms=latency_ms,
    )
    writer.write(record, part.anomaly_map(), tuple(part.features.image_size))
    bank = " (entered the bank)" if part.entered_bank else ""
    _say(f"{sample.name}: {part.verdict} {part.score:.4f} in {latency_ms:.0f} ms{bank}")
    return part.verdict


def cmd_watch(args: argparse.Namespace) -> int:
    """Score new parts as they arrive (or, with --once, the parts already there)."""
    folder, out = Path(args.folder), Path(args.out)
    if not folder.is_dir():
        raise InvalidInputError(f"{folder}: folder not found; point at the line's output folder.")
    scorer = open_scorer(args.recipe, args.bank_policy, args.rolling, args.device)
    exclude = [out] if out.resolve().is_relative_to(folder.resolve()) else []
    watcher = PartWatcher(folder, needs_xyz="3d" in scorer.modality, settle_seconds=args.settle,
                          exclude=exclude)  # fmt: skip
    verdicts: list[str | None] = []

    def log_unusable() -> None:
        for skipped in watcher.take_unusable():
            writer.log_skip(skipped.path.stem, skipped.path, skipped.reason)
            _say(f"skipped {skipped.path}: {skipped.reason}")
            verdicts.append(None)

    with StreamWriter(out) as writer, _StopFlag() as flag:
        if args.once:
            arrivals = watcher.existing()
            log_unusable()
            for arrived in arrivals:
                if flag.stop:
                    break
                # the parts were complete before the run: latency counts from their turn
                arrived = dataclasses.replace(arrived, arrived=time.time())
                verdicts.append(score_arrived(scorer, arrived, writer))
        else:
            with watcher:
                _say(f"watching {folder} with a bank of {len(scorer.bank)} (Ctrl+C stops)")
                while not flag.stop:
                    for arrived in watcher.poll(0.5):
                        verdicts.append(score_arrived(scorer, arrived, writer))
                        if flag.stop:
                            break
                    log_unusable()
    scored = [v for v in verdicts if v is not None]
    _say(f"{len(scored)} parts scored, {scored.count('fail')} failed, "
         f"{len(verdicts) - len(scored)} skipped; {out / 'stream.csv'}")  # fmt: skip
    return 0
