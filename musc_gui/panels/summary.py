"""Summary of the open dataset: samples, modalities, ground truth, skipped files, warnings."""

from __future__ import annotations

import html

from PySide6.QtWidgets import QTextBrowser, QVBoxLayout, QWidget

from engine.data.samples import DatasetIndex
from musc_gui.state import AppState


class SummaryPanel(QWidget):
    """Read-only text about the dataset plus engine notes (backbone choices, warnings)."""

    def __init__(self, state: AppState, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.state = state
        self.notes: list[str] = []
        self.skipped: list = []
        self.warnings: list[str] = []
        self.text = QTextBrowser()
        self.text.setOpenLinks(False)
        layout = QVBoxLayout(self)
        layout.setContentsMargins(0, 0, 0, 0)
        layout.addWidget(self.text)
        state.dataset_changed.connect(self._dataset_changed)
        self.refresh()

    def _dataset_changed(self, _dataset: DatasetIndex | None) -> None:
        self.notes, self.skipped, self.warnings = [], [], []
        self.refresh()

    def set_session_info(self, notes: list[str], skipped: list, warnings: list[str]) -> None:
        """Show backbone choices and the session's skipped files and warnings."""
        self.notes, self.skipped, self.warnings = list(notes), list(skipped), list(warnings)
        self.refresh()

    def refresh(self) -> None:
        """Re-render the text."""
        dataset = self.state.dataset
        if dataset is None:
            self.text.setHtml("<p>No dataset open. Use <b>File → Open folder…</b> or drop a "
                              "folder on the window.</p>")  # fmt: skip
            return
        samples = dataset.samples
        n_rgb = sum(s.rgb_path is not None for s in samples)
        n_xyz = sum(s.xyz_path is not None for s in samples)
        labels = [s.label for s in samples if s.label is not None]
        types: dict[str, int] = {}
        for s in samples:
            types[s.defect_type or "?"] = types.get(s.defect_type or "?", 0) + 1
        esc = html.escape
        rows = [
            ("Folder", esc(str(dataset.root))),
            ("Layout", esc(f"{dataset.layout} / {dataset.category}")),
            ("Samples", f"{len(samples)} ({n_rgb} RGB, {n_xyz} XYZ)"),
            ("Modalities", "2D + 3D" if n_xyz and n_rgb else ("3D" if n_xyz else "2D")),
            ("Ground truth", f"{len(labels)} labelled, {sum(labels)} defective"
             if labels else "none (unlabelled)"),
            ("Types", esc(", ".join(f"{t}: {n}" for t, n in sorted(types.items())))),
        ]  # fmt: skip
        parts = ["<table>"] + [f"<tr><td><b>{k}</b>&nbsp;</td><td>{v}</td></tr>" for k, v in rows]
        parts.append("</table>")
        if self.notes:
            parts.append("<p><b>Backbones</b></p><ul>")
            parts += [f"<li>{esc(n)}</li>" for n in self.notes] + ["</ul>"]
        skipped = self.skipped or dataset.skipped
        if skipped:
            parts.append(f"<p><b>Skipped files ({len(skipped)})</b></p><ul>")
            parts += [f"<li>{esc(str(s.path))}: {esc(s.reason)}</li>" for s in skipped[:50]]
            parts.append("</ul>")
        warnings = self.warnings or dataset.warnings
        if warnings:
            parts.append("<p><b>Warnings</b></p><ul>")
            parts += [f"<li style='color:#b35c00'>{esc(w)}</li>" for w in warnings] + ["</ul>"]
        self.text.setHtml("".join(parts))

    def plain_text(self) -> str:
        """The shown text without markup (for tests and copying)."""
        return self.text.toPlainText()
