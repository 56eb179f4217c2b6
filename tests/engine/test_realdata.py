"""Quality floors on the real MVTec 3D-AD dev samples in ../shared/data (2D, offline backbone).

Floors sit just below the figures measured with the defaults (EfficientNet-Lite0, 320 px,
X = 30 %, k = 7): cable_gland 74.2 / 98.6 / 23.9 / 96.1 and tire 80.2 / 98.7 / 18.0 / 94.6
(image AUROC / pixel AUROC / pixel AP / AUPRO@0.3, `musc score ... --out DIR`).
"""

from __future__ import annotations

from pathlib import Path

import pytest

from engine.config import MuscConfig
from engine.data.discover import discover_dataset
from engine.evaluation import evaluate
from engine.pipeline import InspectionSession
from engine.progress import run_to_completion

DATA = Path(__file__).resolve().parents[2].parent / "shared" / "data" / "mvtec3d"

FLOORS = {
    "cable_gland": {"image_auroc": 0.72, "pixel_auroc": 0.980, "pixel_ap": 0.22, "aupro": 0.95},
    "tire": {"image_auroc": 0.78, "pixel_auroc": 0.980, "pixel_ap": 0.16, "aupro": 0.93},
}


@pytest.mark.realdata
@pytest.mark.parametrize("category", sorted(FLOORS))
def test_2d_metrics_stay_above_the_measured_floors(category: str) -> None:
    root = DATA / category
    if not root.is_dir():
        pytest.skip(f"real data not found at {root} (the MVTec 3D-AD dev samples in ../shared)")
    config = MuscConfig(modality="2d", backbone="efficientnet_lite0")
    session = InspectionSession(discover_dataset(root), config)
    result = run_to_completion(session.run())
    metrics = evaluate(result)
    low = {k: round(metrics[k], 4) for k, floor in FLOORS[category].items() if metrics[k] < floor}
    assert not low, f"{category}: below the floor: {low} (all: {metrics})"
