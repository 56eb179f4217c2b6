"""Report export from the GUI: the PDF, the whole folder, and asking before overwriting."""

from __future__ import annotations

import shutil
import subprocess

import pytest

from musc_gui.export import export_pdf, export_report, report_from_state
from musc_gui.state import AppState
from tests.environment import skip_or_fail


@pytest.fixture
def state(qapp, scored_line):
    session, result = scored_line
    state = AppState(result.config)
    state.dataset = session.dataset
    state.set_result(result)
    state.set_threshold(float(sorted(result.image_scores)[-3]))  # the top three parts fail
    return state


def test_pdf_is_written(tmp_path, state):
    data = report_from_state(state)
    assert len(data.failing) == 3
    path = export_pdf(tmp_path / "report.pdf", data)
    payload = path.read_bytes()
    assert payload.startswith(b"%PDF")
    assert len(payload) > 20_000  # text plus six embedded pictures


def test_pdf_text_names_each_failing_part(tmp_path, state):
    if shutil.which("pdftotext") is None:
        skip_or_fail("pdftotext is not installed (apt-get install poppler-utils)")
    data = report_from_state(state)
    path = export_pdf(tmp_path / "report.pdf", data)
    text = subprocess.run(["pdftotext", "-layout", str(path), "-"], capture_output=True,
                          text=True, check=True).stdout  # fmt: skip
    assert data.failing and all(part.row.name in text for part in data.failing)
    assert "MuSc" in text or "defect" in text.lower()


def test_export_folder_and_overwrite_question(tmp_path, state):
    folder = tmp_path / "out"
    asked = []
    written = export_report(None, state, folder, ask_overwrite=asked.append)
    assert not asked  # a fresh folder needs no question
    names = {p.name for p in written}
    assert {"report.html", "report.pdf", "report.csv", "report.json"} <= names
    assert len(list((folder / "masks").glob("*.png"))) == len(state.result.samples)
    assert len(list((folder / "ply").glob("*.ply"))) == len(state.result.samples)

    (folder / "report.csv").write_text("mine")
    before = {p: p.stat().st_mtime_ns for p in folder.rglob("*") if p.is_file()}

    def decline(existing):
        asked.append(existing)
        return False

    assert export_report(None, state, folder, ask_overwrite=decline) is None
    assert len(asked) == 1 and folder / "report.csv" in asked[0]
    assert (folder / "report.csv").read_text() == "mine"
    assert {p: p.stat().st_mtime_ns for p in folder.rglob("*") if p.is_file()} == before

    assert export_report(None, state, folder, ask_overwrite=lambda existing: True)
    assert (folder / "report.csv").read_text().startswith("rank,sample")
