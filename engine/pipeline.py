"""Staged MuSc-V2 run that keeps every intermediate result for fast re-scoring.

Stages (Part A §13) and the parameters each depends on:

    load 3D       XYZ -> clean foreground clouds, FPS/KNN/curvature    remove_background, sizes
    extract 2D    images -> backbone tokens                            backbone, image size, layers
    aggregate 2D  SNAMD                                                r_list
    group 3D      IPG                                                  k_iter, C_thr
    extract 3D    point backbone + SNAMD-3D                            backbone_3d, r_list
    score         mutual scoring (+ CAE) -> sorted distance tables     subsets, modality, cae
    rescore       interval average, maps, RsCon                        X %, k, blur (cheap)

Each long stage is a generator of :class:`Progress` events; every event is a cancellation point.
:meth:`InspectionSession.update` drops only the stages a changed parameter invalidates.
"""

from __future__ import annotations

import time
from collections.abc import Generator
from dataclasses import fields

import torch

from engine import branch2d, branch3d
from engine.backbones import (
    choose_default_backbone,
    choose_default_point_backbone,
    create_backbone,
    create_point_backbone,
)
from engine.backbones.base import Backbone2D, Backbone3D, BackboneInfo, PointBackboneInfo
from engine.cae import patch_of_pixel
from engine.config import MuscConfig
from engine.data.samples import DatasetIndex, Sample, SkippedFile
from engine.errors import InvalidInputError, MuscError
from engine.preprocess import resolve_device
from engine.progress import CancelToken, Progress, run_to_completion  # noqa: F401 (re-export)
from engine.rescoring import rescore_tables
from engine.results import ScoreResult
from engine.scoring import SubsetTable, mutual_scores
from engine.stages import STAGE_FIELDS, SUBSTAGES, downstream
from engine.subsets import check_count, split_subsets


