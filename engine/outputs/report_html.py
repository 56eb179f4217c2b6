"""The defect report as HTML: page 1 a summary to sign, then the ranked parts, one block per
failing part, and an appendix (configuration, models, timings).

The same HTML feeds the self-contained report.html (pictures as data URIs) and the PDF, which
Qt's ``QTextDocument`` renders (``musc_gui.export``). That renderer knows a subset of HTML 4 and
CSS: tables, ``bgcolor``, ``page-break-before``, but not ``page-break-inside``. So every block
that must stay on one page (each failing part, with its heading inside) is a one-cell table of
class ``keep``; the PDF writer moves such a table to the next page when it would be split, and
browsers honour the ``page-break-inside: avoid`` of the style sheet.
"""

from __future__ import annotations

import base64
import html
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from engine.config import MuscConfig
from engine.evaluation.metrics import MAX_FPR
from engine.outputs.report_files import max_height_mm

if TYPE_CHECKING:
    from engine.decision.regions import Region
    from engine.decision.thresholds import Threshold
    from engine.outputs.report import FailingPart, PartRow, ReportData

ImageSource = Callable[[str, bytes], str]

KEEP = "keep"  # class of the one-cell tables kept on one page
PICTURE_PX = 190  # three pictures across an A4 page (180 mm at 96 px per inch = 680 px)
SNAPSHOT_PX = 280
MAX_NAMES = 40  # names listed on page 1; report.csv / report.json list them all
MAX_REGIONS = 8
FAIL_BG, PASS_BG, HEAD_BG, NOTE_BG = "#f6d5d5", "#dcefdc", "#e8e8e8", "#fff1c7"
METRIC_LABELS = {
    "image_auroc": "Image AUROC",
    "image_ap": "Image average precision",
    "image_f1_max": "Image F1 (best cut)",
    "pixel_auroc": "Pixel AUROC",
    "pixel_ap": "Pixel average precision",
    "pixel_f1_max": "Pixel F1 (best cut)",
    "aupro": f"AUPRO (up to {MAX_FPR:.0%} false positives)",
    "pro_cflow": "PRO (CFlow variant)",
}
MODALITY_WORDS = {"2d": "2D (images)", "3d": "3D (point clouds)", "2d+3d": "2D + 3D"}
STYLE = (
    "body { font-family: sans-serif; font-size: 10pt; } h1 { font-size: 18pt; }"
    " h2 { font-size: 13pt; } h3 { font-size: 11pt; margin-top: 10px; }"
    " table.keep { page-break-inside: avoid; break-inside: avoid; }"
    " .small { font-size: 8pt; color: #555555; }"
)


def data_uri(picture: bytes) -> str:
    """PNG or JPEG bytes as a ``data:`` URI, for a self-contained HTML file."""
    kind = "jpeg" if picture.startswith(b"\xff\xd8") else "png"
    return f"data:image/{kind};base64," + base64.b64encode(picture).decode("ascii")


def _e(value: object) -> str:
    return html.escape(str(value))


def _num(value: float | None, digits: int = 2, empty: str = "–") -> str:
    return empty if value is None else f"{value:.{digits}f}"


def _pct(value: float) -> str:
    return f"{100.0 * value:.1f} %"


def _table(rows: list[list[str]], header: list[str] | None = None, width: str = "100%") -> str:
    """A bordered table of already-escaped cells; the first column of a key/value table bold."""
    out = [f"<table border='1' cellspacing='0' cellpadding='4' width='{width}'>"]
    if header:
        out.append("<tr>" + "".join(f"<th bgcolor='{HEAD_BG}' align='left'>{h}</th>"
                                    for h in header) + "</tr>")  # fmt: skip
    for cells in rows:
        out.append("<tr>" + "".join(f"<td>{c}</td>" for c in cells) + "</tr>")
    return "".join(out) + "</table>"


def _pairs(pairs: list[tuple[str, str]]) -> str:
    return _table([[f"<b>{_e(k)}</b>", v] for k, v in pairs])


def config_value(value: Any) -> str:
    """A configuration value in words: "automatic", "on"/"off", lists joined."""
    if value is None or value == "auto":
        return "automatic"
    if isinstance(value, bool):
        return "on" if value else "off"
    if isinstance(value, (list, tuple)):
        return ", ".join(str(v) for v in value)
    if isinstance(value, float):
        return f"{value:g}"
    return str(value)


