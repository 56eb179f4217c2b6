"""Splitting the sample set into g subsets that are scored independently (docs/method.md §9)."""

from __future__ import annotations

import random

from engine.errors import InvalidInputError


def effective_subsets(num_samples: int, subsets: int) -> int:
    """The number of subsets actually used: g clipped so that every subset holds >= 2 samples."""
    if subsets <= 1 or num_samples < 4:
        return 1
    return min(subsets, num_samples // 2)


def split_subsets(num_samples: int, subsets: int, seed: int = 42) -> list[list[int]]:
    """Seeded, interleaved split of sample indices into ``subsets`` groups.

    MuSc v1 first grouped the samples by *anomaly type* before interleaving. That needs ground
    truth, which a zero-shot tool does not have on a real line, so here all samples form one
    group: shuffle with ``random.Random(seed)``, then subset t takes every g-th index from t on.
    Each subset is returned sorted, so results do not depend on the shuffle order within it.

    Args:
        num_samples: N.
        subsets: g >= 1; clipped so that every subset holds at least 2 samples.
        seed: Shuffle seed.

    Returns:
        g lists of indices that partition range(N).
    """
    groups = effective_subsets(num_samples, subsets)
    if groups == 1:
        return [list(range(num_samples))]
    order = list(range(num_samples))
    random.Random(seed).shuffle(order)
    return [sorted(order[t::groups]) for t in range(groups)]


def check_count(root: object, usable: int, total: int, warnings: list[str]) -> None:
    """Raise when fewer than 2 samples are usable; warn (once) below 5."""
    if usable < 2:
        raise InvalidInputError(
            f"{root}: only {usable} of {total} samples could be read; mutual "
            "scoring compares samples with each other and needs at least 2. Add samples or "
            "fix the files listed as skipped."
        )
    if usable < 5 and not any("below 5" in w for w in warnings):
        warnings.append(
            f"only {usable} samples: the interval average degenerates below 5 samples, "
            "so scores are unreliable; add more parts from the same line."
        )
