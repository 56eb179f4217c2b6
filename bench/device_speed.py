"""Speed on the GPU: seconds per part of each stage at N = 150, against the issue's targets.

Scores N synthetic parts (RGB + XYZ, ``write_synthetic_dataset``) with the ViT-B/8 sizes
(``dino_vitb8``, random weights, 224 px) in 2D, and with Point-MAE (random weights) added in
2D+3D. Targets on one H200 at N = 150: 2D <= 15 ms/part, 2D+3D <= 50 ms/part.

A warm-up run on a few parts goes first and its backbones are handed to the timed sessions, so
CUDA start-up, lazy kernel loading and building the networks are not in the per-part times.
On cuda the GPU is synchronised at the start and end of the timed run and at the last event of
every stage, so a stage's queued kernels are charged to it, not to the next one.

After each run every tensor the session cached is checked to be on the device: a tensor left on
the CPU in a stage is printed (that stage's work did not run on the GPU).

    python bench/device_speed.py                               # cuda, N = 150, both modalities
    python bench/device_speed.py --device cpu --n 6 --size 64 --image-size 64 \\
        --num-groups 64 --group-size 32 --eval-size 64         # a seconds-long try on the CPU

Exit status: 0 all on the device and targets met; 1 a tensor off the device; 3 a target missed.
"""

from __future__ import annotations

import argparse
import dataclasses
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench.common import dataset_of_size  # noqa: E402

TARGET_MS = {"2d": 15.0, "2d+3d": 50.0}  # per part at N = 150 on one H200 (issue "Faster")
PAPER_K_ITER, PAPER_GROUP_SIZE = 80, 128  # the config defaults; --group-size keeps their ratio
EXIT_OFF_DEVICE, EXIT_TARGET_MISSED = 1, 3


def tensor_devices(value: object, path: str = "") -> Iterator[tuple[str, torch.device]]:
    """(path, device) of every tensor inside ``value`` (dicts, lists, tuples, dataclasses)."""
    if isinstance(value, torch.Tensor):
        yield path, value.device
    elif isinstance(value, dict):
        for key, item in value.items():
            yield from tensor_devices(item, f"{path}[{key!r}]")
    elif isinstance(value, (list, tuple)):
        for index, item in enumerate(value):
            yield from tensor_devices(item, f"{path}[{index}]")
    elif dataclasses.is_dataclass(value) and not isinstance(value, type):
        for f in dataclasses.fields(value):
            yield from tensor_devices(getattr(value, f.name), f"{path}.{f.name}")


def off_device(stages: dict, device: str) -> dict[str, list[str]]:
    """Per cached stage, the paths of its tensors that are not on ``device`` (type compared,
    so "cuda" matches "cuda:0"); stages without such tensors are left out."""
    wanted = torch.device(device).type
    found = {}
    for stage, value in stages.items():
        stray = [f"{p} on {d}" for p, d in tensor_devices(value) if d.type != wanted]
        if stray:
            found[str(stage)] = stray
    return found


def device_report(session, device: str) -> list[str]:
    """Lines saying where each cached stage's tensors and each backbone's weights live; a line
    starting with "OFF DEVICE" for every stage or backbone that is not on ``device``."""
    stages = session.snapshot().stages
    stray = off_device(stages, device)
    lines = []
    for stage, value in stages.items():
        count = sum(1 for _ in tensor_devices(value))
        if str(stage) in stray:
            paths = stray[str(stage)]
            shown = "; ".join(paths[:4]) + (
                f"; ... ({len(paths)} in all)" if len(paths) > 4 else ""
            )
            lines.append(f"OFF DEVICE {stage}: {len(paths)} of {count} tensors: {shown}")
        else:
            lines.append(f"  {stage}: {count} tensors, all on {device}")
    for name, backbone in (("2D backbone", session.backbone), ("3D backbone", session.backbone_3d)):
        model = getattr(backbone, "model", None)
        params = list(model.parameters()) if model is not None else []
        where = {p.device.type for p in params}
        if params and where != {torch.device(device).type}:
            lines.append(f"OFF DEVICE {name}: weights on {sorted(where)}")
        elif params:
            lines.append(f"  {name}: weights on {device}")
    return lines


def _sync(device: str) -> None:
    if torch.device(device).type == "cuda":
        torch.cuda.synchronize()


def timed_run(session, device: str) -> float:
    """Run ``session`` to the end; wall seconds, the GPU synchronised at each stage's end."""
    from engine.progress import run_to_completion

    def at_event(event) -> None:
        if event.done >= event.total:  # inside the stage's timed span: its kernels count there
            _sync(device)

    _sync(device)
    started = time.perf_counter()
    run_to_completion(session.run(), at_event)
    _sync(device)
    return time.perf_counter() - started


def config_for(modality: str, args: argparse.Namespace):
    """The timed configuration: ViT-B/8 sizes, Point-MAE in 2D+3D, random weights."""
    from engine.config import MuscConfig

    k_iter = max(1, round(PAPER_K_ITER * args.group_size / PAPER_GROUP_SIZE))
    return MuscConfig(
        modality=modality,
        backbone=args.backbone,
        weights="random",
        image_size=args.image_size,
        backbone_3d="point_mae",
        weights_3d="random",
        device=args.device,
        num_groups=args.num_groups,
        group_size=args.group_size,
        k_iter=k_iter,
        eval_size=args.eval_size,
        batch_size=args.batch_size,
        remove_background=not args.no_background_removal,
    )


