"""CUDA against the CPU on the dev data: the same maps and metrics in 2D, 3D and 2D+3D.

Scores the dev category once on each of the two ``--devices`` (the first is the reference) in
each modality: 2D with ``efficientnet_lite0``, 3D with Point-MAE in random weights (the
official layout; no checkpoint needed), 2D+3D with both (CAE on, as with point_mae). A modality
passes when every map pair has Pearson r >= 0.999 and every metric of ``evaluate_all`` (image
and pixel AUROC, AP, F1-max, PRO) is within 0.5 points, and when the session's tensors really
are on the device asked for.

One session per device serves all modalities: a change of modality re-runs only the scoring
stages, so each backbone runs once per device. That halves the CPU reference run, the slow part
of this check; the cached stages are the same tensors a fresh session computes.

    python bench/device_fidelity.py                     # ../shared/data/.../cable_gland, cpu, cuda
    python bench/device_fidelity.py --limit 12 --modalities 2d 3d
    python bench/device_fidelity.py --data synthetic --limit 12  # no dev data at hand
    python bench/device_fidelity.py --devices cpu cpu --data DIR --limit 6 --modalities 2d

Exit status: 0 every modality passes; 1 one fails; 2 the data folder is missing.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench.common import CABLE_GLAND, dataset_of_size  # noqa: E402
from bench.device_speed import tensor_devices, timed_run  # noqa: E402

MIN_PEARSON = 0.999
MAX_DELTA_POINTS = 0.5  # metrics are fractions; 0.5 points = 0.005
MODALITIES = ("2d", "3d", "2d+3d")


@dataclass
class Scored:
    """What one device gave for one modality."""

    names: list[str]
    maps: np.ndarray  # (N, S, S)
    metrics: dict[str, float]
    ran_on: set[str]  # device types of every tensor the session cached
    seconds: float  # wall time of this modality's run()


@dataclass
class Verdict:
    """One modality's comparison of the checked device with the reference."""

    modality: str
    pearson: np.ndarray  # per map pair
    pearson_all: float  # over all pixels of all maps at once
    deltas: dict[str, float]  # |difference| in points per metric both devices have
    reasons: list[str] = field(default_factory=list)  # why it fails; empty = PASS

    @property
    def passed(self) -> bool:
        """Whether the modality passes."""
        return not self.reasons


