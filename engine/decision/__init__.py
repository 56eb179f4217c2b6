"""Decisions a quality engineer acts on: pass/fail thresholds, defect regions, areas, verdicts.

One model for every consumer (app, CLI, report): :func:`decide` turns a scored run and a
:class:`DecisionPolicy` into a :class:`Decision` (image and pixel thresholds, each with how it
was chosen); :func:`part_defects` cuts one part's map into defect regions with areas. See
docs/method.md §13.
"""

from engine.decision.model import Decision, DecisionPolicy, Outcome, decide, outcome
from engine.decision.regions import PartDefects, Region, part_defects
from engine.decision.thresholds import Threshold

__all__ = [
    "Decision",
    "DecisionPolicy",
    "Outcome",
    "PartDefects",
    "Region",
    "Threshold",
    "decide",
    "outcome",
    "part_defects",
]