def _threshold_row(name: str, cut: Threshold) -> list[str]:
    how = _e(cut.how)
    if cut.expected_false_reject is not None:
        how += f"<br>Expected false rejects: {_pct(cut.expected_false_reject)} of good parts"
    return [f"<b>{name}</b>", f"{cut.value:.4f}", how]


def _names(names: tuple[str, ...]) -> str:
    if not names:
        return "none"
    shown = ", ".join(_e(n) for n in names[:MAX_NAMES])
    more = len(names) - MAX_NAMES
    return shown + (f" … and {more} more (see report.csv)" if more > 0 else "")


def _truth_section(data: ReportData) -> str:
    counts = data.outcome
    if counts.false_rejects is None or counts.escapes is None:
        return ""
    labels = [r.label for r in data.rows]
    good, bad = labels.count(0), labels.count(1)
    caught = bad - len(counts.escapes)
    share = f" ({_pct(caught / bad)})" if bad else ""
    rates = [
        ("Defective parts caught", f"{caught} of {bad}{share}"),
        ("Good parts rejected", f"{len(counts.false_rejects)} of {good}"),
        (f"False rejects ({len(counts.false_rejects)}): good parts that fail",
         _names(counts.false_rejects)),
        (f"Escapes ({len(counts.escapes)}): defective parts that pass", _names(counts.escapes)),
    ]  # fmt: skip
    out = ["<h2>Against the ground truth</h2>", _pairs(rates)]
    columns = [(k, v) for k, v in (("metrics", "All"), ("metrics_2d", "2D alone"),
                                   ("metrics_3d", "3D alone")) if data.metrics.get(k)]  # fmt: skip
    keys = [k for k in METRIC_LABELS if any(k in data.metrics[c] for c, _ in columns)]
    if keys:
        rows = [[_e(METRIC_LABELS[k])] + [_pct(data.metrics[c][k]) if k in data.metrics[c]
                                          else "–" for c, _ in columns] for k in keys]  # fmt: skip
        out += ["<p></p>", _table(rows, ["Metric", *(t for _, t in columns)], width="70%")]
    return "".join(out)


def _facts(data: ReportData) -> str:
    """Date, software, dataset, lot and operator: two label/value pairs per row."""
    meta, info = data.meta, data.dataset
    modality = MODALITY_WORDS.get(data.result.modality, data.result.modality)
    rows = [
        ("Created", f"{meta.created:%Y-%m-%d %H:%M:%S}",
         "Software", f"MuSc Inspector {_e(meta.software_version)}"),
        ("Category", _e(info.get("category", "–")), "Modality", _e(modality)),
        ("Lot", _e(meta.lot) or "–", "Operator", _e(meta.operator) or "–"),
    ]  # fmt: skip
    cells = [f"<tr><td><b>{a}</b></td><td>{b}</td><td><b>{c}</b></td><td>{d}</td></tr>"
             for a, b, c, d in rows]  # fmt: skip
    cells.insert(1, f"<tr><td><b>Dataset folder</b></td><td colspan='3'>"
                    f"{_e(info.get('root', 'unknown'))}</td></tr>")  # fmt: skip
    table = "<table border='1' cellspacing='0' cellpadding='4' width='100%'>"
    return table + "".join(cells) + "</table>"


def _summary(data: ReportData) -> str:
    counts = data.outcome
    title = f"Defect report{': ' + _e(data.category) if data.category else ''}"
    big = "<font size='5'><b>{}</b></font>"
    verdict = (f"<table cellpadding='8' cellspacing='0' width='100%'><tr>"
               f"<td bgcolor='{FAIL_BG}' width='35%'>{big.format(f'{counts.failed} fail')}</td>"
               f"<td bgcolor='{PASS_BG}' width='35%'>{big.format(f'{counts.passed} pass')}</td>"
               f"<td>of {len(data.rows)} parts inspected</td></tr></table>")  # fmt: skip
    cuts = _table([_threshold_row("Image cut", data.decision.image),
                   _threshold_row("Pixel cut", data.decision.pixel)],
                  ["Threshold", "Value", "How it was chosen"])  # fmt: skip
    out = [f"<h1>{title}</h1>", _facts(data), "<h2>Result</h2>", verdict,
           "<p class='small'>A part fails when its image score is at or above the image cut; "
           "map pixels at or above the pixel cut form its defect regions.</p>",
           "<h2>Thresholds</h2>", cuts]  # fmt: skip
    notes = [*data.decision.notes, *data.warnings]
    if notes:
        cells = "".join(f"<p><b>Note:</b> {_e(n)}</p>" for n in notes)
        out.append(f"<p></p><table cellpadding='6' width='100%'><tr><td bgcolor='{NOTE_BG}'>"
                   f"{cells}</td></tr></table>")  # fmt: skip
    out.append(_truth_section(data))
    blank = "<td width='22%' height='34'></td>"
    out.append("<h2>Approval</h2><table border='1' cellspacing='0' cellpadding='4' width='100%'>"
               f"<tr><td>Reviewed by</td>{blank}<td>Date</td>{blank}<td>Signature</td>{blank}"
               "</tr></table>")  # fmt: skip
    return "".join(out)


