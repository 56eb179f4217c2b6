"""Benchmark of mutual scoring's distance tables: cache-blocked tile pairs against one GEMM each.

Random unit-norm (2D) or raw (3D) features at the shapes the default backbones give at N = 53:
EfficientNet-Lite0 at 320 px (1600 patches, 40 and 112 channels), ViT-B/8 at 224 px (784
patches, 768 channels) and FPFH (1024 groups, 33 channels). For each it prints seconds per part
of :func:`engine.method.mutual_scoring.patch_to_sample_distances` (the blocked tile pairs) and
of the one-GEMM-per-tile-pair computation it replaced (written out below as the baseline), the
speed-up, and the largest difference of the two tables.

    .venv/bin/python bench/bench_mutual_scoring.py            # N = 53, best of 2 runs each
    .venv/bin/python bench/bench_mutual_scoring.py --n 100 --repeat 1
"""

from __future__ import annotations

import argparse
import os
import platform
import sys
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from engine.method import mutual_scoring

SHAPES = {  # name: (patches or groups, channels, unit-norm)
    "EfficientNet-Lite0 block 4 (320 px)": (1600, 40, True),
    "EfficientNet-Lite0 block 10 (320 px)": (1600, 112, True),
    "ViT-B/8 one layer (224 px)": (784, 768, True),
    "FPFH mean (1024 groups)": (1024, 33, False),
}


def one_gemm_per_tile_pair(features: torch.Tensor, chunk_mib: int, unit_norm: bool) -> torch.Tensor:
    """The previous computation: one (T*L) x (T*L) GEMM per tile pair, reduced afterwards."""
    n, patches, channels = features.shape
    tile = mutual_scoring.tile_size(patches, chunk_mib, n)
    nearest = torch.zeros((n, patches, n))
    for a, b in mutual_scoring.tile_pairs(n, tile):
        block_a, block_b = features[a : a + tile], features[b : b + tile]
        ta, tb = block_a.shape[0], block_b.shape[0]
        sims = block_a.reshape(-1, channels) @ block_b.reshape(-1, channels).T
        if unit_norm:
            rows = sims.view(ta * patches, tb, patches).amax(dim=2)
            cols = sims.view(ta, patches, tb * patches).amax(dim=1)
        else:
            squared_a, squared_b = (block_a * block_a).sum(-1), (block_b * block_b).sum(-1)
            sims.mul_(-2.0)
            rows = (sims + squared_b.reshape(1, -1)).view(ta * patches, tb, -1).amin(dim=2)
            rows = rows + squared_a.reshape(-1, 1)
            cols = (sims + squared_a.reshape(-1, 1)).view(ta, patches, -1).amin(dim=1)
            cols = cols + squared_b.reshape(1, -1)
        mutual_scoring.place_block(
            nearest, a, b, rows.view(ta, patches, tb),
            None if a == b else cols.view(ta, tb, patches).permute(1, 2, 0),
        )  # fmt: skip
    return mutual_scoring.finish_distances(nearest, unit_norm)


def blocked(features: torch.Tensor, chunk_mib: int, unit_norm: bool) -> torch.Tensor:
    """What the engine runs now."""
    steps = mutual_scoring.patch_to_sample_distances(features, chunk_mib, unit_norm=unit_norm)
    while True:
        try:
            next(steps)
        except StopIteration as done:
            return done.value


def best_time(fn, *args, repeat: int) -> tuple[float, torch.Tensor]:
    times, out = [], None
    for _ in range(repeat):
        started = time.perf_counter()
        out = fn(*args)
        times.append(time.perf_counter() - started)
    return min(times), out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--n", type=int, default=53)
    parser.add_argument("--chunk-mib", type=int, default=64)
    parser.add_argument("--repeat", type=int, default=2)
    args = parser.parse_args()
    print(
        f"mutual scoring, N = {args.n}, chunk {args.chunk_mib} MiB | {platform.machine()}, "
        f"{len(os.sched_getaffinity(0))} cores, torch threads {torch.get_num_threads()}"
    )
    print("| features | one GEMM per tile pair s/part | blocked s/part | speed-up | max |diff| |")
    print("|---|---|---|---|---|")
    generator = torch.Generator().manual_seed(0)
    off_diagonal = ~torch.eye(args.n, dtype=torch.bool)
    for name, (patches, channels, unit_norm) in SHAPES.items():
        features = torch.randn(args.n, patches, channels, generator=generator)
        if unit_norm:
            features = torch.nn.functional.normalize(features, dim=-1)
        before, old = best_time(one_gemm_per_tile_pair, features, args.chunk_mib, unit_norm,
                                repeat=args.repeat)  # fmt: skip
        now, new = best_time(blocked, features, args.chunk_mib, unit_norm, repeat=args.repeat)
        diff = (old.permute(0, 2, 1)[off_diagonal] - new.permute(0, 2, 1)[off_diagonal]).abs()
        print(
            f"| {name}: {patches} x {channels} | {before / args.n:.3f} | {now / args.n:.3f} "
            f"| {before / now:.2f}x | {diff.max().item():.1e} |"
        )


if __name__ == "__main__":
    main()
