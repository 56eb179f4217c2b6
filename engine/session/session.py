"""The staged session: one dataset, one config, and the cached output of every stage.

Which stage reads which parameter, and so what :meth:`InspectionSession.update` drops, is
declared once in :mod:`engine.session.stages`; docs/method.md, "Pipeline", shows the data flow.
Each long stage is a generator of :class:`Progress` events; every event is a cancellation point.
:meth:`InspectionSession.rescan` takes the folder indexed again and keeps what unchanged parts
computed (:mod:`engine.session.rescan`, :mod:`engine.session.part_stages`).
"""

from __future__ import annotations

import time
from collections.abc import Generator
from dataclasses import dataclass, fields

import torch

from engine.backbones import (
    choose_default_backbone,
    choose_default_point_backbone,
    create_backbone,
    create_point_backbone,
)
from engine.backbones.base import Backbone2D, Backbone3D, BackboneInfo, PointBackboneInfo
from engine.config import MuscConfig
from engine.data.samples import DatasetIndex, Sample, SkippedFile
from engine.device import move_tensors, resolve_device
from engine.errors import InvalidInputError, MuscError
from engine.method.subsets import split_subsets
from engine.precision import apply_precision
from engine.progress import CancelToken, Progress, timed
from engine.session import branch_3d
from engine.session import rescan as parts
from engine.session.compute_backend import DistanceBackend
from engine.session.memory import plan_subsets
from engine.session.part_stages import PartStages
from engine.session.readout import read_out
from engine.session.rescan import RescanSummary
from engine.session.results import ScoreResult
from engine.session.samples import scored_samples
from engine.session.session_backbones import SessionBackbones
from engine.session.stages import CACHED_STAGES, STAGES, Stage, stale_stages
from engine.session.tables import SubsetTable, cloud_rows, mutual_scores, side_by_side


@dataclass
class SessionSnapshot:
    """Everything a session computed, without backbones: what the session cache stores."""

    config: MuscConfig
    stages: dict[Stage, object]
    sample_names: list[str]
    timings: dict[str, float]
    warnings: list[str]
    skipped: list[SkippedFile]
    backbone_info: BackboneInfo | None
    backbone_3d_info: PointBackboneInfo | None


