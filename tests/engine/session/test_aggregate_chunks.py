"""2D aggregation in cache-sized chunks of parts: the same features whatever the chunk size."""

from __future__ import annotations

import pytest
import torch

from engine.method.snamd import snamd_2d
from engine.progress import run_to_completion
from engine.session import branch_2d


@pytest.mark.parametrize("chunk_bytes", [1, 3 * 6 * 6 * 8 * 4, 2**30])  # 1 part, 3 parts, all
def test_chunks_give_the_features_of_one_pass(
    monkeypatch: pytest.MonkeyPatch, chunk_bytes: int
) -> None:
    generator = torch.Generator().manual_seed(0)
    layers = [
        torch.randn(7, 6, 6, 8, generator=generator),
        torch.randn(7, 6, 6, 4, generator=generator),
    ]
    tokens = branch_2d.Tokens2D([f"p{i}" for i in range(7)], [(48, 48)] * 7, layers)
    monkeypatch.setattr(branch_2d, "POOL_CHUNK_BYTES", chunk_bytes)
    features = run_to_completion(branch_2d.aggregate_2d(tokens, (1, 3, 5)))
    assert len(features) == 2
    for got, layer in zip(features, layers, strict=True):
        assert got.shape == (7, 36, layer.shape[-1])
        assert torch.equal(got, snamd_2d(layer, (1, 3, 5)))
