"""Writing a scored run to disk: scores.csv, results.json, heatmap PNGs and float maps (HDF5).

Every file is written to a temporary name in the target folder and moved into place with
``os.replace``, so an interrupted run never leaves a half-written file under the final name.
The CLI additionally writes the whole set into a staging folder and swaps it in at the end
(:mod:`engine.outputs.staging`). Files get the user's umask, as ``open()`` would give them.
"""

from __future__ import annotations

import csv
import io
import json
import os
import tempfile
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, Protocol

import cv2
import h5py
import numpy as np

from engine.data.readers import read_rgb
from engine.data.samples import Sample
from engine.decision.display import heatmap_levels, overlay
from engine.decision.model import Decision, outcome
from engine.decision.regions import Region
from engine.errors import InvalidInputError
from engine.session.results import ScoreResult


def current_umask() -> int:
    """The process umask (read without changing it where the OS allows)."""
    try:
        with open("/proc/self/status", encoding="ascii") as status:
            for line in status:
                if line.startswith("Umask:"):
                    return int(line.split()[1], 8)
    except (OSError, ValueError, IndexError):
        pass
    # Elsewhere the only way to read it is to set it; restore at once.
    mask = os.umask(0o022)
    os.umask(mask)
    return mask


def file_mode() -> int:
    """Permission bits a new file gets from ``open()``: 0o666 less the umask (normally 0o644)."""
    return 0o666 & ~current_umask()


def dir_mode() -> int:
    """Permission bits a new folder gets from ``mkdir``: 0o777 less the umask (normally 0o755)."""
    return 0o777 & ~current_umask()


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
        # mkstemp makes the file 0600 (private); the result should read like any file the user
        # writes, so give it the umask's mode before it takes its final name.
        os.chmod(tmp, file_mode())
        os.replace(tmp, target)
    finally:
        tmp.unlink(missing_ok=True)


def write_text(target: Path, text: str) -> None:
    """Write ``text`` (UTF-8) to ``target`` atomically."""
    with atomic_path(target) as tmp:
        tmp.write_text(text, encoding="utf-8")


def sample_path(sample: Sample, root: Path | None = None) -> str:
    """The sample's image (or XYZ map, for a 3D-only sample) relative to ``root`` when inside it.

    Two samples can share a name after sanitising; their paths always tell them apart.
    """
    path = sample.rgb_path if sample.rgb_path is not None else sample.xyz_path
    if path is None:
        return ""
    if root is not None:
        try:
            return Path(path).relative_to(root).as_posix()
        except ValueError:
            pass  # outside the root (a sample listed from elsewhere): keep it whole
    return Path(path).as_posix()


class Findings(Protocol):
    """What the outputs record of one part's defects (``PartDefects`` or a report row)."""

    @property
    def regions(self) -> tuple[Region, ...]: ...
    @property
    def area_px(self) -> int: ...
    @property
    def area_mm2(self) -> float | None: ...


@dataclass(frozen=True)
class Verdicts:
    """A run's decision and what it found on every part (what the outputs record).

    Attributes:
        decision: The thresholds in force (and the known-good parts they came from).
        defects: Per part (dataset order) its defect regions under ``decision``.
    """

    decision: Decision
    defects: Sequence[Findings]


def _area(value: float | None) -> str:
    return "" if value is None else f"{value:.4f}"


def scores_csv(
    result: ScoreResult, root: Path | None = None, verdicts: Verdicts | None = None
) -> str:
    """The ranked table: rank, sample, score, label, defect_type, path (highest score first).

    Args:
        result: The scored run.
        root: The dataset folder; ``path`` is given relative to it.
        verdicts: When given, ``verdict``, ``defect_area_px`` and ``defect_area_mm2`` columns
            follow.
    """
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n")
    extra = ["verdict", "defect_area_px", "defect_area_mm2"] if verdicts is not None else []
    writer.writerow(["rank", "sample", "score", "label", "defect_type", "path", *extra])
    fails = verdicts.decision.fails(result.image_scores) if verdicts is not None else None
    for rank, index in enumerate(result.ranking(), start=1):
        sample = result.samples[index]
        label = "" if sample.label is None else sample.label
        score = f"{result.image_scores[index]:.6f}"
        path = sample_path(sample, root)
        row = [rank, sample.name, score, label, sample.defect_type or "", path]
        if verdicts is not None and fails is not None:
            found = verdicts.defects[index]
            row += ["fail" if fails[index] else "pass", found.area_px, _area(found.area_mm2)]
        writer.writerow(row)
    return buffer.getvalue()


def _info(info: Any) -> dict[str, Any] | None:
    """A backbone info dataclass as a JSON-friendly dict (tuples become lists)."""
    if info is None:
        return None
    return {k: list(v) if isinstance(v, tuple) else v for k, v in asdict(info).items()}


