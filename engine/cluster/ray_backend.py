"""Mutual scoring's tile pairs as Ray tasks, merged into the single-process distance table.

The local engine walks the unordered tile pairs (I, J) of :func:`engine.method.mutual_scoring.
tile_pairs` and for each computes both directions from the same similarities. Here each pair
is one Ray task running the very same :func:`~engine.method.mutual_scoring.block_nearest`; every
tile is put into the object store once per layer, so a worker fetches a tile once per node, not
per task.
The driver writes each finished block where the local loop writes it. Every table entry has
exactly one writer, so the merge is order-free and the table is identical to a local run's.

A task whose worker dies is re-run by Ray (``max_retries``); a block is a pure function of its
two tiles, so a retry gives the same values.
"""

from __future__ import annotations

from collections.abc import Callable, Generator
from functools import lru_cache
from typing import Any

import numpy as np
import torch

from engine.cluster import require_ray
from engine.method import mutual_scoring
from engine.progress import CancelToken, Progress

BlockFn = Callable[[torch.Tensor, torch.Tensor, bool, bool], tuple[torch.Tensor, Any]]


def compute_block(
    block_a: torch.Tensor, block_b: torch.Tensor, same: bool, unit_norm: bool
) -> tuple[torch.Tensor, torch.Tensor | None]:
    """The default work of one task: :func:`mutual_scoring.block_nearest` on two tiles."""
    return mutual_scoring.block_nearest(block_a, block_b, same=same, unit_norm=unit_norm)


def _run_block(
    compute: BlockFn, tile_a: np.ndarray, tile_b: np.ndarray, same: bool, unit_norm: bool
) -> tuple[np.ndarray, np.ndarray | None]:
    """Body of the Ray task: tiles arrive as read-only numpy views of the object store."""
    ray = require_ray()
    device = "cuda" if ray.get_gpu_ids() else "cpu"
    # copies: torch refuses to share read-only memory, and a tile is small (budget-sized)
    block_a = torch.from_numpy(np.array(tile_a)).to(device)
    block_b = block_a if same else torch.from_numpy(np.array(tile_b)).to(device)
    rows, cols = compute(block_a, block_b, same, unit_norm)
    return rows.cpu().numpy(), None if cols is None else cols.contiguous().cpu().numpy()


@lru_cache(maxsize=1)
def _remote_block() -> Any:
    return require_ray().remote(_run_block)


class RayDistances:
    """A :class:`engine.session.compute_backend.DistanceBackend` running blocks on Ray.

    Args:
        max_retries: Re-runs of a block whose worker process or node was lost.
        num_gpus: GPUs per block task (0: CPU tasks; a GPU task computes on its GPU).
        max_in_flight: Blocks submitted at once (bounds the driver's pending results);
            None: twice the cluster's CPUs.
        poll_s: How often the cancellation flag is checked while blocks run.
        compute: The block function the tasks run (tests inject failures here).
    """

    def __init__(
        self,
        *,
        max_retries: int = 3,
        num_gpus: float = 0,
        max_in_flight: int | None = None,
        poll_s: float = 0.2,
        compute: BlockFn = compute_block,
    ) -> None:
        self.max_retries = max_retries
        self.num_gpus = num_gpus
        self.max_in_flight = max_in_flight
        self.poll_s = poll_s
        self.compute = compute

    def _window(self, ray: Any) -> int:
        if self.max_in_flight is not None:
            return max(1, self.max_in_flight)
        return max(2, 2 * int(ray.cluster_resources().get("CPU", 1)))

    def distances(
        self,
        features: torch.Tensor,
        chunk_mib: int,
        stage: str,
        *,
        unit_norm: bool,
        cancel: CancelToken | None = None,
    ) -> Generator[Progress, None, torch.Tensor]:
        """Same contract and result as :func:`mutual_scoring.patch_to_sample_distances`.

        Yields:
            Progress per finished block. ``cancel`` is checked while waiting; on cancel (or
            any exit before the end) the blocks not finished are cancelled on the cluster.
        """
        ray = require_ray()
        n, num_patches, _ = features.shape
        tile = mutual_scoring.tile_size(num_patches, chunk_mib, n)
        pairs = mutual_scoring.tile_pairs(n, tile)
        host = features.detach().to("cpu", torch.float32).contiguous()
        tiles = {a: ray.put(host[a : a + tile].numpy()) for a in range(0, n, tile)}
        task = _remote_block().options(max_retries=self.max_retries, num_gpus=self.num_gpus)
        nearest = torch.zeros((n, num_patches, n), dtype=features.dtype, device=features.device)
        todo, pending, window = list(reversed(pairs)), {}, self._window(ray)
        try:
            for done in range(1, len(pairs) + 1):
                if cancel is not None:  # before submitting more work
                    cancel.raise_if_cancelled()
                while todo and len(pending) < window:
                    a, b = todo.pop()
                    ref = task.remote(self.compute, tiles[a], tiles[b], a == b, unit_norm)
                    pending[ref] = (a, b)
                ready = []
                while not ready:
                    if cancel is not None:
                        cancel.raise_if_cancelled()
                    ready, _ = ray.wait(list(pending), num_returns=1, timeout=self.poll_s)
                a, b = pending.pop(ready[0])
                rows, cols = (None if v is None else torch.tensor(v) for v in ray.get(ready[0]))
                mutual_scoring.place_block(nearest, a, b, rows, cols)
                yield Progress(stage, done, len(pairs))
        finally:
            for ref in pending:
                ray.cancel(ref)
        return mutual_scoring.finish_distances(nearest, unit_norm)
