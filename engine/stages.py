"""The stage graph of a session: which parameters each stage reads, which stages feed it."""

from __future__ import annotations

# stage -> the config fields it depends on directly
STAGE_FIELDS = {
    "load 3D": {"remove_background", "num_groups", "group_size", "eval_size", "device"},
    "extract 2D": {"backbone", "weights", "image_size", "layers", "device",
                   "black_rgb_background"},
    "aggregate 2D": {"r_list"},
    "group 3D": {"k_iter", "c_thr", "ipg_variant"},
    "extract 3D": {"backbone_3d", "weights_3d", "bn_stats", "r_list"},
    "score 2D": {"subsets", "seed", "modality", "cae"},
    "score 3D": {"subsets", "seed", "modality", "cae"},
    "score": {"subsets", "seed", "modality", "cae"},
}  # fmt: skip
# stage -> the stages whose output it consumes
STAGE_INPUTS = {
    "load 3D": set(),
    "extract 2D": {"load 3D"},  # the foreground masks, when the RGB background is blacked
    "aggregate 2D": {"extract 2D"},
    "group 3D": {"load 3D"},
    "extract 3D": {"group 3D"},
    # without CAE the modalities are scored apart, so a 3D-only change keeps the 2D tables
    "score 2D": {"aggregate 2D"},
    "score 3D": {"extract 3D"},
    "score": {"aggregate 2D", "extract 3D", "score 2D", "score 3D"},
}


# sub-stage timings recorded by the branches, reset whenever their stage runs again
SUBSTAGES = {
    "load 3D": ("3D read + background removal", "3D FPS + KNN + curvature"),
    "extract 3D": ("3D backbone", "3D SNAMD"),
}


def downstream(stages: set[str]) -> set[str]:
    """``stages`` and every stage that consumes their output, directly or not."""
    result = set(stages)
    while True:
        more = {s for s, inputs in STAGE_INPUTS.items() if inputs & result} - result
        if not more:
            return result
        result |= more