class InspectionSession(SessionBackbones, PartStages):
    """One dataset, one configuration, and the cached results of each stage.

    Example:
        >>> session = InspectionSession(discover_dataset("line/"), MuscConfig())
        >>> result = run_to_completion(session.run())
        >>> faster = session.rescore(x_percent=20)  # no feature extraction
        >>> session.rescan(discover_dataset("line/"))  # F5: only new parts are extracted
    """

    def __init__(
        self,
        dataset: DatasetIndex,
        config: MuscConfig | None = None,
        *,
        backbone: Backbone2D | None = None,
        backbone_3d: Backbone3D | None = None,
        cancel: CancelToken | None = None,
        distances: DistanceBackend | None = None,
    ) -> None:
        super().__init__(backbone, backbone_3d)
        self.distances = distances  # where scoring (and, on Ray, extraction) runs; None: here
        self.dataset = dataset
        self.config = config or MuscConfig()
        self.cancel = cancel or CancelToken()
        self.skipped: list[SkippedFile] = list(dataset.skipped)
        self.warnings: list[str] = list(dataset.warnings)
        self.timings: dict[str, float] = {}
        self._cache: dict[Stage, object] = {}
        self._samples: list[Sample] = []
        self.result: ScoreResult | None = None
        # the files as indexed, and after a rescan the per-part outputs of unchanged parts that
        # the next run reuses (by stage, then part name)
        self._signatures = parts.file_signatures(dataset)
        self._carried: dict[Stage, dict] = {}
        self._kept: set[str] = set()

    @property
    def samples(self) -> list[Sample]:
        """The samples being scored (available after the first stages ran)."""
        return list(self._samples)

    @property
    def modality(self) -> str:
        """The modality actually run: "auto" resolved against the data."""
        if self.config.modality != "auto":
            return self.config.modality
        if not any(s.rgb_path is not None for s in self.dataset.samples):
            return "3d"  # a folder of XYZ maps only
        return "2d+3d" if self.dataset.has_xyz else "2d"

    @property
    def uses_cae(self) -> bool:
        """Whether cross-modal enhancement applies (``cae=None`` resolves by 3D backbone)."""
        if self.modality != "2d+3d":
            return False
        if self.config.cae is not None:
            return self.config.cae
        name = self._backbone_3d.info.name if self._backbone_3d else self.config.backbone_3d
        return name == "point_mae"

    def snapshot(self) -> SessionSnapshot:
        """The cached stages, scored samples, notes and backbone infos (tensors are shared)."""
        info, info_3d = self.backbone_infos()
        return SessionSnapshot(
            config=self.config,
            stages=dict(self._cache),
            sample_names=[s.name for s in self._samples],
            timings=dict(self.timings),
            warnings=list(self.warnings),
            skipped=list(self.skipped),
            backbone_info=info,
            backbone_3d_info=info_3d,
        )

    @classmethod
    def from_snapshot(cls, dataset: DatasetIndex, snapshot: SessionSnapshot) -> InspectionSession:
        """A session that resumes from ``snapshot`` without building any backbone.

        :meth:`rescore` works at once; :meth:`run` computes only the stages the snapshot lacks.

        Raises:
            KeyError: A scored sample of the snapshot is not in ``dataset``.
        """
        by_name = {s.name: s for s in dataset.samples}
        session = cls(dataset, snapshot.config)
        session._cache.update(snapshot.stages)
        session._samples = [by_name[name] for name in snapshot.sample_names]
        session.timings.update(snapshot.timings)
        session.warnings = list(snapshot.warnings)
        session.skipped = list(snapshot.skipped)
        session.backbone_info = snapshot.backbone_info
        session.backbone_3d_info = snapshot.backbone_3d_info
        return session

    # -- running -----------------------------------------------------------------------------

    def run(self) -> Generator[Progress, None, ScoreResult]:
        """Compute every stage the modality needs that is not cached yet, then read out.

        Yields:
            Progress events; each is a point where cancellation is honoured.

        Returns:
            The scored result.
        """
        modality = self.modality
        if "3d" in modality and not self.dataset.has_xyz:
            raise InvalidInputError(
                f"{self.dataset.root}: modality {modality} needs XYZ point maps, but none were "
                "found; use --modality 2d or add the xyz/*.tiff files."
            )
        for stage in (Stage.LOAD_3D, Stage.EXTRACT_2D, Stage.AGGREGATE_2D):
            yield from self._ensure(stage)
        # the scored sample list: images that could be read (or clouds, in 3D-only mode)
        tokens = self._cache.get(Stage.EXTRACT_2D)
        self._samples = scored_samples(
            self.dataset,
            tokens.samples if tokens is not None else None,
            set(self._cache.get(Stage.LOAD_3D, {})),
            "2d" in modality,
            "3d" in modality,
            self.warnings,
        )
        self._subsets_used = plan_subsets(
            len(self._samples), self.config, modality, self._cache, self.warnings
        )
        for stage in (Stage.GROUP_3D, Stage.EXTRACT_3D, Stage.SCORE_2D, Stage.SCORE_3D,
                      Stage.SCORE_CAE):  # fmt: skip
            yield from self._ensure(stage)
        # a stage that runs again (after update) reports the same files and notes again
        self.skipped = list(dict.fromkeys(self.skipped))
        self.warnings = list(dict.fromkeys(self.warnings))
        return self.rescore()

    def pending(self) -> list[Stage]:
        """The stages the next :meth:`run` computes, in order (cached ones are left out)."""
        return [s for s in CACHED_STAGES if self._needed(s) and not self._is_cached(s)]

    def update(self, config: MuscConfig) -> list[Stage]:
        """Switch to ``config``, dropping only the cached stages the stage spec says it changes.

        A changed backbone field rebuilds that backbone; a changed device moves the cached
        tensors (and drops the backbones, rebuilt only if a stage needs them) instead of
        recomputing anything.

        Returns:
            The stages that the next :meth:`run` recomputes (:meth:`pending`).
        """
        changed = {
            f.name
            for f in fields(MuscConfig)
            if getattr(config, f.name) != getattr(self.config, f.name)
        }
        old_device, device = resolve_device(self.config.device), resolve_device(config.device)
        self.config = config
        self._forget_backbones(changed)
        if device != old_device:
            self._move_to(device)
        for stage in stale_stages(changed, config):
            self._cache.pop(stage, None)
            self._carried.pop(stage, None)
        return self.pending()

    def rescan(self, dataset: DatasetIndex) -> RescanSummary:
        """Switch to ``dataset``, this folder indexed again, keeping what unchanged parts computed.

        A part is unchanged when its files' (path, size, mtime_ns) are as when this session
        indexed them. The next :meth:`run` extracts features only for the new and changed parts,
        reuses the per-part outputs of the others (re-ordered to ``dataset``), and recomputes
        mutual scoring and the read-out for the whole new set; removed parts are dropped.

        Returns:
            The added, removed, changed and kept parts; nothing is dropped when unchanged.
        """
        signatures = parts.file_signatures(dataset)
        summary = parts.compare(self._signatures, signatures)
        self._signatures = signatures
        if not summary.unchanged:
            complete = {s: v for s, v in self._cache.items() if self._is_cached(s)}
            self._keep_parts(dataset, set(summary.kept), complete)
            self._cache.clear()
            self._samples, self.result = [], None
        self.dataset = dataset
        return summary

    def rescore(
        self,
        *,
        x_percent: float | None = None,
        rscon_window: int | None = None,
        blur_sigma: float | None = None,
    ) -> ScoreResult:
        """Recompute the cheap stages (interval average, maps, RsCon) from cached tables.

        Args:
            x_percent: New X% of the interval average, or None to keep it.
            rscon_window: New RsCon window k, or None to keep it.
            blur_sigma: New blur of the 3D map, or None to keep it.

        Returns:
            The new result (also stored in :attr:`result`).
        """
        tables = self._tables()
        if tables is None:
            raise MuscError("rescore() needs a completed run(); run the session first.")
        started = time.perf_counter()
        changes = {"x_percent": x_percent, "rscon_window": rscon_window, "blur_sigma": blur_sigma}
        self.config = self.config.replace(**{k: v for k, v in changes.items() if v is not None})
        tokens = self._cache.get(Stage.EXTRACT_2D)
        info, info_3d = self.backbone_infos()
        self.result = read_out(
            tables,
            samples=self._samples,
            image_sizes=self._image_sizes(),
            modality=self.modality,
            config=self.config,
            grid_2d=tokens.grid if tokens is not None else None,
            features_2d=self._cache.get(Stage.AGGREGATE_2D),
            features_3d=self._cache.get(Stage.EXTRACT_3D),
            clouds=self._clouds_of_samples(),
            backbone=info,
            backbone_3d=info_3d,
            timings=self.timings,
        )
        self.timings[Stage.READ_OUT] = time.perf_counter() - started
        self.result.timings[Stage.READ_OUT] = self.timings[Stage.READ_OUT]
        return self.result

    # -- stages ------------------------------------------------------------------------------

    def _needed(self, stage: Stage) -> bool:
        return STAGES[stage].needed(self.modality, self.uses_cae)

    def _is_cached(self, stage: Stage) -> bool:
        if stage is Stage.EXTRACT_2D:  # a restored session's stripped tokens serve until
            tokens = self._cache.get(stage)  # SNAMD-2D has to run again
            return tokens is not None and (not tokens.stripped or Stage.AGGREGATE_2D in self._cache)
        return stage in self._cache

    def _ensure(self, stage: Stage) -> Generator[Progress, None, None]:
        if self._needed(stage) and not self._is_cached(stage):
            compute = {
                Stage.LOAD_3D: self._load_3d,
                Stage.EXTRACT_2D: self._extract_2d,
                Stage.AGGREGATE_2D: self._aggregate_2d,
                Stage.GROUP_3D: self._group_3d,
                Stage.EXTRACT_3D: self._extract_3d,
                Stage.SCORE_2D: lambda: self._score(True, False),
                Stage.SCORE_3D: lambda: self._score(False, True),
                Stage.SCORE_CAE: lambda: self._score(True, True),
            }[stage]
            self._cache[stage] = yield from self._timed(stage, compute())
            self._carried.pop(stage, None)  # merged into the stage's output

    def _tables(self) -> list[SubsetTable] | None:
        """The distance tables the read-out uses: CAE's, or each modality's side by side."""
        if self.uses_cae:
            return self._cache.get(Stage.SCORE_CAE)
        two = self._cache.get(Stage.SCORE_2D) if "2d" in self.modality else None
        three = self._cache.get(Stage.SCORE_3D) if "3d" in self.modality else None
        if ("2d" in self.modality and two is None) or ("3d" in self.modality and three is None):
            return None
        return side_by_side(two, three)

    def _move_to(self, device: torch.device) -> None:
        """Move every cached tensor to ``device``; backbones are rebuilt there when needed."""
        for stage, value in list(self._cache.items()):
            self._cache[stage] = move_tensors(value, device)
        self._carried = move_tensors(self._carried, device)
        self._park_backbones()

    def _timed(
        self, stage: Stage, steps: Generator[Progress, None, object]
    ) -> Generator[Progress, None, object]:
        for key in STAGES[stage].substages:
            self.timings.pop(key, None)  # sub-stage times accumulate per run of their stage
        return timed(steps, self.timings, stage, self.cancel)

    def _clouds(self) -> dict[str, branch_3d.Cloud]:
        """Clouds of the scored samples, in sample order."""
        loaded = self._cache.get(Stage.LOAD_3D, {})
        return {s.name: loaded[s.name] for s in self._samples if s.name in loaded}

    def _clouds_of_samples(self) -> list[branch_3d.Cloud | None]:
        clouds = self._clouds() if "3d" in self.modality else {}
        return [clouds.get(s.name) for s in self._samples]

    def _image_sizes(self) -> list[tuple[int, int]]:
        tokens = self._cache.get(Stage.EXTRACT_2D)
        if tokens is not None and "2d" in self.modality:
            return list(tokens.image_sizes)
        clouds = self._cache.get(Stage.LOAD_3D, {})
        return [tuple(clouds[s.name].foreground.shape) for s in self._samples]

    def _ensure_backbone(self) -> Backbone2D:
        if self._backbone is None:
            name = self.config.backbone
            if name is None:
                name, self.backbone_reason = choose_default_backbone()
            self._backbone = create_backbone(
                name,
                self.config.weights,
                device=resolve_device(self.config.device),
                image_size=self.config.image_size,
                layers=self.config.layers,
            )
        # precision is a run setting: it applies to a kept backbone from the next extraction on
        apply_precision(self._backbone, self.config.precision)
        return self._backbone

    def _ensure_backbone_3d(self) -> Backbone3D:
        if self._backbone_3d is None:
            name = self.config.backbone_3d
            if name is None:
                name, self.backbone_3d_reason = choose_default_point_backbone()
            self._backbone_3d = create_point_backbone(
                name,
                self.config.weights_3d,
                device=resolve_device(self.config.device),
                bn_stats=self.config.bn_stats,
            )
        # precision is a run setting: it applies to a kept backbone from the next extraction on
        apply_precision(self._backbone_3d, self.config.precision)
        return self._backbone_3d

    def _score(self, use_2d: bool, use_3d: bool) -> Generator[Progress, None, list[SubsetTable]]:
        tokens = self._cache.get(Stage.EXTRACT_2D)
        row_3d, patch_of_group = cloud_rows(
            self._clouds_of_samples() if use_3d else [],
            tokens.grid if tokens is not None else None,
            self.config.eval_size,
        )
        tables = yield from mutual_scores(
            split_subsets(len(self._samples), self._subsets_used, self.config.seed),
            self._cache.get(Stage.AGGREGATE_2D) if use_2d else None,
            self._cache.get(Stage.EXTRACT_3D) if use_3d else None,
            row_3d,
            patch_of_group,
            use_cae=self.uses_cae,
            chunk_mib=self.config.chunk_mib,
            backend=self.distances,
            cancel=self.cancel,
        )
        return tables
