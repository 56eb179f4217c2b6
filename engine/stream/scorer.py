"""Scoring a stream of new parts, one at a time, against a bank (docs/method.md §14).

:class:`StreamScorer` extracts each new part once, scores it against the bank in O(B), reads it
out, applies RsCon among the bank and the recipe's cut, and offers it to the bank. The last
parts are kept with their tables so that X %, k, the blur and the cut change without
re-extracting anything (:meth:`StreamScorer.rescore`).
"""

from __future__ import annotations

import time
from collections import deque
from dataclasses import dataclass

import numpy as np
import torch

from engine.backbones import create_backbone, create_point_backbone
from engine.backbones.base import Backbone2D, Backbone3D
from engine.config import MuscConfig
from engine.data.samples import Sample
from engine.decision.thresholds import Threshold
from engine.device import resolve_device
from engine.precision import apply_precision
from engine.stream.bank import Bank, BankMember, BankReadOut
from engine.stream.part_features import PartFeatures, extract_part
from engine.stream.part_readout import PartScore, PartTables, read_out_part, stream_rscon
from engine.stream.query import query_tables

KEEP_RECENT = 50  # parts kept with their tables for live re-scoring (and pinning)


@dataclass
class StreamedPart:
    """One part of the stream, as scored.

    Attributes:
        sample: The part's files (and ground truth when the folder has it).
        features: Its features (kept while the part is among the recent ones, for pinning).
        tables: Its tables against the bank it was scored with.
        result: Its maps, raw score and salient feature at the current X %.
        score: Final image score (RsCon among the bank), compared with the image cut.
        verdict: "pass" or "fail".
        entered_bank: Whether a rolling bank took it in.
        seconds: Time from the start of extraction to the verdict.
    """

    sample: Sample
    features: PartFeatures
    tables: PartTables
    result: PartScore
    score: float
    verdict: str
    entered_bank: bool = False
    seconds: float = 0.0

    @property
    def name(self) -> str:
        """Sample name."""
        return self.sample.name

    def anomaly_map(self) -> np.ndarray:
        """(S, S) float32 fused map on the map grid."""
        return self.result.map.detach().cpu().numpy().astype(np.float32)

    def member(self) -> BankMember:
        """This part as a bank member (features and tables as scored)."""
        return BankMember(self.name, self.features.layers_2d, self.features.layers_3d, self.tables)


def uses_cae(config: MuscConfig, modality: str, backbone_3d_name: str | None) -> bool:
    """Whether cross-modal enhancement applies, resolved as a batch session does."""
    if modality != "2d+3d":
        return False
    return config.cae if config.cae is not None else backbone_3d_name == "point_mae"


def build_backbones(
    config: MuscConfig, modality: str
) -> tuple[Backbone2D | None, Backbone3D | None]:
    """The 2D and 3D backbones ``config`` names (resolved names, as a recipe stores them)."""
    device = resolve_device(config.device)
    backbone = backbone_3d = None
    if "2d" in modality:
        backbone = create_backbone(
            config.backbone, config.weights, device=device,
            image_size=config.image_size, layers=config.layers,
        )  # fmt: skip
        apply_precision(backbone, config.precision)
    if "3d" in modality:
        backbone_3d = create_point_backbone(
            config.backbone_3d, config.weights_3d, device=device, bn_stats=config.bn_stats
        )
        apply_precision(backbone_3d, config.precision)
    return backbone, backbone_3d