def results_document(
    result: ScoreResult,
    metrics: dict[str, dict[str, float]],
    extra: dict[str, Any] | None = None,
    root: Path | None = None,
    verdicts: Verdicts | None = None,
) -> dict[str, Any]:
    """Everything about the run as a JSON-serialisable dict.

    Args:
        result: The scored run.
        metrics: ``evaluate_all`` output: "metrics" and, for 2D+3D, "metrics_2d"/"metrics_3d".
        extra: More top-level keys (dataset, skipped files, warnings, ...).
        root: The dataset folder; each sample's ``path`` is given relative to it.
        verdicts: The decision: adds ``thresholds``, ``decision_notes``, ``outcome`` and per
            sample ``verdict``, ``defect_area_px``, ``defect_area_mm2``, ``regions``,
            ``known_good``.
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
                "path": sample_path(s, root),
                "rgb_path": str(s.rgb_path) if s.rgb_path else None,
                "xyz_path": str(s.xyz_path) if s.xyz_path else None,
            }
            for i, s in enumerate(result.samples)
        ],
    }
    if verdicts is not None:
        _add_verdicts(document, result, verdicts)
    for key, values in metrics.items():
        if values:
            document[key] = {k: float(v) for k, v in values.items()}
    document.update(extra or {})
    return document


def _add_verdicts(document: dict[str, Any], result: ScoreResult, verdicts: Verdicts) -> None:
    decision = verdicts.decision
    document["thresholds"] = decision.thresholds_document()
    document["decision_notes"] = list(decision.notes)
    counts = outcome(result, decision)
    document["outcome"] = {
        "pass": counts.passed,
        "fail": counts.failed,
        "false_rejects": None if counts.false_rejects is None else list(counts.false_rejects),
        "escapes": None if counts.escapes is None else list(counts.escapes),
    }
    fails = decision.fails(result.image_scores)
    for index, entry in enumerate(document["samples"]):
        found = verdicts.defects[index]
        entry.update(
            verdict="fail" if fails[index] else "pass",
            defect_area_px=found.area_px,
            defect_area_mm2=found.area_mm2,
            regions=[region.as_dict() for region in found.regions],
            known_good=entry["sample"] in decision.reference,
        )


def _background(sample: Sample, shape: tuple[int, int]) -> tuple[np.ndarray, str | None]:
    """The image under a heatmap, or black with the reason when it cannot be used any more.

    The image was read when the run scored it; if it was since removed or replaced, the scores
    are still valid, so the heatmap is drawn alone rather than losing the whole run.
    """
    black = np.zeros((*shape, 3), dtype=np.uint8)
    if sample.rgb_path is None:  # 3D-only sample: the heatmap alone
        return black, None
    try:
        rgb = read_rgb(sample.rgb_path)
    except (InvalidInputError, OSError) as error:
        return black, f"{sample.name}: heatmap drawn without its image ({error})"
    if rgb.shape[:2] != shape:
        return black, (
            f"{sample.name}: heatmap drawn without its image ({sample.rgb_path} is now "
            f"{rgb.shape[1]}x{rgb.shape[0]}, it was {shape[1]}x{shape[0]} when scored)"
        )
    return rgb, None


def write_maps(out_dir: Path, result: ScoreResult, pixel_cut: float | None = None) -> list[str]:
    """Heatmap PNGs (``maps/<sample>.png``, one colour scale for all parts) and ``maps.h5``.

    ``maps.h5`` holds ``maps/<sample>``: the float anomaly map at the image's original size, and
    for samples with 3D ``points/<sample>/xyz`` (P, 3) and ``points/<sample>/score`` (P,). The
    PNGs use the app's colormap and levels (:mod:`engine.decision.display`); ``pixel_cut``
    (the decision's pixel threshold, in the same units as the maps) is stored as an attribute.

    Returns:
        One warning per heatmap drawn without its image.
    """
    maps_dir = out_dir / "maps"
    maps_dir.mkdir(exist_ok=True)
    warnings = []
    levels = heatmap_levels(result.maps, pixel_cut)
    with atomic_path(out_dir / "maps.h5") as tmp, h5py.File(tmp, "w") as store:
        store.attrs["value_range"] = (float(result.maps.min()), float(result.maps.max()))
        store.attrs["modality"] = result.modality
        if pixel_cut is not None:
            store.attrs["pixel_threshold"] = float(pixel_cut)
        for index, sample in enumerate(result.samples):
            anomaly_map = result.anomaly_map(index)
            data = store.create_dataset(f"maps/{sample.name}", data=anomaly_map, compression="gzip")
            data.attrs["score"] = float(result.image_scores[index])
            cloud = result.points[index] if result.points else None
            if cloud is not None:
                group = store.create_group(f"points/{sample.name}")
                group.create_dataset("xyz", data=cloud.xyz, compression="gzip")
                group.create_dataset("score", data=cloud.scores, compression="gzip")
            rgb, warning = _background(sample, anomaly_map.shape)
            if warning is not None:
                warnings.append(warning)
            picture = overlay(rgb, anomaly_map, levels)
            ok, encoded = cv2.imencode(".png", picture[..., ::-1])
            if not ok:
                raise OSError(f"could not encode the heatmap of {sample.name}")
            with atomic_path(maps_dir / f"{sample.name}.png") as png:
                png.write_bytes(encoded.tobytes())
    return warnings


def write_outputs(
    out_dir: str | Path,
    result: ScoreResult,
    metrics: dict[str, dict[str, float]],
    extra: dict[str, Any] | None = None,
    *,
    maps: bool = True,
    root: Path | None = None,
    verdicts: Verdicts | None = None,
) -> Path:
    """Write the maps (optionally), then scores.csv and results.json into ``out_dir``.

    Args:
        out_dir: Target folder (created if needed).
        result: The scored run.
        metrics: ``evaluate_all`` output.
        extra: More top-level keys of results.json.
        maps: Whether to write ``maps/*.png`` and ``maps.h5``.
        root: The dataset folder; sample paths are written relative to it.
        verdicts: The decision and every part's defect regions (see :func:`results_document`).
    """
    path = ensure_writable(out_dir)
    extra = dict(extra or {})
    # maps first: a heatmap drawn without its image is noted in results.json
    pixel_cut = verdicts.decision.pixel.value if verdicts is not None else None
    map_warnings = write_maps(path, result, pixel_cut) if maps else []
    if map_warnings:
        extra["warnings"] = [*extra.get("warnings", []), *map_warnings]
    write_text(path / "scores.csv", scores_csv(result, root, verdicts))
    document = results_document(result, metrics, extra, root, verdicts)
    write_text(path / "results.json", json.dumps(document, indent=2) + "\n")
    return path
