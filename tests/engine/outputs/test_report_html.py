"""What the report says: page 1 (the summary to sign), mistakes by name, the appendix in words.

Page 1 is everything before the first ``page-break-before``: that is where the PDF breaks too
(tests/gui/test_export.py checks the PDF's first page itself).
"""

from __future__ import annotations

import dataclasses
from html.parser import HTMLParser

import numpy as np
import pytest

from engine.decision import DecisionPolicy, decide
from engine.outputs.report import build_report
from engine.outputs.report_html import config_value, render_html
from tests.engine.outputs.test_report import META, synthetic_result

METRICS = {"metrics": {"image_auroc": 0.9375, "pixel_f1_max": 0.5, "aupro": 0.8125}}


class _Text(HTMLParser):
    def __init__(self) -> None:
        super().__init__()
        self.parts: list[str] = []

    def handle_data(self, data: str) -> None:
        self.parts.append(data)


def text_of(html: str) -> str:
    """The visible text of ``html``, whitespace collapsed."""
    parser = _Text()
    parser.feed(html)
    return " ".join(" ".join(parser.parts).split())


def page_one(html: str) -> str:
    return text_of(html.split("page-break-before")[0])


@pytest.fixture(scope="module")
def run(tmp_path_factory):
    return synthetic_result(tmp_path_factory.mktemp("html") / "line")


@pytest.fixture(scope="module")
def mistaken(run):
    """The first good part scores high (a false reject), the first defective low (an escape)."""
    result, dataset = run
    scores = np.array(result.image_scores)
    good = next(i for i, s in enumerate(result.samples) if s.label == 0)
    bad = next(i for i, s in enumerate(result.samples) if s.label == 1)
    scores[good], scores[bad] = 0.95, 0.05
    result = dataclasses.replace(result, image_scores=scores)
    decision = decide(result, DecisionPolicy(image=0.5, pixel=0.5))
    decision = dataclasses.replace(decision, notes=("7 of 9 parts fail: check the cut.",))
    data = build_report(result, METRICS, dataset, decision, META)
    return data, result.names[good], result.names[bad]


def test_page_one_holds_the_summary(mistaken):
    data = mistaken[0]
    text = page_one(render_html(data))
    decision = data.decision
    for expected in ("2025-03-01 14:30:05", "MuSc Inspector 9.8.7", str(data.dataset["root"]),
                     "Category line", "Modality 2D + 3D", "of 7 parts inspected", "Lot L-17",
                     "Operator Dana Q", "3 fail", "4 pass", f"{decision.image.value:.4f}",
                     decision.image.how, f"{decision.pixel.value:.4f}", decision.pixel.how,
                     "7 of 9 parts fail: check the cut.", "Image AUROC 93.8 %",
                     "Pixel F1 (best cut) 50.0 %", "AUPRO (up to 30% false positives) 81.2 %",
                     "Reviewed by"):  # fmt: skip
        assert expected in text, expected
    assert "Ranked parts" not in text and "Appendix" not in text


def test_false_rejects_and_escapes_are_named(mistaken):
    data, good, bad = mistaken
    text = page_one(render_html(data))
    assert f"False rejects (1): good parts that fail {good}" in text
    assert f"Escapes (1): defective parts that pass {bad}" in text
    assert "Defective parts caught 2 of 3 (66.7 %)" in text
    assert "Good parts rejected 1 of 4" in text


def test_no_ground_truth_section_without_labels(run):
    result, dataset = run
    unlabelled = [dataclasses.replace(s, label=None, defect_type=None) for s in result.samples]
    result = dataclasses.replace(result, samples=unlabelled)
    data = build_report(result, {}, dataset, decide(result, DecisionPolicy(0.5, 0.5)), META)
    text = text_of(render_html(data))
    assert "False rejects" not in text and "Ground truth" not in text


def test_failing_parts_and_ranked_table(mistaken):
    data, good, bad = mistaken
    text = text_of(render_html(data))
    assert f"#1 {good}: FAIL" in text  # the false reject now ranks first
    assert f"{bad}: FAIL" not in text
    ranked = text.split("Ranked parts")[1].split("Failing parts")[0]
    assert ranked.index(good) < ranked.index(bad)
    assert ranked.count("FAIL") == 3 and ranked.count("pass") == 4
    for part in data.failing:
        row = part.row
        assert f"{row.name}: FAIL" in text
        if row.regions:
            assert f"{row.area_px} px" in text


def test_appendix_speaks_words(mistaken):
    text = text_of(render_html(mistaken[0])).split("Appendix")[1]
    assert "Cross-modal enhancement automatic" in text  # cae=None
    assert "Remove background on" in text and "Black RGB background off" in text
    assert "Degrees r 1, 3, 5" in text
    assert "read-out 1.5 s" in text
    for raw in ("None", "True", "False"):
        assert raw not in text.split(), raw


@pytest.mark.parametrize(("value", "words"), [(None, "automatic"), ("auto", "automatic"),
                                              (True, "on"), (False, "off"), ((1, 3), "1, 3"),
                                              (0.5, "0.5"), ("sum", "sum")])  # fmt: skip
def test_config_values_in_words(value, words):
    assert config_value(value) == words