class StreamScorer:
    """Scores new parts one by one against a :class:`Bank`.

    Example:
        >>> scorer = StreamScorer(config, "2d", bank, image_cut, backbone=net)
        >>> part = scorer.score_new(sample)
        >>> part.verdict, part.score
        >>> scorer.rescore(x_percent=20)  # the recent parts again, no extraction
    """

    def __init__(
        self,
        config: MuscConfig,
        modality: str,
        bank: Bank,
        image_cut: Threshold,
        pixel_cut: Threshold | None = None,
        *,
        backbone: Backbone2D | None = None,
        backbone_3d: Backbone3D | None = None,
        keep_recent: int = KEEP_RECENT,
    ) -> None:
        self.config = config
        self.modality = modality
        self.bank = bank
        self.image_cut = image_cut
        self.pixel_cut = pixel_cut
        self.backbone = backbone
        self.backbone_3d = backbone_3d
        self.recent: deque[StreamedPart] = deque(maxlen=keep_recent)
        name_3d = backbone_3d.info.name if backbone_3d is not None else config.backbone_3d
        self.use_cae = uses_cae(config, modality, name_3d)

    @property
    def device(self) -> torch.device:
        """Where features and tables live."""
        return resolve_device(self.config.device)

    def extract(self, sample: Sample) -> PartFeatures:
        """Extract one part's features (raises InvalidInputError for a bad part)."""
        return extract_part(
            sample, self.config, self.modality, self.device, self.backbone, self.backbone_3d
        )

    def tables_against_bank(self, features: PartFeatures) -> PartTables:
        """The part's read-out tables against the current bank members."""
        refs_2d, refs_3d = self.bank.references()
        cumsum_2d, cumsum_3d = query_tables(
            features.layers_2d, refs_2d, features.layers_3d, refs_3d,
            patch_of_group=features.patch_of_group, use_cae=self.use_cae,
            chunk_mib=self.config.chunk_mib,
        )  # fmt: skip
        return features.tables(cumsum_2d, cumsum_3d)

    def final_score(self, result: PartScore, bank: BankReadOut | None = None) -> float:
        """RsCon of a read-out part among the bank (:func:`stream_rscon`).

        Args:
            result: The part's read-out.
            bank: The bank's :meth:`Bank.read_out` at the current config, when the caller
                already has it (scoring many parts reads the bank once).
        """
        bank_raw, bank_salient, _ = bank or self.bank.read_out(self.config)
        return stream_rscon(
            result.raw, result.salient, bank_raw, bank_salient, self.config.rscon_window
        )

    def verdict(self, score: float) -> str:
        """ "fail" at or above the image cut, else "pass"."""
        return "fail" if float(score) >= self.image_cut.value else "pass"

    def score_new(self, sample: Sample) -> StreamedPart:
        """Extract, score and decide one new part; a rolling bank may take it in.

        Raises:
            InvalidInputError: The part's files are missing or unreadable (the stream skips it).
        """
        started = time.perf_counter()
        features = self.extract(sample)
        with torch.inference_mode():
            tables = self.tables_against_bank(features)
            bank = self.bank.read_out(self.config)
            result = read_out_part(tables, self.config, bank[2])
            score = self.final_score(result, bank)
        part = StreamedPart(sample, features, tables, result, score, self.verdict(score))
        part.entered_bank = self.bank.offer(part.member(), part.verdict)
        part.seconds = time.perf_counter() - started
        self.recent.append(part)
        return part

    def rescore(
        self,
        *,
        x_percent: float | None = None,
        rscon_window: int | None = None,
        blur_sigma: float | None = None,
        image_cut: Threshold | None = None,
    ) -> list[StreamedPart]:
        """The recent parts read out again with new X %, k, blur or cut (no extraction).

        Each keeps the tables it was scored with; the bank members are read out again too.
        """
        changes = {"x_percent": x_percent, "rscon_window": rscon_window, "blur_sigma": blur_sigma}
        self.config = self.config.replace(**{k: v for k, v in changes.items() if v is not None})
        self.image_cut = image_cut or self.image_cut
        with torch.inference_mode():
            bank = self.bank.read_out(self.config)
            for part in self.recent:
                part.result = read_out_part(part.tables, self.config, bank[2])
                part.score = self.final_score(part.result, bank)
                part.verdict = self.verdict(part.score)
        return list(self.recent)

    def find_recent(self, name: str) -> StreamedPart | None:
        """A recent part by name, or None when it has left the recent window."""
        return next((p for p in reversed(self.recent) if p.name == name), None)

    def pin(self, name: str) -> bool:
        """Pin a recent part (or a bank member) into the bank; False if it is not at hand."""
        part = self.find_recent(name)
        if part is not None:
            self.bank.pin(part.member())
            return True
        member = next((m for m in self.bank.members if m.name == name), None)
        if member is not None:
            self.bank.pin(member)
        return member is not None

    def unpin(self, name: str) -> None:
        """Unpin a bank member (see :meth:`Bank.unpin`)."""
        self.bank.unpin(name)
