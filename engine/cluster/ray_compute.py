"""The Ray backend of a session: extraction on actors, then mutual scoring as tasks."""

from __future__ import annotations

from collections.abc import Generator
from typing import Any

import numpy as np
import torch

from engine.backbones.base import BackboneInfo, PointBackboneInfo
from engine.cluster import require_ray
from engine.cluster.extract_actors import Extractor, chunks, run_chunks
from engine.cluster.ray_backend import RayDistances
from engine.config import MuscConfig
from engine.data.samples import Sample, SkippedFile
from engine.device import move_tensors, resolve_device
from engine.progress import CancelToken, Progress
from engine.session import branch_2d, branch_3d


class RayCompute(RayDistances):
    """Mutual scoring as Ray tasks (:class:`RayDistances`) and extraction on Ray actors.

    Each extraction stage starts its actors, and ends them when it is done, so their CPUs
    (or GPUs) are free again for the scoring tasks that follow.

    An actor whose worker process or node is lost is restarted (its backbone built again) and
    the chunk it was extracting run again, up to ``max_retries`` times per actor; a chunk's
    features depend on its parts only, so a retry gives the same values.

    Args:
        actors: Actors per extraction stage; None: one per CPU of the cluster (one per GPU
            with ``actor_gpus``).
        actor_gpus: GPUs per actor (0: CPU actors).
        extractor: The actor class (tests inject failures here).
        **scoring: Options of :class:`RayDistances` (``max_retries`` applies to the actors too).
    """

    def __init__(
        self,
        *,
        actors: int | None = None,
        actor_gpus: float = 0,
        extractor: type[Extractor] = Extractor,
        **scoring: Any,
    ) -> None:
        super().__init__(**scoring)
        self.actors = actors
        self.actor_gpus = actor_gpus
        self.extractor = extractor

    def _start(self, config: MuscConfig, parts: int) -> list[Any]:
        ray = require_ray()
        resources = ray.cluster_resources()
        count = self.actors or int(resources.get("GPU" if self.actor_gpus else "CPU", 1))
        retries = self.max_retries
        remote = ray.remote(self.extractor).options(
            num_cpus=1, num_gpus=self.actor_gpus, max_restarts=retries, max_task_retries=retries
        )
        return [remote.remote(config) for _ in range(max(1, min(count, parts)))]

    def _stop(self, actors: list[Any]) -> None:
        ray = require_ray()
        for actor in actors:
            ray.kill(actor)

    def extract_2d(
        self,
        samples: list[Sample],
        config: MuscConfig,
        skipped: list[SkippedFile],
        foregrounds: dict[str, np.ndarray] | None,
        cancel: CancelToken | None = None,
    ) -> Generator[Progress, None, tuple[branch_2d.Tokens2D, BackboneInfo]]:
        """See :class:`engine.session.compute_backend.RemoteExtraction`."""
        actors = self._start(config, len(samples))
        jobs = []
        # two chunks per actor: a slow chunk is not the last thing the run waits for
        for part in chunks(len(samples), 2 * len(actors)):
            chunk = [samples[i] for i in part]
            masks = {s.name: foregrounds[s.name] for s in chunk if s.name in foregrounds} if (
                foregrounds) else None  # fmt: skip
            jobs.append(((chunk, masks), len(chunk)))
        try:
            results = yield from run_chunks(actors, "extract_2d", jobs, "extract 2D", cancel)
        finally:
            self._stop(actors)
        device = resolve_device(config.device)
        tokens = branch_2d.Tokens2D([], [], [])
        layers: list[list[torch.Tensor]] = []
        for part, chunk_skipped, _ in results:
            skipped.extend(chunk_skipped)
            tokens.samples.extend(part.samples)
            tokens.image_sizes.extend(part.image_sizes)
            layers = layers or [[] for _ in part.layers]
            for store, layer in zip(layers, part.layers, strict=False):
                store.append(layer)
        tokens.layers = [torch.cat(chunk).to(device) for chunk in layers]
        return tokens, results[0][2]

    def extract_3d(
        self,
        clouds: dict[str, branch_3d.Cloud],
        groups: dict,
        config: MuscConfig,
        cancel: CancelToken | None = None,
    ) -> Generator[Progress, None, tuple[list[torch.Tensor], PointBackboneInfo]]:
        """See :class:`engine.session.compute_backend.RemoteExtraction`."""
        names = list(clouds)
        actors = self._start(config, len(names))
        cpu = torch.device("cpu")
        jobs = []
        for part in chunks(len(names), 2 * len(actors)):
            chunk = [names[i] for i in part]
            args = move_tensors(({n: clouds[n] for n in chunk}, {n: groups[n] for n in chunk}), cpu)
            jobs.append((args, len(chunk)))
        try:
            results = yield from run_chunks(actors, "extract_3d", jobs, "extract 3D", cancel)
        finally:
            self._stop(actors)
        device = resolve_device(config.device)
        per_layer = zip(*(features for features, _ in results), strict=True)
        return [torch.cat(layer).to(device) for layer in per_layer], results[0][1]