class InspectionSession:
    """One dataset, one configuration, and the cached results of each stage.

    Example:
        >>> session = InspectionSession(discover_dataset("line/"), MuscConfig())
        >>> result = run_to_completion(session.run())
        >>> faster = session.rescore(x_percent=20)  # no feature extraction
    """

    def __init__(
        self,
        dataset: DatasetIndex,
        config: MuscConfig | None = None,
        *,
        backbone: Backbone2D | None = None,
        backbone_3d: Backbone3D | None = None,
        cancel: CancelToken | None = None,
    ) -> None:
        self.dataset = dataset
        self.config = config or MuscConfig()
        self.cancel = cancel or CancelToken()
        self.skipped: list[SkippedFile] = list(dataset.skipped)
        self.warnings: list[str] = list(dataset.warnings)
        self.timings: dict[str, float] = {}
        self.backbone_reason = ""
        self.backbone_3d_reason = ""
        self._backbone = backbone
        self._backbone_3d = backbone_3d
        # infos of backbones not built in this process (a session restored by engine.cache)
        self.backbone_info: BackboneInfo | None = None
        self.backbone_3d_info: PointBackboneInfo | None = None
        self._cache: dict[str, object] = {}
        self._samples: list[Sample] = []
        self.result: ScoreResult | None = None

    @property
    def backbone(self) -> Backbone2D | None:
        """The 2D backbone in use (built lazily)."""
        return self._backbone

    @property
    def backbone_3d(self) -> Backbone3D | None:
        """The 3D backbone in use (built lazily)."""
        return self._backbone_3d

    @property
    def samples(self) -> list[Sample]:
        """The samples being scored (available after the first stages ran)."""
        return list(self._samples)

    @property
    def modality(self) -> str:
        """The modality actually run: "auto" resolved against the data."""
        if self.config.modality != "auto":
            return self.config.modality
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

    # -- running -----------------------------------------------------------------------------

    def choose_backbones(self) -> list[str]:
        """Resolve backbones left on "auto" now, before the long run.

        Returns:
            One line per automatic choice saying which backbone is used and why.
        """
        lines = []
        if "2d" in self.modality and self.config.backbone is None and self._backbone is None:
            name, self.backbone_reason = choose_default_backbone()
            self.config = self.config.replace(backbone=name)
            lines.append(self.backbone_reason)
        if "3d" in self.modality and self.config.backbone_3d is None and self._backbone_3d is None:
            name, self.backbone_3d_reason = choose_default_point_backbone()
            self.config = self.config.replace(backbone_3d=name)
            lines.append(self.backbone_3d_reason)
        return lines

    def run(self) -> Generator[Progress, None, ScoreResult]:
        """Compute every stage that is not cached yet, then score.

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
        use_2d, use_3d = "2d" in modality, "3d" in modality
        device = resolve_device(self.config.device)
        if use_3d and "load 3D" not in self._cache:
            candidates = [s for s in self.dataset.samples if s.xyz_path is not None]
            self._cache["load 3D"] = yield from self._timed(
                "load 3D",
                branch3d.load_clouds(
                    candidates, self.config, device, self.skipped, self.warnings, self.timings
                ),
            )
        tokens = self._cache.get("extract 2D")
        if use_2d and (tokens is None or tokens.stripped and "aggregate 2D" not in self._cache):
            self._cache["extract 2D"] = yield from self._timed("extract 2D", self._extract_2d())
        if use_2d and "aggregate 2D" not in self._cache:
            tokens = self._cache["extract 2D"]
            self._cache["aggregate 2D"] = yield from self._timed(
                "aggregate 2D", branch2d.aggregate_2d(tokens, self.config.r_list)
            )
        self._samples = self._choose_samples(use_2d, use_3d)
        if use_3d and "group 3D" not in self._cache:
            self._cache["group 3D"] = yield from self._timed(
                "group 3D", branch3d.group_clouds(self._clouds(), self.config)
            )
        if use_3d and "extract 3D" not in self._cache:
            self._cache["extract 3D"] = yield from self._timed(
                "extract 3D",
                branch3d.extract_3d(
                    self._clouds(),
                    self._cache["group 3D"],
                    self._ensure_backbone_3d(),
                    self.config,
                    self.timings,
                ),
            )
        if "score" not in self._cache and (self.uses_cae or not (use_2d and use_3d)):
            self._cache["score"] = yield from self._timed(
                "mutual scoring", self._score(use_2d, use_3d)
            )
        elif "score" not in self._cache:
            for flag in ("2D", "3D"):
                if f"score {flag}" not in self._cache:
                    self._cache[f"score {flag}"] = yield from self._timed(
                        f"mutual scoring {flag}", self._score(flag == "2D", flag == "3D")
                    )
            self._cache["score"] = [
                SubsetTable(two.indices, three.indices_3d, two.cumsum_2d, three.cumsum_3d)
                for two, three in zip(self._cache["score 2D"], self._cache["score 3D"], strict=True)
            ]
        # a stage that runs again (after update) reports the same files and notes again
        self.skipped = list(dict.fromkeys(self.skipped))
        self.warnings = list(dict.fromkeys(self.warnings))
        return self.rescore()

    def update(self, config: MuscConfig) -> list[str]:
        """Switch to ``config``, dropping only the cached stages it invalidates.

        Returns:
            The names of the stages that the next :meth:`run` recomputes.
        """
        changed = {
            f.name
            for f in fields(MuscConfig)
            if getattr(config, f.name) != getattr(self.config, f.name)
        }
        direct = {stage for stage, names in STAGE_FIELDS.items() if names & changed}
        if "black_rgb_background" in changed or "remove_background" in changed:
            direct.add("extract 2D")
        stale = downstream(direct)
        self.config = config
        rebuild_2d = STAGE_FIELDS["extract 2D"] - {"black_rgb_background"}
        if "extract 2D" in stale and changed & rebuild_2d:
            self._backbone, self.backbone_info = None, None
        if "extract 3D" in stale and changed & {"backbone_3d", "weights_3d", "bn_stats", "device"}:
            self._backbone_3d, self.backbone_3d_info = None, None
        for stage in stale:
            self._cache.pop(stage, None)
        relevant = [s for s in STAGE_FIELDS if s in stale]
        if self.modality != "2d+3d" or self.uses_cae:  # the per-modality split is not used
            relevant = [s for s in relevant if s not in ("score 2D", "score 3D")]
        if "3d" not in self.modality:
            relevant = [s for s in relevant if not s.endswith("3D")]
        if "2d" not in self.modality:
            relevant = [s for s in relevant if not s.endswith("2D")]
        return relevant

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
        if "score" not in self._cache:
            raise MuscError("rescore() needs a completed run(); run the session first.")
        started = time.perf_counter()
        changes = {"x_percent": x_percent, "rscon_window": rscon_window, "blur_sigma": blur_sigma}
        self.config = self.config.replace(**{k: v for k, v in changes.items() if v is not None})
        tokens = self._cache.get("extract 2D")
        self.result = rescore_tables(
            self._cache["score"],
            samples=self._samples,
            image_sizes=self._image_sizes(),
            modality=self.modality,
            config=self.config,
            grid_2d=tokens.grid if tokens is not None else None,
            features_2d=self._cache.get("aggregate 2D"),
            features_3d=self._cache.get("extract 3D"),
            clouds=self._clouds_of_samples(),
            backbone=self._backbone.info if self._backbone else self.backbone_info,
            backbone_3d=self._backbone_3d.info if self._backbone_3d else self.backbone_3d_info,
            timings=self.timings,
        )
        self.timings["rescore"] = time.perf_counter() - started
        self.result.timings["rescore"] = self.timings["rescore"]
        return self.result

    # -- stages ------------------------------------------------------------------------------

    def _timed(
        self, stage: str, steps: Generator[Progress, None, object]
    ) -> Generator[Progress, None, object]:
        for key in SUBSTAGES.get(stage, ()):
            self.timings.pop(key, None)  # sub-stage times accumulate per run of their stage
        started = time.perf_counter()
        try:
            while True:
                try:
                    event = next(steps)
                except StopIteration as stop:
                    return stop.value
                self.timings[stage] = time.perf_counter() - started
                yield event
                self.cancel.raise_if_cancelled()
        finally:
            self.timings[stage] = time.perf_counter() - started

    def _clouds(self) -> dict[str, branch3d.Cloud]:
        """Clouds of the scored samples, in sample order."""
        loaded = self._cache.get("load 3D", {})
        return {s.name: loaded[s.name] for s in self._samples if s.name in loaded}

    def _clouds_of_samples(self) -> list[branch3d.Cloud | None]:
        clouds = self._clouds() if "3d" in self.modality else {}
        return [clouds.get(s.name) for s in self._samples]

    def _image_sizes(self) -> list[tuple[int, int]]:
        tokens = self._cache.get("extract 2D")
        if tokens is not None and "2d" in self.modality:
            return list(tokens.image_sizes)
        clouds = self._cache.get("load 3D", {})
        return [tuple(clouds[s.name].foreground.shape) for s in self._samples]

    def _choose_samples(self, use_2d: bool, use_3d: bool) -> list[Sample]:
        if use_2d:
            samples = list(self._cache["extract 2D"].samples)
            total = sum(s.rgb_path is not None for s in self.dataset.samples)
        else:
            loaded = self._cache["load 3D"]
            samples = [s for s in self.dataset.samples if s.name in loaded]
            total = sum(s.xyz_path is not None for s in self.dataset.samples)
        check_count(self.dataset.root, len(samples), total, self.warnings)
        if use_2d and use_3d:
            missing = [s.name for s in samples if s.name not in self._cache["load 3D"]]
            if missing:
                listed = ", ".join(missing[:5]) + (", ..." if len(missing) > 5 else "")
                self.warnings.append(
                    f"{len(missing)} of {len(samples)} samples have no usable XYZ map and are "
                    f"scored in 2D only ({listed}); cross-modal enhancement is off for their "
                    "subsets."
                )
        return samples

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
        return self._backbone_3d

    def _extract_2d(self) -> Generator[Progress, None, branch2d.Tokens2D]:
        candidates = [s for s in self.dataset.samples if s.rgb_path is not None]
        yield Progress("extract 2D", 0, len(candidates), "loading the backbone")
        backbone = self._ensure_backbone()
        foregrounds = None
        if self.config.black_rgb_background and "load 3D" in self._cache:
            foregrounds = {name: c.foreground for name, c in self._cache["load 3D"].items()}
        tokens = yield from branch2d.extract_2d(
            candidates, backbone, self.config.batch_size, self.skipped, foregrounds
        )
        return tokens

    def _score(self, use_2d: bool, use_3d: bool) -> Generator[Progress, None, list[SubsetTable]]:
        subsets = split_subsets(len(self._samples), self.config.subsets, self.config.seed)
        clouds = self._clouds_of_samples() if use_3d else []
        row_3d, patch_rows = {}, []
        tokens = self._cache.get("extract 2D")
        for index, cloud in enumerate(clouds):
            if cloud is None:
                continue
            row_3d[index] = len(row_3d)
            if tokens is not None:
                size = self.config.eval_size
                centre_pixels = cloud.pixel_index[cloud.basis.center_idx]
                patch_rows.append(patch_of_pixel(centre_pixels, (size, size), tokens.grid))
        tables = yield from mutual_scores(
            subsets,
            self._cache.get("aggregate 2D") if use_2d else None,
            self._cache.get("extract 3D") if use_3d else None,
            row_3d,
            torch.stack(patch_rows) if patch_rows else None,
            use_cae=self.uses_cae,
            chunk_mib=self.config.chunk_mib,
        )
        return tables