def run_modality(modality: str, args: argparse.Namespace, line: Path, backbone=None):
    """Warm up on a few parts of ``line``, then time N parts.

    Returns:
        The row (stage times, total, device lines, notes) and the 2D backbone, which the next
        modality's warm-up can take instead of building the same network again.
    """
    from engine.progress import run_to_completion
    from engine.session.session import InspectionSession

    config = config_for(modality, args)
    warm_parts = dataset_of_size(str(line), args.warmup, line)
    warm = InspectionSession(warm_parts, config, backbone=backbone)
    run_to_completion(warm.run())
    dataset = dataset_of_size(str(line), args.n, line)
    session = InspectionSession(
        dataset, config, backbone=warm.backbone, backbone_3d=warm.backbone_3d
    )
    total = timed_run(session, args.device)
    row = {
        "n": len(session.samples),
        "stages": dict(session.timings),
        "total": total,
        "devices": device_report(session, args.device),
        "warnings": list(session.warnings),
    }
    return row, warm.backbone


def print_report(rows: dict[str, dict], device: str) -> int:
    """Per-stage table (ms per part), totals against the targets, device lines; exit status."""
    from engine.session.stages import STAGES

    parts = {name for spec in STAGES.values() for name in spec.substages}
    stages = list(dict.fromkeys(s for row in rows.values() for s in row["stages"]))
    print(
        f"device_speed on {device}: ms per part per stage ('  part of': a sub-stage, timed "
        "inside its stage without synchronising)"
    )
    print(" | ".join(["stage", *(f"{m} (N={row['n']})" for m, row in rows.items())]))
    for stage in stages:
        cells = [
            f"{1e3 * row['stages'][stage] / row['n']:.2f}" if stage in row["stages"] else "-"
            for row in rows.values()
        ]
        print(" | ".join([f"  part of: {stage}" if stage in parts else str(stage), *cells]))
    status = 0
    for modality, row in rows.items():
        per_part = 1e3 * row["total"] / row["n"]
        target = TARGET_MS.get(modality)
        if torch.device(device).type != "cuda" or target is None:
            verdict = "target not checked (not cuda)"
        elif per_part <= target:
            verdict = f"MET (target <= {target:g} ms/part)"
        else:
            verdict = f"MISSED (target <= {target:g} ms/part)"
            status = status or EXIT_TARGET_MISSED
        print(
            f"total {modality}: {per_part:.2f} ms/part ({row['total']:.2f} s for "
            f"{row['n']} parts), {verdict}"
        )
        for line in row["warnings"]:
            print(f"  note {modality}: {line}")
        print(f"where the {modality} run's tensors live:")
        for line in row["devices"]:
            print(f"  {line}" if line.startswith("OFF") else line)
        if any(line.startswith("OFF DEVICE") for line in row["devices"]):
            status = EXIT_OFF_DEVICE
    return status


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--device", default="cuda")
    parser.add_argument("--n", type=int, default=150, help="parts timed")
    parser.add_argument("--warmup", type=int, default=4, help="parts of the untimed warm-up run")
    parser.add_argument("--modalities", nargs="+", default=["2d", "2d+3d"], choices=("2d", "2d+3d"))
    parser.add_argument("--backbone", default="dino_vitb8")
    parser.add_argument("--image-size", type=int, default=224, help="backbone input side")
    parser.add_argument("--size", type=int, default=256, help="side of the synthetic images")
    parser.add_argument("--num-groups", type=int, default=1024)
    parser.add_argument("--group-size", type=int, default=128)
    parser.add_argument("--eval-size", type=int, default=224, help="map grid side")
    parser.add_argument("--batch-size", type=int, default=8)
    parser.add_argument(
        "--no-background-removal",
        action="store_true",
        help="skip the open3d plane fit (for a machine without open3d)",
    )
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    """Write the synthetic parts, time each modality, print the report; the exit status."""
    from engine.data.synthetic import DEFECT_TYPES, DEFECT_TYPES_3D, write_synthetic_dataset

    args = parse_args(argv)
    if args.warmup < 3 or args.n < 3:
        # with 2 parts each has 1 reference, and CAE's spread over the references is undefined
        sys.exit("device_speed: --n and --warmup must be >= 3")
    with tempfile.TemporaryDirectory() as tmp:
        scratch = Path(tmp) / "line"
        defects = DEFECT_TYPES + DEFECT_TYPES_3D
        per_type = max(1, args.n // (2 * len(defects)))  # as bench/common.py: half defective
        started = time.perf_counter()
        write_synthetic_dataset(
            scratch,
            n_good=max(1, args.n - per_type * len(defects)),
            n_per_defect=per_type,
            size=args.size,
            with_xyz=True,
            defects=defects,
        )
        print(
            f"wrote {args.n} synthetic parts of {args.size} px in "
            f"{time.perf_counter() - started:.1f} s"
        )
        if args.no_background_removal:
            print(
                "note: background removal off (--no-background-removal): load 3D is faster "
                "than it would be with it, and the clouds keep the table"
            )
        rows, backbone = {}, None
        for modality in args.modalities:
            rows[modality], backbone = run_modality(modality, args, scratch, backbone)
    return print_report(rows, args.device)


if __name__ == "__main__":
    sys.exit(main())