def map_pearson(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Pearson r of each pair of maps a[i], b[i]; a constant map scores 1 if the other equals it
    (e.g. both all-zero), else 0, where r itself is undefined."""
    x = a.reshape(len(a), -1).astype(np.float64)
    y = b.reshape(len(b), -1).astype(np.float64)
    dx, dy = x - x.mean(1, keepdims=True), y - y.mean(1, keepdims=True)
    norms = np.linalg.norm(dx, axis=1) * np.linalg.norm(dy, axis=1)
    with np.errstate(divide="ignore", invalid="ignore"):
        r = (dx * dy).sum(1) / norms
    for i in np.flatnonzero(norms == 0):
        r[i] = 1.0 if np.allclose(x[i], y[i], rtol=1e-5, atol=1e-8) else 0.0
    return r


def compare(
    modality: str,
    ref: Scored,
    got: Scored,
    devices: list[str],
    min_pearson: float = MIN_PEARSON,
    max_delta: float = MAX_DELTA_POINTS,
) -> Verdict:
    """Check ``got`` against the reference run ``ref``; ``devices`` = (reference's, got's)."""
    reasons = []
    for run, device in zip((ref, got), devices, strict=True):
        if run.ran_on != {torch.device(device).type}:
            reasons.append(f"tensors on {sorted(run.ran_on)}, not {device}")
    if got.names != ref.names or got.maps.shape != ref.maps.shape:
        reasons.append(
            f"scored parts differ: {len(ref.names)} vs {len(got.names)}, maps "
            f"{ref.maps.shape} vs {got.maps.shape}"
        )
        return Verdict(modality, np.zeros(0), float("nan"), {}, reasons)
    pearson = map_pearson(ref.maps, got.maps)
    overall = float(map_pearson(ref.maps.reshape(1, -1), got.maps.reshape(1, -1))[0])
    if not pearson.min() >= min_pearson:  # written so that NaN fails too
        worst = ref.names[int(np.argmin(pearson))]
        reasons.append(f"map Pearson {pearson.min():.6f} < {min_pearson} (part {worst})")
    missing = sorted(set(ref.metrics) ^ set(got.metrics))
    if missing:
        reasons.append(f"metrics on one device only: {', '.join(missing)}")
    deltas = {
        k: 100 * abs(got.metrics[k] - ref.metrics[k]) for k in ref.metrics if k in got.metrics
    }
    for key, delta in deltas.items():
        if not delta <= max_delta:
            reasons.append(f"{key} differs by {delta:.2f} points > {max_delta}")
    return Verdict(modality, pearson, overall, deltas, reasons)


def config_for(modality: str, device: str, remove_background: bool):
    """The checked configuration. Both backbones are named in every modality (an unused one is
    never built) so that a change of modality keeps the other modality's cached features."""
    from engine.config import MuscConfig

    return MuscConfig(
        modality=modality,
        backbone="efficientnet_lite0",
        backbone_3d="point_mae",
        weights_3d="random",
        device=device,
        remove_background=remove_background,
    )


def score_device(dataset, device: str, modalities: list[str], remove_background: bool):
    """Score every modality on ``device``: ({modality: Scored}, the session's stage timings)."""
    from engine.evaluation.evaluate import evaluate_all
    from engine.session.session import InspectionSession

    session, out = None, {}
    for modality in modalities:
        config = config_for(modality, device, remove_background)
        if session is None:
            session = InspectionSession(dataset, config)
        else:
            session.update(config)
        seconds = timed_run(session, device)
        result = session.result
        ran_on = {d.type for _, d in tensor_devices(session.snapshot().stages)}
        metrics = evaluate_all(result)["metrics"]
        out[modality] = Scored(result.names, result.maps, metrics, ran_on, seconds)
    return out, dict(session.timings) if session is not None else {}


def _pair(key: str, ref: Scored, got: Scored) -> str:
    if key not in ref.metrics or key not in got.metrics:
        return "n/a"
    return f"{100 * ref.metrics[key]:.2f} / {100 * got.metrics[key]:.2f}"


def print_tables(
    devices: list[str], runs: list[dict[str, Scored]], timings: list[dict], verdicts: list[Verdict]
) -> None:
    """The verdict table, then the wall time per stage and per modality run on each device."""
    ref_dev, dev = devices
    pair = f"{ref_dev}/{dev}"
    print(
        f"modality | maps Pearson mean / min (all pixels) | image AUROC {pair} | "
        f"pixel AUROC {pair} | max |dmetric| points | ran on | verdict"
    )
    for v in verdicts:
        ref, got = runs[0][v.modality], runs[1][v.modality]
        if len(v.pearson):
            pearson = f"{v.pearson.mean():.6f} / {v.pearson.min():.6f} ({v.pearson_all:.6f})"
        else:
            pearson = "n/a"
        worst = max(v.deltas, key=v.deltas.get) if v.deltas else None
        delta = f"{v.deltas[worst]:.3f} ({worst})" if worst else "n/a"
        ran = f"{','.join(sorted(ref.ran_on))}/{','.join(sorted(got.ran_on))}"
        print(
            " | ".join(
                [
                    v.modality,
                    pearson,
                    _pair("image_auroc", ref, got),
                    _pair("pixel_auroc", ref, got),
                    delta,
                    ran,
                    "PASS" if v.passed else "FAIL",
                ]
            )
        )
        for reason in v.reasons:
            print(f"  FAIL {v.modality}: {reason}")
    print(f"wall time, s | {ref_dev} | {dev}")
    for stage in dict.fromkeys(k for t in timings for k in t):
        print(
            " | ".join([str(stage), *(f"{t[stage]:.2f}" if stage in t else "-" for t in timings)])
        )
    for modality in runs[0]:
        cells = [f"{run[modality].seconds:.2f}" for run in runs]
        print(" | ".join([f"run() {modality} (stages not cached yet)", *cells]))


def load_dataset(data: str, limit: int | None, scratch: Path):
    """The dataset; ``limit`` keeps that many parts spread evenly over the sorted list, so that
    good and defective parts stay (the first N would be one defect type only)."""
    from engine.data.discover import discover_dataset

    if data == "synthetic":
        return dataset_of_size("synthetic", limit or 12, scratch, with_xyz=True)
    total = len(discover_dataset(data).samples)
    return dataset_of_size(data, min(limit or total, total), scratch)


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--data", default=str(CABLE_GLAND), help="category folder or 'synthetic'")
    parser.add_argument(
        "--devices", nargs=2, default=["cpu", "cuda"], metavar=("REFERENCE", "CHECKED")
    )
    parser.add_argument("--limit", type=int, default=None, help="score only N parts")
    parser.add_argument("--modalities", nargs="+", default=list(MODALITIES), choices=MODALITIES)
    parser.add_argument(
        "--no-background-removal",
        action="store_true",
        help="skip the open3d plane fit (for a machine without open3d)",
    )
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    """Score on both devices, compare, print the tables; the exit status."""
    args = parse_args(argv)
    if args.data != "synthetic" and not Path(args.data).is_dir():
        print(f"device_fidelity: {args.data} not found; pass --data DIR or --data synthetic")
        return 2
    with tempfile.TemporaryDirectory() as scratch:
        dataset = load_dataset(args.data, args.limit, Path(scratch))
        print(
            f"device_fidelity: {len(dataset.samples)} parts of {dataset.root}, "
            f"{' then '.join(args.devices)}, modalities {' '.join(args.modalities)}"
        )
        if args.no_background_removal:
            print("note: background removal off (--no-background-removal)")
        scored = [
            score_device(dataset, d, args.modalities, not args.no_background_removal)
            for d in args.devices
        ]
    runs, timings = [s[0] for s in scored], [s[1] for s in scored]
    verdicts = [compare(m, runs[0][m], runs[1][m], args.devices) for m in args.modalities]
    print_tables(args.devices, runs, timings, verdicts)
    passed = all(v.passed for v in verdicts)
    print(f"device_fidelity: {'PASS' if passed else 'FAIL'}")
    return 0 if passed else 1


if __name__ == "__main__":
    sys.exit(main())
