"""How parts are cut into chunks for the extraction actors (no Ray needed)."""

from __future__ import annotations

import pytest

from engine.cluster.extract_actors import chunks


@pytest.mark.parametrize(("count", "parts"), [(10, 4), (3, 8), (1, 1), (7, 7), (100, 6)])
def test_chunks_cover_every_part_once_in_order(count: int, parts: int) -> None:
    ranges = chunks(count, parts)
    assert [i for r in ranges for i in r] == list(range(count))
    assert len(ranges) == min(count, parts)
    sizes = [len(r) for r in ranges]
    assert max(sizes) - min(sizes) <= 1
