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
    ],
)
def test_invalid_values_are_rejected_with_the_field_name(change: dict, message: str) -> None:
    with pytest.raises(InvalidInputError, match=message):
        MuscConfig(**change)


def test_field_info_has_titles_and_slider_ranges() -> None:
    info = MuscConfig.field_info()
    assert info["x_percent"] == {"title": "X %", "range": (1.0, 100.0)}
    assert info["backbone"]["range"] is None
    assert MuscConfig().replace(x_percent=20).to_dict()["r_list"] == [1, 3, 5]
