"""docs/method.md stays in step with the code: its parameter table and the sections code cites."""

from __future__ import annotations

import re
from pathlib import Path

from engine.session.stages import parameter_table

REPO = Path(__file__).resolve().parents[3]
DOC = REPO / "docs" / "method.md"
START, END = "<!-- parameters:start -->", "<!-- parameters:end -->"
REGENERATE = (
    '.venv/bin/python -c "from engine.session.stages import parameter_table; '
    'print(parameter_table())"'
)
# "docs/method.md §7", also "docs/method.md §7, §11" and "§3–§4": every number is checked
CITATION = re.compile(r"docs/method\.md\s+(§\d+(?:\s*(?:,|–|-|and)\s*§\d+)*)")


def _doc_sections() -> set[int]:
    return {int(n) for n in re.findall(r"^## (\d+)\. ", DOC.read_text(encoding="utf-8"), re.M)}


def test_parameter_table_is_current() -> None:
    text = DOC.read_text(encoding="utf-8")
    assert START in text and END in text, f"{DOC} lacks the {START} / {END} markers"
    documented = text.split(START, 1)[1].split(END, 1)[0].strip()
    assert documented == parameter_table().strip(), (
        f"The parameter table in {DOC.relative_to(REPO)} (between {START} and {END}) is out of "
        f"date; regenerate it with {REGENERATE} and paste the output between the markers."
    )


def test_code_cites_existing_sections() -> None:
    sections = _doc_sections()
    assert sections, f"{DOC} has no numbered '## N. Title' sections"
    bad = []
    for folder in ("engine", "musc_gui", "bench", "tests"):
        for path in sorted((REPO / folder).rglob("*.py")):
            text = path.read_text(encoding="utf-8")
            for match in CITATION.finditer(text):
                line = text.count("\n", 0, match.start()) + 1
                for number in re.findall(r"§(\d+)", match.group(1)):
                    if int(number) not in sections:
                        bad.append(f"{path.relative_to(REPO)}:{line}: §{number}")
    assert not bad, (
        f"citations of sections that {DOC.relative_to(REPO)} does not have "
        f"(it has §{min(sections)}–§{max(sections)}): {bad}"
    )