def _truth_words(row: PartRow) -> str:
    if row.label is None:
        return ""
    return _e(row.defect_type or ("good" if row.label == 0 else "defective"))


def _ranked(data: ReportData) -> str:
    labelled = any(row.label is not None for row in data.rows)
    header = ["Rank", "Part", "Score", "Verdict", "Regions", "Area px", "Area mm²",
              "Height mm", *(["Ground truth"] if labelled else [])]  # fmt: skip
    out = ["<h2 style='page-break-before: always'>Ranked parts</h2>",
           "<table border='1' cellspacing='0' cellpadding='3' width='100%'><tr>"]  # fmt: skip
    out += [f"<th bgcolor='{HEAD_BG}'>{h}</th>" for h in header]
    out.append("</tr>")
    for row in data.rows:
        verdict = (f"<td bgcolor='{FAIL_BG}'><b>FAIL</b></td>" if row.failed
                   else f"<td bgcolor='{PASS_BG}'>pass</td>")  # fmt: skip
        cells = [str(row.rank), _e(row.name), f"{row.score:.4f}"]
        rest = [
            str(len(row.regions)),
            str(row.area_px),
            _num(row.area_mm2),
            _num(max_height_mm(row), 2, "–"),
            *([_truth_words(row)] if labelled else []),
        ]
        out.append("<tr>" + "".join(f"<td>{c}</td>" for c in cells) + verdict
                   + "".join(f"<td align='right'>{c}</td>" for c in rest) + "</tr>")  # fmt: skip
    return "".join(out) + "</table>"


def _height(region: Region) -> str:
    if region.height_mm is None:
        return "–"
    kind = "bump" if region.height_mm > 0 else "dent"
    return f"{region.height_mm:+.2f} ({kind})"


def _regions(row: PartRow) -> str:
    if not row.regions:
        return ("<p>No region reaches the pixel cut: the part fails on its image score "
                "alone.</p>")  # fmt: skip
    rows = [[str(n), str(r.area_px), _num(r.area_mm2), _height(r),
             f"{r.centroid[0]:.0f}, {r.centroid[1]:.0f}"]
            for n, r in enumerate(row.regions[:MAX_REGIONS], start=1)]  # fmt: skip
    more = len(row.regions) - MAX_REGIONS
    note = f"<p class='small'>… and {more} smaller regions (report.json)</p>" if more > 0 else ""
    header = ["#", "Area px", "Area mm²", "Height mm", "Centre x, y"]
    return _table(rows, header) + note


