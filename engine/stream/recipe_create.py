"""Making a recipe from a scored batch: choose the bank, then set the cuts in stream units.

1. The batch is scored as today (:class:`InspectionSession`).
2. The bank is the ``bank_size`` lowest-scoring parts that *pass* the batch's label-free cut
   (a failed part never enters a bank).
3. Every batch part is then scored as a stream would score it: against the bank (a member
   against the other members). The cuts are chosen on those stream scores and maps, so that
   they mean the same on the line: ``auto`` = the label-free robust cut (docs/method.md §13),
   ``max-f1`` only when asked and the batch has ground truth, or a value.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Generator
from dataclasses import dataclass

import numpy as np
import torch

from engine.config import MuscConfig
from engine.data.samples import DatasetIndex
from engine.decision import thresholds as cuts
from engine.decision.model import decide
from engine.decision.thresholds import Threshold
from engine.errors import InvalidInputError
from engine.progress import Progress
from engine.session.results import ScoreResult
from engine.session.session import InspectionSession
from engine.stream.bank import MIN_BANK, Bank
from engine.stream.from_session import bank_members, session_parts
from engine.stream.part_features import PartFeatures
from engine.stream.part_readout import read_out_part, stream_rscon
from engine.stream.recipe import Recipe, weights_digest
from engine.stream.scorer import StreamScorer

DEFAULT_BANK = 50


@dataclass
class MadeRecipe:
    """A new recipe with the batch it came from and its parts' stream scores."""

    recipe: Recipe
    batch: ScoreResult
    stream_scores: dict[str, float]


def bank_cut(member_scores: np.ndarray) -> Threshold:
    """The label-free image cut of a stream: ``median + 3·1.4826·MAD`` of the bank parts'
    stream scores, each scored against the other bank parts as a new part is.

    The bank parts passed the batch's cut, so they are the line's accepted parts; unlike the
    batch rule's lower half (a truncated sample, whose MAD understates the spread of good parts),
    they carry the whole spread of what the line accepts.
    """
    how = (f"median + {cuts.ROBUST_K:g}\u00b71.4826\u00b7MAD of the {member_scores.size} bank "
           "parts' stream scores (each against the other bank parts)")  # fmt: skip
    return Threshold(cuts.robust_cut(member_scores), how, "auto")


def _cut(choice: str | float, scores: np.ndarray, labels: list, members: np.ndarray) -> Threshold:
    if isinstance(choice, str) and choice == "max-f1":
        return cuts.max_f1_threshold(scores, labels)
    if isinstance(choice, str):
        return bank_cut(members)
    return cuts.user_threshold(float(choice), "image cut")


def make_recipe(
    dataset: DatasetIndex,
    config: MuscConfig,
    *,
    bank_size: int = DEFAULT_BANK,
    threshold: str | float = "auto",
    pixel_threshold: str | float = "auto",
    session: InspectionSession | None = None,
) -> Generator[Progress, None, MadeRecipe]:
    """Score ``dataset`` and turn it into a recipe (module docstring).

    Args:
        dataset: The batch.
        config: Scoring options (backbones left on auto are resolved and stored).
        bank_size: Most parts in the bank.
        threshold: "auto", "max-f1" (needs ground truth of both classes) or a value.
        pixel_threshold: "auto" or a value in map units.
        session: A session of ``dataset`` to reuse (its cached stages are kept).

    Raises:
        InvalidInputError: Fewer than 2 passing parts for the bank, or max-f1 without labels.
    """
    if bank_size < MIN_BANK:
        raise InvalidInputError(f"--bank must be at least {MIN_BANK}, got {bank_size}.")
    session = session or InspectionSession(dataset, config)
    session.choose_backbones()
    batch = yield from session.run()
    parts = session_parts(session)
    verdicts = dict(zip(batch.names, decide(batch).verdicts(batch.image_scores), strict=True))
    order = np.argsort(batch.image_scores, kind="stable")
    passing = [batch.names[i] for i in order if verdicts[batch.names[i]] == "pass"]
    names = [n for n in passing if n in parts][:bank_size]
    if len(names) < MIN_BANK:
        raise InvalidInputError(
            f"{dataset.root}: only {len(names)} parts pass and have every modality; a bank "
            f"needs at least {MIN_BANK}. Make the recipe from a folder with more good parts."
        )
    members = yield from bank_members(parts, names, session)
    info, info_3d = session.backbone_infos()
    placeholder = Threshold(0.0, "chosen below", "user")
    scorer = StreamScorer(session.config, session.modality, Bank(members), placeholder)
    stream_scores, peaks = yield from _calibrate(scorer, parts)
    scored = [n for n in batch.names if n in stream_scores]
    values = np.array([stream_scores[n] for n in scored])
    labels = [batch.samples[batch.names.index(n)].label for n in scored]
    members_scores = np.array([stream_scores[n] for n in names])
    image_cut = _cut(threshold, values, labels, members_scores)
    pixel_cut = (
        cuts.pixel_threshold_auto(values, [peaks[n] for n in scored])
        if isinstance(pixel_threshold, str)
        else cuts.user_threshold(float(pixel_threshold), "pixel cut")
    )
    recipe = Recipe(
        config=session.config,
        modality=session.modality,
        backbone=info,
        backbone_3d=info_3d,
        weights_digest={"2d": weights_digest(info), "3d": weights_digest(info_3d)},
        image_cut=image_cut,
        pixel_cut=pixel_cut,
        members=members,
        calibration={
            "source": str(dataset.root),
            "category": dataset.category,
            "created": dt.datetime.now().astimezone().isoformat(timespec="seconds"),
            "parts": len(scored),
            "bank": names,
            "stream_scores": {n: float(stream_scores[n]) for n in scored},
            "x_percent": session.config.x_percent,
            "rscon_window": session.config.rscon_window,
        },
    )
    return MadeRecipe(recipe, batch, stream_scores)


def _calibrate(
    scorer: StreamScorer, parts: dict[str, PartFeatures]
) -> Generator[Progress, None, tuple[dict[str, float], dict[str, float]]]:
    """Every batch part scored as the stream scores it: (scores by name, map peaks by name).

    A bank member is scored with its own tables (against the other members) and its RsCon
    runs among the other members, so it is never its own neighbour twice.
    """
    scores, peaks = {}, {}
    slots = {name: slot for slot, name in enumerate(scorer.bank.names)}
    config = scorer.config
    with torch.inference_mode():
        bank_raw, bank_salient, scales = scorer.bank.read_out(config)
        for done, (name, features) in enumerate(parts.items(), start=1):
            slot = slots.get(name)
            if slot is None:
                result = read_out_part(scorer.tables_against_bank(features), config, scales)
                others = slice(None)
            else:
                result = read_out_part(scorer.bank.members[slot].tables, config, scales)
                others = [i for i in range(len(slots)) if i != slot]
            scores[name] = stream_rscon(result.raw, result.salient, bank_raw[others],
                                        bank_salient[others], config.rscon_window)  # fmt: skip
            peaks[name] = result.raw
            yield Progress("calibrate the cuts", done, len(parts), name)
    return scores, peaks
