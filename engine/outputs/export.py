"""Writing a scored run to disk: scores.csv, results.json, heatmap PNGs and float maps (HDF5).

Every file is written to a temporary name in the target folder and moved into place with
``os.replace``, so an interrupted run never leaves a half-written file under the final name.
"""

from __future__ import annotations

import csv
import io
import json
import os
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import asdict
from pathlib import Path
from typing import Any

import cv2
import h5py
import numpy as np

from engine.data.readers import read_rgb
from engine.errors import InvalidInputError
from engine.session.results import ScoreResult


def ensure_writable(out_dir: str | Path) -> Path:
    """Create ``out_dir`` if needed and prove it is writable, before any long computation."""
    path = Path(out_dir)
    try:
        path.mkdir(parents=True, exist_ok=True)
        with tempfile.NamedTemporaryFile(dir=path, prefix=".write-test-"):
            pass
    except OSError as error:
        raise InvalidInputError(
            f"{path}: output folder is not writable ({error.strerror or error}). "
            "Choose another --out folder or fix its permissions."
        ) from error
    return path


@contextmanager
def atomic_path(target: Path) -> Iterator[Path]:
    """Yield a temporary path next to ``target``; move it onto ``target`` on success."""
    handle, tmp_name = tempfile.mkstemp(dir=target.parent, prefix=f".{target.name}.", suffix=".tmp")
    os.close(handle)
    tmp = Path(tmp_name)
    try:
        yield tmp
        os.replace(tmp, target)
    finally:
        tmp.unlink(missing_ok=True)


def _write_text(target: Path, text: str) -> None:
    with atomic_path(target) as tmp:
        tmp.write_text(text, encoding="utf-8")


def scores_csv(result: ScoreResult) -> str:
    """The ranked table: rank, sample, score, label, defect_type (highest score first)."""
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n")
    writer.writerow(["rank", "sample", "score", "label", "defect_type"])
    for rank, index in enumerate(result.ranking(), start=1):
        sample = result.samples[index]
        label = "" if sample.label is None else sample.label
        score = f"{result.image_scores[index]:.6f}"
        writer.writerow([rank, sample.name, score, label, sample.defect_type or ""])
    return buffer.getvalue()


def _info(info: Any) -> dict[str, Any] | None:
    """A backbone info dataclass as a JSON-friendly dict (tuples become lists)."""
    if info is None:
        return None
    return {k: list(v) if isinstance(v, tuple) else v for k, v in asdict(info).items()}


def results_document(
    result: ScoreResult, metrics: dict[str, dict[str, float]], extra: dict[str, Any] | None = None
) -> dict[str, Any]:
    """Everything about the run as a JSON-serialisable dict.

    Args:
        result: The scored run.
        metrics: ``evaluate_all`` output: "metrics" and, for 2D+3D, "metrics_2d"/"metrics_3d".
        extra: More top-level keys (dataset, skipped files, warnings, ...).
    """
    document: dict[str, Any] = {
        "modality": result.modality,
        "config": result.config.to_dict(),
        "backbone": _info(result.backbone),
        "backbone_3d": _info(result.backbone_3d),
        "timings_s": {k: round(v, 4) for k, v in result.timings.items()},
        "samples": [
            {
                "sample": s.name,
                "score": float(result.image_scores[i]),
                "max_map_score": float(result.max_scores[i]),
                "label": s.label,
                "defect_type": s.defect_type,
                "rgb_path": str(s.rgb_path) if s.rgb_path else None,
            }
            for i, s in enumerate(result.samples)
        ],
    }
    for key, values in metrics.items():
        if values:
            document[key] = {k: float(v) for k, v in values.items()}
    document.update(extra or {})
    return document


def heatmap_overlay(
    rgb: np.ndarray, anomaly_map: np.ndarray, low: float, high: float
) -> np.ndarray:
    """Jet-coloured anomaly map blended over the image, with a fixed (global) value range."""
    span = max(high - low, 1e-12)
    levels = np.clip((anomaly_map - low) / span * 255.0, 0, 255).astype(np.uint8)
    coloured = cv2.applyColorMap(levels, cv2.COLORMAP_JET)[..., ::-1]  # BGR -> RGB
    return (0.5 * rgb + 0.5 * coloured).astype(np.uint8)


def write_maps(out_dir: Path, result: ScoreResult) -> None:
    """Heatmap PNGs (``maps/<sample>.png``, one colour scale for all parts) and ``maps.h5``.

    ``maps.h5`` holds ``maps/<sample>``: the float anomaly map at the image's original size, and
    for samples with 3D ``points/<sample>/xyz`` (P, 3) and ``points/<sample>/score`` (P,).
    """
    maps_dir = out_dir / "maps"
    maps_dir.mkdir(exist_ok=True)
    low, high = float(result.maps.min()), float(result.maps.max())
    with atomic_path(out_dir / "maps.h5") as tmp, h5py.File(tmp, "w") as store:
        store.attrs["value_range"] = (low, high)
        store.attrs["modality"] = result.modality
        for index, sample in enumerate(result.samples):
            anomaly_map = result.anomaly_map(index)
            data = store.create_dataset(f"maps/{sample.name}", data=anomaly_map, compression="gzip")
            data.attrs["score"] = float(result.image_scores[index])
            cloud = result.points[index] if result.points else None
            if cloud is not None:
                group = store.create_group(f"points/{sample.name}")
                group.create_dataset("xyz", data=cloud.xyz, compression="gzip")
                group.create_dataset("score", data=cloud.scores, compression="gzip")
            if sample.rgb_path is not None:
                rgb = read_rgb(sample.rgb_path)
            else:  # 3D-only sample: the heatmap alone
                rgb = np.zeros((*anomaly_map.shape, 3), dtype=np.uint8)
            overlay = heatmap_overlay(rgb, anomaly_map, low, high)
            ok, encoded = cv2.imencode(".png", overlay[..., ::-1])
            if not ok:
                raise OSError(f"could not encode the heatmap of {sample.name}")
            with atomic_path(maps_dir / f"{sample.name}.png") as png:
                png.write_bytes(encoded.tobytes())


def write_outputs(
    out_dir: str | Path,
    result: ScoreResult,
    metrics: dict[str, dict[str, float]],
    extra: dict[str, Any] | None = None,
    *,
    maps: bool = True,
) -> Path:
    """Write scores.csv, results.json and (optionally) the maps into ``out_dir``."""
    path = ensure_writable(out_dir)
    _write_text(path / "scores.csv", scores_csv(result))
    document = results_document(result, metrics, extra)
    _write_text(path / "results.json", json.dumps(document, indent=2) + "\n")
    if maps:
        write_maps(path, result)
    return path
