"""Config validation and the metadata the GUI builds its panel from."""

from __future__ import annotations

import pytest

from engine.config import MuscConfig
from engine.errors import InvalidInputError


def test_defaults_follow_the_paper() -> None:
    config = MuscConfig()
    assert (config.x_percent, config.rscon_window, config.r_list) == (30.0, 7, (1, 3, 5))


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"x_percent": 0.0}, "x_percent"),
        ({"rscon_window": 0}, "rscon_window"),
        ({"r_list": (2,)}, "r_list"),
        ({"device": "tpu"}, "device"),
        ({"modality": "4d"}, "modality"),
        ({"subsets": 0}, "subsets"),
        ({"batch_size": 0}, r"batch_size must be in \[1, 256\], got 0"),
        ({"eval_size": 3}, "eval_size"),
        ({"image_size": 16}, "image_size"),
        ({"num_groups": 8}, "num_groups"),
        ({"c_thr": 0.5}, "c_thr"),
        ({"chunk_mib": 1}, "chunk_mib"),
    ],
)
def test_invalid_values_are_rejected_with_the_field_name(change: dict, message: str) -> None:
    with pytest.raises(InvalidInputError, match=message):
        MuscConfig(**change)


def test_field_info_has_titles_and_slider_ranges() -> None:
    info = MuscConfig.field_info()
    assert info["x_percent"] == {"title": "X %", "range": (0.1, 100.0)}
    assert info["backbone"]["range"] is None
    assert MuscConfig().replace(x_percent=20).to_dict()["r_list"] == [1, 3, 5]


def test_every_declared_range_is_enforced_at_both_ends() -> None:
    info = MuscConfig.field_info()
    ranged = {name: meta["range"] for name, meta in info.items() if meta["range"] is not None}
    assert {"batch_size", "x_percent", "k_iter", "eval_size"} <= set(ranged)
    for name, (low, high) in ranged.items():
        step = 1 if isinstance(getattr(MuscConfig(), name) or 1, int) else 0.01
        base = {"group_size": 512, "k_iter": 1}  # k_iter <= group_size at every end
        MuscConfig(**{**base, name: low})
        MuscConfig(**{**base, name: high})
        for bad in (low - step, high + step):
            with pytest.raises(InvalidInputError, match=name):
                MuscConfig(**{**base, name: bad})