def _part(part: FailingPart, data: ReportData, src: ImageSource) -> str:
    row = part.row
    area = f"{row.area_px} px" + (f" = {row.area_mm2:.2f} mm²" if row.area_mm2 is not None
                                  else "")  # fmt: skip
    truth = f"; ground truth: {_truth_words(row)}" if row.label is not None else ""
    lead = (f"Image score <b>{row.score:.4f}</b> (cut {data.decision.image.value:.4f}); "
            f"{len(row.regions)} defect region(s), {area}{truth}")  # fmt: skip

    def img(kind: str, picture: bytes, width: int) -> str:
        return f"<img src='{src(f'{row.name}/{kind}', picture)}' width='{width}' alt='{kind}'>"

    outline_words = "Defect outline (cyan)" + (", ground truth (green)" if part.has_truth else "")
    captions = ["Image", "Anomaly heatmap", _e(outline_words)]
    pictures = [img(k, data, PICTURE_PX) for k, data in (("image", part.image),
                ("overlay", part.overlay), ("outline", part.outline))]  # fmt: skip
    cells = "".join(f"<td valign='top'>{p}<br><span class='small'>{c}</span></td>"
                    for p, c in zip(pictures, captions, strict=True))  # fmt: skip
    lower = _regions(row)
    if part.snapshot is not None:
        where = "3D view of the app" if part.snapshot_from_app else "3D points, defect framed"
        lower = (f"<table width='100%' cellpadding='0' cellspacing='0'><tr>"
                 f"<td valign='top' width='{SNAPSHOT_PX + 8}'>"
                 f"{img('snapshot', part.snapshot, SNAPSHOT_PX)}<br>"
                 f"<span class='small'>{where}</span></td><td valign='top'>{lower}</td>"
                 "</tr></table>")  # fmt: skip
    return (f"<table class='{KEEP}' width='100%' cellpadding='4' cellspacing='0' border='1'>"
            f"<tr><td bgcolor='{HEAD_BG}'><b>#{row.rank} {_e(row.name)}: FAIL</b></td></tr>"
            f"<tr><td>{lead}<table cellpadding='0' cellspacing='4'><tr>{cells}</tr></table>"
            f"{lower}</td></tr></table><p></p>")  # fmt: skip


def _appendix(data: ReportData) -> str:
    result, decision = data.result, data.decision
    size = result.image_sizes[0] if result.image_sizes else (0, 0)
    min_px = (
        f"{decision.min_area_px} px"
        if decision.min_area_px is not None
        else f"automatic (0.01 % of each image, {decision.min_area_for(size)} px here)"
    )
    min_mm2 = "none" if decision.min_area_mm2 is None else f"{decision.min_area_mm2:g} mm²"
    rules = [("Minimum defect area", min_px), ("Minimum defect surface", min_mm2),
             ("Colour scale", f"inferno from {data.levels[0]:.4f} (normal level) to "
                              f"{data.levels[1]:.4f} (highest value)")]  # fmt: skip
    info = MuscConfig.field_info()
    config = [[f"<b>{_e(info[k]['title'])}</b>", _e(config_value(v))]
              for k, v in result.config.to_dict().items()]  # fmt: skip
    half = (len(config) + 1) // 2  # two label/value pairs per row: half the height
    config += [["", ""]] * (2 * half - len(config))
    config_rows = [left + right for left, right in zip(config[:half], config[half:], strict=True)]
    models = []
    for what, backbone in (("2D backbone", result.backbone), ("3D backbone", result.backbone_3d)):
        if backbone is not None:
            models.append((what, f"{_e(backbone.name)} ({_e(backbone.architecture)}), weights: "
                                 f"{_e(backbone.weights_source)}"))  # fmt: skip
    timings = [(str(k), f"{v:.1f} s") for k, v in result.timings.items()]
    if timings:
        timings.append(("Total", f"{sum(result.timings.values()):.1f} s"))
    out = ["<h2 style='page-break-before: always'>Appendix</h2>",
           "<p class='small'>Files next to this report: report.csv and report.json (every "
           "part, verdict and region), masks/&lt;part&gt;.png (the defect regions shown here), "
           "ply/&lt;part&gt;.ply (3D points coloured like the pictures).</p>",
           "<h3>Decision rules</h3>", _pairs(rules), "<h3>Configuration</h3>",
           _table(config_rows)]  # fmt: skip
    if models:
        out += ["<h3>Models</h3>", _pairs(models)]
    if timings:
        out += ["<h3>Timings</h3>", _pairs(timings)]
    return "".join(out)


def render_html(data: ReportData, image_src: ImageSource | None = None) -> str:
    """The report as HTML.

    Args:
        data: The report.
        image_src: Maps (key, PNG or JPEG bytes) to an ``<img src>``; default a data URI. Keys
            are ``"<part>/image"``, ``/overlay``, ``/outline`` and ``/snapshot`` (Qt's
            renderer registers them as resources instead).
    """
    src = image_src or (lambda _key, picture: data_uri(picture))
    title = _e(f"MuSc defect report {data.category}".strip())
    out = [f"<html><head><meta charset='utf-8'><title>{title}</title>"
           f"<style>{STYLE}</style></head><body>", _summary(data), _ranked(data)]  # fmt: skip
    if data.failing:
        out.append("<h2>Failing parts</h2>")
        out += [_part(part, data, src) for part in data.failing]
    out += [_appendix(data), "</body></html>"]
    return "\n".join(out)
