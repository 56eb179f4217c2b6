"""Feature extraction on Ray actors: each builds the backbone once and extracts chunks of parts.

The driver cuts the parts into contiguous chunks, hands them to the actors as they free up and
concatenates the results in part order, so the features are those of a local run (up to the
float rounding of a different batch split). Workers read the images from the paths in the
index: on a multi-node cluster the dataset has to be on storage every node sees. A lost actor
is restarted and its chunk retried (``max_restarts``, ``max_task_retries``).
"""

from __future__ import annotations

from collections.abc import Generator
from typing import Any

import numpy as np
import torch

from engine.backbones import (
    choose_default_backbone,
    choose_default_point_backbone,
    create_backbone,
    create_point_backbone,
)
from engine.backbones.base import BackboneInfo, PointBackboneInfo
from engine.cluster import require_ray
from engine.config import MuscConfig
from engine.data.samples import Sample, SkippedFile
from engine.device import move_tensors, resolve_device
from engine.precision import apply_precision
from engine.progress import CancelToken, Progress, run_to_completion
from engine.session import branch_2d, branch_3d


class Extractor:
    """Body of one Ray actor: the backbones of one config, built on first use and kept."""

    def __init__(self, config: MuscConfig) -> None:
        self.config = config
        self.device = resolve_device(config.device)
        self.backbone = self.backbone_3d = None

    def extract_2d(
        self, samples: list[Sample], foregrounds: dict[str, np.ndarray] | None
    ) -> tuple[branch_2d.Tokens2D, list[SkippedFile], BackboneInfo]:
        """Tokens of one chunk (on the CPU, for the trip back), its unreadable files, the info."""
        if self.backbone is None:
            config = self.config
            name = config.backbone or choose_default_backbone()[0]
            self.backbone = create_backbone(
                name, config.weights, device=self.device, image_size=config.image_size,
                layers=config.layers,
            )  # fmt: skip
            apply_precision(self.backbone, config.precision)
        skipped: list[SkippedFile] = []
        tokens = run_to_completion(
            branch_2d.extract_2d(
                samples, self.backbone, self.config.batch_size, skipped, foregrounds, workers=0
            )  # fmt: skip
        )
        return move_tensors(tokens, torch.device("cpu")), skipped, self.backbone.info

    def extract_3d(
        self, clouds: dict[str, branch_3d.Cloud], groups: dict
    ) -> tuple[list[torch.Tensor], PointBackboneInfo]:
        """SNAMD-3D features of one chunk of clouds (on the CPU), and the backbone's info."""
        if self.backbone_3d is None:
            config = self.config
            name = config.backbone_3d or choose_default_point_backbone()[0]
            self.backbone_3d = create_point_backbone(name, config.weights_3d, device=self.device,
                                                     bn_stats=config.bn_stats)  # fmt: skip
            apply_precision(self.backbone_3d, config.precision)
        clouds, groups = move_tensors((clouds, groups), self.device)
        features = run_to_completion(
            branch_3d.extract_3d(clouds, groups, self.backbone_3d, self.config)
        )
        return move_tensors(features, torch.device("cpu")), self.backbone_3d.info


def chunks(count: int, parts: int) -> list[range]:
    """``count`` items cut into at most ``parts`` contiguous, nearly equal ranges, in order."""
    parts = max(1, min(parts, count))
    bounds = [round(i * count / parts) for i in range(parts + 1)]
    return [range(a, b) for a, b in zip(bounds[:-1], bounds[1:], strict=True) if b > a]


def run_chunks(
    actors: list[Any],
    method: str,
    jobs: list[tuple[tuple, int]],
    stage: str,
    cancel: CancelToken | None,
    poll_s: float = 0.2,
) -> Generator[Progress, None, list[Any]]:
    """Run ``jobs`` (arguments, parts in it) on whichever actor is free; results in job order.

    Yields:
        Progress in parts after each finished chunk; ``cancel`` is checked while waiting, and
        the chunks not finished are cancelled on any early exit.
    """
    ray = require_ray()
    results: list[Any] = [None] * len(jobs)
    todo, pending, idle = list(range(len(jobs)))[::-1], {}, list(actors)
    done, total = 0, sum(size for _, size in jobs)
    try:
        while todo or pending:
            while todo and idle:
                index, actor = todo.pop(), idle.pop()
                pending[getattr(actor, method).remote(*jobs[index][0])] = (index, actor)
            ready: list = []
            while not ready:
                if cancel is not None:
                    cancel.raise_if_cancelled()
                ready, _ = ray.wait(list(pending), num_returns=1, timeout=poll_s)
            index, actor = pending.pop(ready[0])
            results[index] = ray.get(ready[0])
            idle.append(actor)
            done += jobs[index][1]
            yield Progress(stage, done, total)
    finally:
        for ref in pending:
            ray.cancel(ref)
    return results
