"""The per-part stages of a session: 3D clouds, 2D tokens, SNAMD-2D, 3D groups, 3D features.

Each holds one piece per part, so after :meth:`InspectionSession.rescan` a stage computes only
the parts the rescan did not keep and puts the kept pieces (:mod:`engine.session.rescan`) back
in the order of the new index. Without a rescan each computes every part, as the method does.
"""

from __future__ import annotations

from collections.abc import Callable, Generator

import torch

from engine.backbones.base import Backbone2D, Backbone3D
from engine.config import MuscConfig
from engine.data.samples import DatasetIndex, Sample, SkippedFile
from engine.device import resolve_device
from engine.progress import CancelToken, Progress
from engine.session import branch_2d, branch_3d
from engine.session import rescan as parts
from engine.session.compute_backend import RemoteExtraction
from engine.session.stages import Stage


class PartStages:
    """The per-part stage computations of :class:`engine.session.session.InspectionSession`."""

    dataset: DatasetIndex
    config: MuscConfig
    skipped: list[SkippedFile]
    warnings: list[str]
    timings: dict[str, float]
    _cache: dict[Stage, object]
    _carried: dict[Stage, dict]  # per stage, the pieces of the kept parts by name
    _kept: set[str]  # the parts the last rescan kept
    _clouds: Callable[[], dict[str, branch_3d.Cloud]]
    _ensure_backbone: Callable[[], Backbone2D]
    _ensure_backbone_3d: Callable[[], Backbone3D]
    _backbone: Backbone2D | None
    _backbone_3d: Backbone3D | None
    distances: object  # the session's compute backend (None: this process)
    cancel: CancelToken

    def _remote(self, built: object) -> RemoteExtraction | None:
        """The backend's extraction (Ray actors), unless it has none or a backbone was given."""
        if built is None and isinstance(self.distances, RemoteExtraction):
            return self.distances
        return None

    def _keep_parts(
        self, dataset: DatasetIndex, kept: set[str], stages: dict[Stage, object]
    ) -> None:
        """Carry the pieces of the ``kept`` parts out of the complete cached ``stages``, and the
        skipped files and notes about them, for the next run on ``dataset``."""
        tokens = stages.get(Stage.EXTRACT_2D)
        self._carried = parts.carry(
            stages,
            self._carried,
            kept,
            [s.name for s in tokens.samples] if tokens is not None else [],
            list(self._clouds()) if Stage.EXTRACT_3D in stages else [],
        )
        self._kept = kept
        self.skipped, self.warnings = parts.carried_notes(
            self.dataset, dataset, self.skipped, self.warnings, kept
        )

    def _fresh(self, stage: Stage, samples: list[Sample]) -> list[Sample]:
        """The ``samples`` a stage computes: after a rescan, only those not kept."""
        if stage not in self._carried:
            return samples
        return [s for s in samples if s.name not in self._kept]

    def _load_3d(self) -> Generator[Progress, None, dict[str, branch_3d.Cloud]]:
        candidates = [s for s in self.dataset.samples if s.xyz_path is not None]
        device = resolve_device(self.config.device)
        clouds = yield from branch_3d.load_clouds(
            self._fresh(Stage.LOAD_3D, candidates), self.config, device, self.skipped,
            self.warnings, self.timings,
        )  # fmt: skip
        kept = self._carried.get(Stage.LOAD_3D, {})
        return parts.in_order((s.name for s in candidates), kept, clouds)

    def _extract_2d(self) -> Generator[Progress, None, branch_2d.Tokens2D]:
        candidates = [s for s in self.dataset.samples if s.rgb_path is not None]
        kept = self._carried.get(Stage.EXTRACT_2D)
        stripped = kept is not None and any(int(r[0].shape[-1]) == 0 for _, r in kept.values())
        if stripped and Stage.AGGREGATE_2D not in self._carried:
            # r_list changed since the rescan: stripped rows cannot feed SNAMD, extract all
            del self._carried[Stage.EXTRACT_2D]
            kept, stripped = None, False
        fresh = self._fresh(Stage.EXTRACT_2D, candidates)
        tokens = branch_2d.Tokens2D([], [], [])
        if fresh:  # a rescan that only removed parts needs no backbone
            yield Progress(Stage.EXTRACT_2D, 0, len(fresh), "loading the backbone")
            foregrounds = None
            if self.config.black_rgb_background and Stage.LOAD_3D in self._cache:
                clouds = self._cache[Stage.LOAD_3D]
                foregrounds = {name: c.foreground for name, c in clouds.items()}
            remote = self._remote(self._backbone)
            if remote is not None:
                tokens, self.backbone_info = yield from remote.extract_2d(
                    fresh, self.config, self.skipped, foregrounds, self.cancel
                )
            else:
                tokens = yield from branch_2d.extract_2d(
                    fresh, self._ensure_backbone(), self.config.batch_size, self.skipped,
                    foregrounds,
                )  # fmt: skip
        if kept is None:
            return tokens
        if stripped and tokens.samples:
            # kept rows are a restored session's stripped copy: take SNAMD of the fresh parts
            # now, while their channels are at hand (the merged tokens keep none)
            new = yield from branch_2d.aggregate_2d(tokens, self.config.r_list)
            features = parts.rows_by_name(new, [s.name for s in tokens.samples])
            self._carried[Stage.AGGREGATE_2D].update(features)
        return parts.merge_tokens(candidates, kept, tokens)

    def _aggregate_2d(self) -> Generator[Progress, None, list[torch.Tensor]]:
        tokens = self._cache[Stage.EXTRACT_2D]
        kept = self._carried.get(Stage.AGGREGATE_2D)
        if kept is None:
            features = yield from branch_2d.aggregate_2d(tokens, self.config.r_list)
            return features
        names = [s.name for s in tokens.samples]
        fresh = [i for i, name in enumerate(names) if name not in kept]
        if fresh:
            subset = branch_2d.Tokens2D(
                [tokens.samples[i] for i in fresh],
                [tokens.image_sizes[i] for i in fresh],
                [layer[fresh] for layer in tokens.layers],
            )
            new = yield from branch_2d.aggregate_2d(subset, self.config.r_list)
            kept = {**kept, **parts.rows_by_name(new, [names[i] for i in fresh])}
        return parts.stack_rows(names, kept)

    def _group_3d(self) -> Generator[Progress, None, dict]:
        clouds = self._clouds()
        kept = self._carried.get(Stage.GROUP_3D, {})
        fresh = {name: cloud for name, cloud in clouds.items() if name not in kept}
        groups = yield from branch_3d.group_clouds(fresh, self.config)
        return parts.in_order(clouds, kept, groups)

    def _extract_3d(self) -> Generator[Progress, None, list[torch.Tensor]]:
        clouds = self._clouds()
        kept = self._carried.get(Stage.EXTRACT_3D)
        fresh = clouds if kept is None else {n: c for n, c in clouds.items() if n not in kept}
        features: list[torch.Tensor] = []
        remote = self._remote(self._backbone_3d)
        if fresh and remote is not None:
            features, self.backbone_3d_info = yield from remote.extract_3d(
                fresh, self._cache[Stage.GROUP_3D], self.config, self.cancel
            )
        elif fresh:
            features = yield from branch_3d.extract_3d(
                fresh, self._cache[Stage.GROUP_3D], self._ensure_backbone_3d(), self.config,
                self.timings,
            )  # fmt: skip
        if kept is None:
            return features
        rows = {**kept, **parts.rows_by_name(features, list(fresh))}
        return parts.stack_rows(list(clouds), rows)
