"""Report export from the app: the PDF (summary on page 1, part blocks never split), a new
folder per export, and the whole export on a worker thread.

Uses the hand-made synthetic run of tests/engine/outputs/test_report.py (fast, with 3D points)
rather than a scored line, so the PDF's layout is checked in a second or two.
"""

from __future__ import annotations

import dataclasses
import inspect
import shutil
import subprocess
import threading
from datetime import datetime

import pytest
from PySide6.QtCore import QThread

import musc_gui.export
from engine.decision import DecisionPolicy, decide
from engine.outputs.report import ReportMeta, build_report
from engine.outputs.report_html import METRIC_LABELS
from musc_gui.export import PDF_NAME, export_pdf, export_report, export_steps
from musc_gui.state import AppState
from tests.engine.outputs.test_report import META, synthetic_result
from tests.environment import skip_or_fail

METRICS = {"metrics": {"image_auroc": 1.0}}


@pytest.fixture(scope="module")
def run(tmp_path_factory):
    result, dataset = synthetic_result(tmp_path_factory.mktemp("export") / "line")
    return result, dataset, decide(result, DecisionPolicy(image=0.5, pixel=0.5))


def _pages(path) -> list[str]:
    """The text of each page of a PDF (pdftotext)."""
    if shutil.which("pdftotext") is None:
        skip_or_fail("pdftotext is not installed (apt-get install poppler-utils)")
    text = subprocess.run(["pdftotext", "-layout", str(path), "-"], capture_output=True,
                          text=True, check=True).stdout  # fmt: skip
    return [page for page in text.split("\f") if page.strip()]


def test_pdf_summary_page_and_unsplit_part_blocks(qapp, tmp_path, run):
    result, dataset, decision = run
    note = "7 of 7 parts fail (100 %): more than half; mark known-good parts."  # a full page 1
    decision = dataclasses.replace(decision, notes=(note,))
    metrics = {key: {name: 0.5 for name in METRIC_LABELS} for key in ("metrics", "metrics_2d",
                                                                      "metrics_3d")}  # fmt: skip
    metrics["metrics"]["image_auroc"] = 1.0
    data = build_report(result, metrics, dataset, decision, META)
    pages = _pages(export_pdf(tmp_path / PDF_NAME, data))
    first = " ".join(pages[0].split())
    for expected in ("Defect report: line", "2025-03-01 14:30:05", "MuSc Inspector 9.8.7",
                     "Lot L-17", "Operator Dana Q", "3 fail", "4 pass",
                     f"{decision.image.value:.4f}", "Image AUROC 100.0 %",
                     "Page 1 of", "mark known-good parts.", "Reviewed by"):  # fmt: skip
        assert expected in first, expected
    assert "Ranked parts" not in first and "Appendix" in " ".join(pages)
    assert f"Page {len(pages)} of {len(pages)}" in pages[-1]
    for part in data.failing:
        holding = [page for page in pages if f"{part.row.name}: FAIL" in page]
        assert len(holding) == 1, part.row.name
    # A block split by a page break leaves its heading without its captions on one page.
    for page in pages:
        headings = page.count(": FAIL")
        assert headings == page.count("Anomaly heatmap") == page.count("3D points, defect")


class _ExportThread(QThread):
    """Runs export_steps in a QThread, as the app's worker does, and keeps what came back."""

    def __init__(self, run, parent_folder, meta) -> None:
        super().__init__()
        result, dataset, decision = run
        self.steps = export_steps(result, METRICS, dataset, decision, meta, parent_folder)
        self.events: list = []
        self.written = None
        self.error: BaseException | None = None

    def run(self) -> None:
        self.thread_name = threading.current_thread().name
        try:
            while True:
                self.events.append(next(self.steps))
        except StopIteration as stop:
            self.written = stop.value
        except BaseException as error:  # noqa: BLE001 - reported to the test thread
            self.error = error


def _export_in_thread(run, parent, meta=META):
    worker = _ExportThread(run, parent, meta)
    worker.start()
    assert worker.wait(120_000) and worker.error is None, worker.error
    assert worker.thread_name != threading.main_thread().name
    return worker.events, worker.written


def test_export_steps_run_on_a_worker_thread(qapp, tmp_path, run):
    result = run[0]
    events, written = _export_in_thread(run, tmp_path)
    folder = tmp_path / "musc-report-line-20250301-143005"
    assert all(path.parent in (folder, folder / "masks", folder / "ply") for path in written)
    names = {p.relative_to(folder).as_posix() for p in written}
    assert {"report.html", "report.csv", "report.json", PDF_NAME} <= names
    assert {f"masks/{name}.png" for name in result.names} <= names
    assert (folder / PDF_NAME).read_bytes().startswith(b"%PDF")
    parts = [e for e in events if e.stage == "build report"]
    assert [e.done for e in parts] == list(range(1, len(result.samples) + 1))
    assert events[-1].stage == "write report"


def test_export_uses_no_gui_thread_only_classes():
    """QPixmap and widgets may only be used in the GUI thread; the offscreen platform used by
    the tests tolerates them elsewhere, so keep them out of the module altogether."""
    names = set(vars(musc_gui.export))
    assert not names & {"QPixmap", "QWidget", "QMessageBox", "QApplication", "QtWidgets"}
    assert "QtWidgets" not in inspect.getsource(musc_gui.export)


def test_each_export_gets_its_own_folder(qapp, tmp_path, run):
    _, first = _export_in_thread(run, tmp_path)
    before = {p: p.read_bytes() for p in first}
    _, second = _export_in_thread(run, tmp_path)
    assert first[0].parent != second[0].parent
    assert second[0].parent.name.endswith("-2")
    assert {p: p.read_bytes() for p in first} == before


def test_a_cancelled_export_leaves_no_folder(qapp, tmp_path, run):
    result, dataset, decision = run
    steps = export_steps(result, METRICS, dataset, decision, META, tmp_path)
    for event in steps:
        if event.stage == "write report":  # files written, the PDF not yet
            break
    assert list(tmp_path.iterdir())
    steps.close()  # what a cancelled worker does with its generator
    assert not list(tmp_path.iterdir())


def test_export_report_from_the_app_state(qapp, tmp_path, run):
    result, dataset, decision = run
    state = AppState(result.config)
    state.dataset = dataset
    state.set_result(result)
    state.set_decision(decision)
    meta = ReportMeta(datetime(2025, 1, 2, 3, 4, 5))
    written = export_report(state, tmp_path, meta=meta)
    assert written[0].parent.name == "musc-report-line-20250102-030405"
    assert (written[0].parent / PDF_NAME).exists()


@pytest.mark.parametrize("fillers", range(15, 40, 2))
def test_a_heading_always_starts_the_page_of_its_table(qapp, fillers):
    from PySide6.QtCore import QSizeF
    from PySide6.QtGui import QTextDocument

    from musc_gui.export import keep_tables_together

    document = QTextDocument()
    document.setPageSize(QSizeF(400, 600))
    document.setHtml("<p>x</p>" * fillers + "<h2>Failing parts</h2><table border=1><tr><td>"
                     + "line<br>" * 25 + "</td></tr></table>")  # fmt: skip
    keep_tables_together(document)
    layout = document.documentLayout()
    table = document.rootFrame().childFrames()[0]
    heading = document.findBlock(table.firstPosition() - 1)
    top, bottom = layout.frameBoundingRect(table).top(), layout.frameBoundingRect(table).bottom()
    assert heading.text() == "Failing parts"
    assert int(layout.blockBoundingRect(heading).top() // 600) == int(top // 600)  # not orphaned
    assert int(top // 600) == int((bottom - 1) // 600)  # not split
