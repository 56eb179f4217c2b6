"""Staged MuSc-V2 run that keeps every intermediate result for fast re-scoring.

Stages (Part A §13): extract (backbone tokens) -> aggregate (SNAMD) -> mutual scoring (sorted
distance sums per patch) -> re-score (interval average, maps, image scores, RsCon). Each long
stage is a generator of :class:`Progress` events; every event is a cancellation point. Changing a
parameter invalidates only the stages that depend on it (see :meth:`InspectionSession.update`).
"""

from __future__ import annotations

import time
from collections.abc import Generator
from dataclasses import fields

import torch

from engine import msm
from engine.backbones import choose_default_backbone, create_backbone
from engine.backbones.base import Backbone2D
from engine.config import MuscConfig
from engine.data.readers import read_rgb
from engine.data.samples import DatasetIndex, Sample, SkippedFile
from engine.errors import InvalidInputError, MuscError
from engine.maps import image_scores_from_maps
from engine.preprocess import image_to_tensor, resolve_device
from engine.progress import CancelToken, Progress, run_to_completion  # noqa: F401 (re-export)
from engine.results import ScoreResult
from engine.rscon import rscon, salient_features
from engine.snamd import snamd_2d
from engine.subsets import split_subsets

# Which cached stage a changed field invalidates; fields not listed invalidate nothing.
_INVALIDATES = {
    "modality": "extract", "backbone": "extract", "weights": "extract", "image_size": "extract",
    "layers": "extract", "device": "extract", "r_list": "aggregate", "subsets": "score",
    "seed": "score",
}  # fmt: skip
_STAGES = ("extract", "aggregate", "score")


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
        cancel: CancelToken | None = None,
    ) -> None:
        self.dataset = dataset
        self.config = config or MuscConfig()
        self.cancel = cancel or CancelToken()
        self.skipped: list[SkippedFile] = list(dataset.skipped)
        self.warnings: list[str] = list(dataset.warnings)
        self.timings: dict[str, float] = {}
        self.backbone_reason = ""
        self._backbone = backbone
        self._samples: list[Sample] = []
        self._image_sizes: list[tuple[int, int]] = []
        self._grid: tuple[int, int] = (0, 0)
        self._raw_tokens: list[torch.Tensor] | None = None  # per layer (N, h, w, C)
        self._features: list[torch.Tensor] | None = None  # per layer (N, L, C), unit norm
        self._cumsums: list[tuple[list[int], torch.Tensor]] | None = None  # per subset
        self.result: ScoreResult | None = None

    @property
    def backbone(self) -> Backbone2D | None:
        """The backbone in use (built lazily by the extract stage)."""
        return self._backbone

    @property
    def samples(self) -> list[Sample]:
        """The samples that were read successfully (available after extraction)."""
        return list(self._samples)

    def run(self) -> Generator[Progress, None, ScoreResult]:
        """Compute every stage that is not cached yet, then score.

        Yields:
            Progress events; each is a point where cancellation is honoured.

        Returns:
            The scored result.
        """
        if self._raw_tokens is None:
            yield from self._timed("extract", self._extract())
        if self._features is None:
            yield from self._timed("aggregate", self._aggregate())
        if self._cumsums is None:
            yield from self._timed("mutual scoring", self._score())
        return self.rescore()

    def update(self, config: MuscConfig) -> list[str]:
        """Switch to ``config``, dropping only the cached stages it invalidates.

        Returns:
            The names of the stages that must be recomputed by the next :meth:`run`.
        """
        changed = [
            f.name
            for f in fields(MuscConfig)
            if getattr(config, f.name) != getattr(self.config, f.name) and f.name in _INVALIDATES
        ]
        first = min((_STAGES.index(_INVALIDATES[name]) for name in changed), default=None)
        self.config = config
        if first is None:
            return []
        if first == 0:
            self._raw_tokens, self._backbone = None, None
        if first <= 1:
            self._features = None
        self._cumsums = None
        return list(_STAGES[first:])

    def rescore(
        self, *, x_percent: float | None = None, rscon_window: int | None = None
    ) -> ScoreResult:
        """Recompute the cheap stages (interval average, maps, RsCon) from cached distances.

        Args:
            x_percent: New X% of the interval average, or None to keep it.
            rscon_window: New RsCon window k, or None to keep it.

        Returns:
            The new result (also stored in :attr:`result`).
        """
        if self._cumsums is None or self._features is None or self._backbone is None:
            raise MuscError("rescore() needs a completed run(); run the session first.")
        started = time.perf_counter()
        changes = {"x_percent": x_percent, "rscon_window": rscon_window}
        self.config = self.config.replace(**{k: v for k, v in changes.items() if v is not None})
        num_layers = len(self._features)
        patch_scores = torch.empty(self._features[0].shape[:2], device=self._features[0].device)
        for indices, cumsum in self._cumsums:
            patch_scores[indices] = msm.interval_average(cumsum, self.config.x_percent) / num_layers
        patch_maps = patch_scores.view(-1, *self._grid)
        max_scores = image_scores_from_maps(patch_maps, self.config.eval_size)
        # The reference takes the salient feature from the penultimate scored layer (B §7).
        salient = salient_features(self._features[max(0, num_layers - 2)], patch_scores)
        final = rscon(max_scores, salient, self.config.rscon_window)
        self.timings["rescore"] = time.perf_counter() - started
        self.result = ScoreResult(
            samples=list(self._samples),
            image_sizes=list(self._image_sizes),
            image_scores=final.cpu().numpy(),
            max_scores=max_scores.cpu().numpy(),
            patch_maps=patch_maps.cpu().numpy(),
            config=self.config,
            backbone=self._backbone.info,
            timings=dict(self.timings),
        )
        return self.result

    # -- stages ------------------------------------------------------------------------------

    def _timed(
        self, stage: str, steps: Generator[Progress, None, None]
    ) -> Generator[Progress, None, None]:
        started = time.perf_counter()
        for event in steps:
            self.timings[stage] = time.perf_counter() - started
            yield event
            self.cancel.raise_if_cancelled()
        self.timings[stage] = time.perf_counter() - started

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

    def _extract(self) -> Generator[Progress, None, None]:
        candidates = [s for s in self.dataset.samples if s.rgb_path is not None]
        total = len(candidates)
        yield Progress("extract", 0, total, "loading the backbone")
        backbone = self._ensure_backbone()
        samples: list[Sample] = []
        sizes: list[tuple[int, int]] = []
        per_layer: list[list[torch.Tensor]] = []
        batch: list[torch.Tensor] = []
        for done, sample in enumerate(candidates, start=1):
            try:
                rgb = read_rgb(sample.rgb_path)
            except InvalidInputError as error:
                self.skipped.append(SkippedFile(sample.rgb_path, str(error)))
            else:
                samples.append(sample)
                sizes.append((int(rgb.shape[0]), int(rgb.shape[1])))
                batch.append(image_to_tensor(rgb, backbone.image_size, backbone.mean, backbone.std))
            if batch and (len(batch) == self.config.batch_size or done == total):
                with torch.inference_mode():
                    layers = backbone.extract(torch.stack(batch).to(backbone.device))
                per_layer = per_layer or [[] for _ in layers]
                for store, tokens in zip(per_layer, layers, strict=True):
                    store.append(tokens)
                batch = []
            yield Progress("extract", done, total, sample.name)
        self._check_count(len(samples), total)
        self._samples, self._image_sizes = samples, sizes
        self._raw_tokens = [torch.cat(chunks) for chunks in per_layer]
        self._grid = tuple(self._raw_tokens[0].shape[1:3])

    def _check_count(self, usable: int, total: int) -> None:
        if usable < 2:
            raise InvalidInputError(
                f"{self.dataset.root}: only {usable} of {total} images could be read; mutual "
                "scoring compares samples with each other and needs at least 2. Add images or "
                "fix the files listed as skipped."
            )
        if usable < 5:
            self.warnings.append(
                f"only {usable} samples: the interval average degenerates below 5 samples, "
                "so scores are unreliable; add more parts from the same line."
            )

    def _aggregate(self) -> Generator[Progress, None, None]:
        assert self._raw_tokens is not None
        total = len(self._raw_tokens)
        features = []
        for done, tokens in enumerate(self._raw_tokens, start=1):
            chunks = [
                snamd_2d(tokens[i : i + 16], self.config.r_list)
                for i in range(0, tokens.shape[0], 16)  # bounds the pooling buffers
            ]
            features.append(torch.cat(chunks))
            yield Progress("aggregate", done, total)
        self._features = features

    def _score(self) -> Generator[Progress, None, None]:
        assert self._features is not None
        subsets = split_subsets(len(self._samples), self.config.subsets, self.config.seed)
        cumsums = []
        steps = len(subsets) * len(self._features)
        for s_index, indices in enumerate(subsets):
            total: torch.Tensor | None = None
            for l_index, layer in enumerate(self._features):
                step = s_index * len(self._features) + l_index + 1
                label = f"mutual scoring ({step}/{steps})"
                distances = yield from msm.patch_to_sample_distances(
                    layer[indices], self.config.chunk_mib, stage=label
                )
                cumsum = msm.sorted_cumsum(msm.drop_self(distances))
                total = cumsum if total is None else total + cumsum
            cumsums.append((indices, total))
        self._cumsums = cumsums
