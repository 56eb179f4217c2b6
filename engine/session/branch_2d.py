"""The 2D branch: reading images, backbone tokens, SNAMD features."""

from __future__ import annotations

from collections.abc import Generator
from contextlib import closing
from dataclasses import dataclass

import numpy as np
import torch

from engine.backbones.base import Backbone2D
from engine.backbones.preprocess import image_to_tensor
from engine.data.background import black_background
from engine.data.prefetch import default_workers, prefetched
from engine.data.readers import read_rgb
from engine.data.samples import Sample, SkippedFile
from engine.errors import InvalidInputError
from engine.method.snamd import snamd_2d
from engine.progress import Progress


@dataclass
class Tokens2D:
    """Raw backbone tokens of the samples whose image could be read."""

    samples: list[Sample]
    image_sizes: list[tuple[int, int]]
    layers: list[torch.Tensor]  # per layer (N, h, w, C)

    @property
    def grid(self) -> tuple[int, int]:
        """(h, w) of the token grid."""
        return int(self.layers[0].shape[1]), int(self.layers[0].shape[2])

    @property
    def stripped(self) -> bool:
        """Whether the channels were dropped (a cached session's grid-only copy)."""
        return bool(self.layers) and int(self.layers[0].shape[-1]) == 0


def extract_2d(
    samples: list[Sample],
    backbone: Backbone2D,
    batch_size: int,
    skipped: list[SkippedFile],
    foregrounds: dict[str, np.ndarray] | None = None,
    workers: int | None = None,
) -> Generator[Progress, None, Tokens2D]:
    """Backbone tokens of every readable image; unreadable ones are appended to ``skipped``.

    Args:
        samples: Candidates, in dataset order.
        backbone: The 2D backbone.
        batch_size: Images per forward pass.
        skipped: Receives a SkippedFile for every image that cannot be read.
        foregrounds: Optional foreground masks by sample name; the RGB outside is blacked out
            first, as the reference preprocessing does on MVTec 3D-AD (docs/method.md §2).
        workers: Reader threads (0 reads inline); None takes
            :func:`engine.data.prefetch.default_workers`. Results do not depend on it.
    """
    workers = default_workers() if workers is None else workers

    def load(sample: Sample) -> tuple[tuple[int, int], torch.Tensor]:
        rgb = read_rgb(sample.rgb_path)
        if foregrounds and sample.name in foregrounds:
            rgb = black_background(rgb, foregrounds[sample.name])
        size = (int(rgb.shape[0]), int(rgb.shape[1]))
        return size, image_to_tensor(rgb, backbone.image_size, backbone.mean, backbone.std)

    kept: list[Sample] = []
    sizes: list[tuple[int, int]] = []
    per_layer: list[list[torch.Tensor]] = []
    batch: list[torch.Tensor] = []
    # the next batch is read and resized on reader threads while the backbone runs this one;
    # closing() joins them when the caller cancels between two yields
    reader = prefetched(samples, load, workers=workers, ahead=max(batch_size, workers))
    with closing(reader):
        for done, (sample, loaded) in enumerate(reader, start=1):
            try:
                size, tensor = loaded.result()
            except InvalidInputError as error:
                skipped.append(SkippedFile(sample.rgb_path, str(error)))
            else:
                kept.append(sample)
                sizes.append(size)
                batch.append(tensor)
            if batch and (len(batch) == batch_size or done == len(samples)):
                with torch.inference_mode():
                    layers = backbone.extract(torch.stack(batch).to(backbone.device))
                per_layer = per_layer or [[] for _ in layers]
                for store, tokens in zip(per_layer, layers, strict=True):
                    store.append(tokens)
                batch = []
            yield Progress("extract 2D", done, len(samples), sample.name)
    return Tokens2D(kept, sizes, [torch.cat(chunks) for chunks in per_layer])


POOL_CHUNK_BYTES = 4 * 2**20


def aggregate_2d(
    tokens: Tokens2D, r_list: tuple[int, ...]
) -> Generator[Progress, None, list[torch.Tensor]]:
    """SNAMD features (N, L, C) per layer, computed in chunks to bound the pooling buffers.

    A chunk holds about :data:`POOL_CHUNK_BYTES` of tokens: the pooling makes ~25 passes over
    it, which stay in cache when it is small (ViT-B/8 at 224 px: 16 ms per part and layer in
    chunks of 1 part, 48 ms in chunks of 16, on a 2-core CPU; every part's result is the same).
    """
    features = []
    for done, layer in enumerate(tokens.layers, start=1):
        part_bytes = layer[0].numel() * layer.element_size() if layer.shape[0] else 1
        step = max(1, POOL_CHUNK_BYTES // part_bytes)
        chunks = [snamd_2d(layer[i : i + step], r_list) for i in range(0, layer.shape[0], step)]
        features.append(torch.cat(chunks))
        yield Progress("aggregate 2D", done, len(tokens.layers))
    return features
