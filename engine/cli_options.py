"""The options of ``musc score`` (and ``demo``), and the run configuration they make.

:func:`add_model_options` holds what is scored and how, the options a recipe stores too
(``musc recipe create``); :func:`add_score_options` adds the output, cluster and decision ones;
:func:`config_from_args` reads them back into a :class:`~engine.config.MuscConfig`.
"""

from __future__ import annotations

import argparse

from engine.cli_decision import add_decision_options
from engine.cluster.cli_support import add_cluster_option
from engine.config import DEVICES, MODALITIES, PRECISIONS, MuscConfig


def config_from_args(args: argparse.Namespace) -> MuscConfig:
    """The run configuration of parsed :func:`add_model_options` options."""
    return MuscConfig(
        modality=args.modality,
        backbone_3d=args.backbone_3d,
        weights_3d=args.weights_3d,
        k_iter=args.k_iter,
        c_thr=args.c_thr,
        remove_background=not args.keep_background,
        black_rgb_background=args.black_rgb_background,
        cae={"auto": None, "on": True, "off": False}[args.cae],
        fusion=args.fusion,
        backbone=args.backbone,
        weights=args.weights,
        image_size=args.image_size,
        layers=tuple(args.layers) if args.layers else None,
        x_percent=args.x_percent,
        rscon_window=args.k,
        subsets=args.subsets,
        device=args.device,
        precision=args.precision,
        batch_size=args.batch_size,
    )


def add_score_options(parser: argparse.ArgumentParser) -> None:
    """Every option of ``musc score``: the model ones, outputs, ``--cluster``, the decision."""
    add_model_options(parser)
    parser.add_argument("--no-maps", action="store_true", help="skip heatmap PNGs and maps.h5")
    add_cluster_option(parser)
    add_decision_options(parser)


def add_model_options(parser: argparse.ArgumentParser) -> None:
    """What is scored and how: the options a recipe stores (``musc recipe create`` too)."""
    defaults = MuscConfig()
    parser.add_argument("--modality", choices=MODALITIES, default=defaults.modality)
    parser.add_argument("--backbone", help="registry name (see `musc backbones`); default: auto")
    parser.add_argument("--weights", help="local weights file for the backbone")
    parser.add_argument("--backbone-3d", help="3D registry name (point_mae, fpfh); default: auto")
    parser.add_argument("--weights-3d", help="local weights file for the 3D backbone")
    parser.add_argument("--k-iter", type=int, default=defaults.k_iter, help="IPG K_iter")
    parser.add_argument("--c-thr", type=float, default=defaults.c_thr, help="IPG curvature C_thr")
    parser.add_argument(
        "--keep-background",
        action="store_true",
        help="do not remove the background plane from XYZ maps",
    )
    parser.add_argument(
        "--black-rgb-background",
        action="store_true",
        help="black out the RGB background found in 3D (reference preprocessing)",
    )
    parser.add_argument(
        "--fusion",
        choices=("sum", "scaled"),
        default=defaults.fusion,
        help="how 2D and 3D maps are added (see README)",
    )
    parser.add_argument(
        "--cae",
        choices=("auto", "on", "off"),
        default="auto",
        help="cross-modal enhancement (auto: on with point_mae, off with fpfh)",
    )
    parser.add_argument(
        "--x-percent",
        type=float,
        default=defaults.x_percent,
        help="interval average over the lowest X%% of the other samples",
    )
    parser.add_argument("--k", type=int, default=defaults.rscon_window, help="RsCon window")
    parser.add_argument("--subsets", type=int, default=defaults.subsets, help="subsets g")
    parser.add_argument("--image-size", type=int, help="input side in pixels")
    parser.add_argument("--layers", type=int, nargs="+", help="backbone layer indices")
    parser.add_argument("--device", choices=DEVICES, default=defaults.device)
    parser.add_argument(
        "--precision",
        choices=PRECISIONS,
        default=defaults.precision,
        help="backbone arithmetic (auto: bf16 on a CPU with AMX-BF16/AVX512-BF16, else fp32)",
    )
    parser.add_argument("--batch-size", type=int, default=defaults.batch_size)


SCORE_HELP = """Score every category under DATASET and write the results into --out.

The outputs are written into a hidden folder beside --out and swapped in at the end, so --out
always holds one complete run. An earlier musc output in --out is replaced as a whole; a
non-empty folder musc did not write is refused unless --force. Outputs are never scored as
input, even when --out lies inside DATASET.

exit status: 0 all categories scored; 2 error, nothing written; 3 finished, but some
categories failed (the others are written; reasons on stderr and in musc-manifest.json);
130 interrupted (Ctrl-C), 143 terminated (SIGTERM): --out is left as it was.
"""
