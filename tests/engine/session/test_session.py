"""The staged session: end to end with a fake backbone, caching, cancellation, bad input."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from engine.config import MuscConfig
from engine.data.samples import DatasetIndex, Sample
from engine.errors import CancelledError, InvalidInputError
from engine.progress import run_to_completion
from engine.session.session import InspectionSession
from tests.engine.fakes import PixelPatchBackbone


def _write_line(root: Path, n_good: int = 8, n_bad: int = 3) -> DatasetIndex:
    """Grey parts with mild noise; defective ones carry a bright square."""
    rng = np.random.default_rng(0)
    samples = []
    for index in range(n_good + n_bad):
        image = np.full((64, 64, 3), 100, np.uint8) + rng.integers(0, 6, (64, 64, 3), np.uint8)
        defective = index >= n_good
        if defective:
            image[20:30, 30:40] = 250
        path = root / f"{index:03d}.png"
        Image.fromarray(image).save(path)
        samples.append(Sample(name=f"s{index:03d}", rgb_path=path, label=int(defective)))
    return DatasetIndex(root=root, layout="folder", category="line", samples=samples)


def test_defective_parts_rank_first_and_rescore_reuses_features(tmp_path: Path) -> None:
    backbone = PixelPatchBackbone()
    session = InspectionSession(_write_line(tmp_path), MuscConfig(batch_size=4), backbone=backbone)
    result = run_to_completion(session.run())
    assert result.maps.shape == (11, 224, 224) and result.modality == "2d"
    assert set(result.ranking()[:3]) == {8, 9, 10}
    calls = backbone.calls
    lower = session.rescore(x_percent=10)
    assert backbone.calls == calls  # no re-extraction
    assert lower.config.x_percent == 10
    assert not np.allclose(lower.max_scores, result.max_scores)
    assert session.update(MuscConfig(batch_size=4, x_percent=50)) == []
    stale = session.update(MuscConfig(batch_size=4, r_list=(1, 3)))
    assert stale == ["aggregate 2D", "mutual scoring 2D"]
    run_to_completion(session.run())
    assert backbone.calls == calls
    anomaly_map = result.anomaly_map(9)
    assert anomaly_map.shape == (64, 64)
    assert np.unravel_index(anomaly_map.argmax(), anomaly_map.shape)[0] in range(16, 34)


def test_results_are_deterministic(tmp_path: Path) -> None:
    dataset = _write_line(tmp_path)
    first = run_to_completion(InspectionSession(dataset, backbone=PixelPatchBackbone()).run())
    second = run_to_completion(InspectionSession(dataset, backbone=PixelPatchBackbone()).run())
    assert np.array_equal(first.image_scores, second.image_scores)


def test_cancel_stops_between_steps_and_the_session_stays_usable(tmp_path: Path) -> None:
    session = InspectionSession(
        _write_line(tmp_path), MuscConfig(batch_size=2), backbone=PixelPatchBackbone()
    )
    steps = session.run()
    next(steps)
    next(steps)
    session.cancel.cancel()
    with pytest.raises(CancelledError):
        run_to_completion(steps)
    session.cancel = type(session.cancel)()
    assert run_to_completion(session.run()).image_scores.shape == (11,)


def test_unreadable_file_is_skipped_and_reported(tmp_path: Path) -> None:
    dataset = _write_line(tmp_path)
    broken = tmp_path / "broken.png"
    broken.write_bytes(b"not a png at all")
    dataset.samples.insert(2, Sample(name="broken", rgb_path=broken))
    session = InspectionSession(dataset, backbone=PixelPatchBackbone())
    result = run_to_completion(session.run())
    assert "broken" not in result.names and len(result.names) == 11
    assert [s.path for s in session.skipped] == [broken]
    assert "broken.png" in session.skipped[0].reason


def test_fewer_than_two_usable_samples_is_a_clear_error(tmp_path: Path) -> None:
    dataset = _write_line(tmp_path, n_good=1, n_bad=0)
    dataset.samples.append(Sample(name="gone", rgb_path=tmp_path / "missing.png"))
    with pytest.raises(InvalidInputError, match="at least 2"):
        run_to_completion(InspectionSession(dataset, backbone=PixelPatchBackbone()).run())


def test_few_samples_warn(tmp_path: Path) -> None:
    session = InspectionSession(_write_line(tmp_path, 3, 1), backbone=PixelPatchBackbone())
    run_to_completion(session.run())
    assert any("below 5" in w for w in session.warnings)


def test_subsets_score_every_sample(tmp_path: Path) -> None:
    session = InspectionSession(
        _write_line(tmp_path, 10, 2), MuscConfig(subsets=2), backbone=PixelPatchBackbone()
    )
    result = run_to_completion(session.run())
    assert np.isfinite(result.image_scores).all() and result.image_scores.shape == (12,)


def test_clipped_subsets_are_said_once(tmp_path: Path) -> None:
    session = InspectionSession(
        _write_line(tmp_path, 6, 1), MuscConfig(subsets=20), backbone=PixelPatchBackbone()
    )
    run_to_completion(session.run())
    clipped = [w for w in session.warnings if "clipped" in w]
    assert clipped == [
        "subsets g=20 clipped to 3: every subset needs at least 2 of the 7 samples "
        "(4 or more to split at all)."
    ]
    run_to_completion(session.run())  # running again reports the same note once
    assert sum("clipped" in w for w in session.warnings) == 1
