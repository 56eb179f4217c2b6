"""What the app remembers between sessions (QSettings): decision policies, recent folders, export.

The decision policy is stored per dataset (folder + category), so the cuts a quality engineer
typed are there again when the folder is reopened. It is stored as one JSON string: QSettings'
INI and registry back ends do not keep the difference between "0.5", 0.5 and "auto".
"""

from __future__ import annotations

import hashlib
import json
import logging
from dataclasses import fields
from pathlib import Path

from PySide6.QtCore import QSettings

from engine.data.samples import DatasetIndex
from engine.decision import DecisionPolicy
from engine.errors import InvalidInputError

log = logging.getLogger(__name__)

MAX_RECENT = 8
RECENT_KEY = "recent"
EXPORT_KEYS = ("export/lot", "export/operator")


def policy_key(dataset: DatasetIndex) -> str:
    """The settings key of ``dataset``'s policy: a hash of its resolved folder and category."""
    where = f"{Path(dataset.root).resolve()}|{dataset.category}"
    return "policy/" + hashlib.sha1(where.encode("utf-8")).hexdigest()[:16]


def policy_to_text(policy: DecisionPolicy) -> str:
    """JSON of ``policy``: cuts as "auto" / "max-f1" / a number, areas, known-good names."""
    return json.dumps({
        "image": policy.image,
        "pixel": policy.pixel,
        "min_area_px": policy.min_area_px,
        "min_area_mm2": policy.min_area_mm2,
        "reference": list(policy.reference),
    })  # fmt: skip


def policy_from_text(text: str) -> DecisionPolicy:
    """The policy stored by :func:`policy_to_text`.

    Raises:
        InvalidInputError: The text is not a stored policy.
    """
    try:
        values = json.loads(text)
        known = {f.name for f in fields(DecisionPolicy)}
        return DecisionPolicy(**{k: v for k, v in values.items() if k in known})
    except (ValueError, TypeError, AttributeError) as error:
        raise InvalidInputError(f"not a stored decision policy: {text[:80]!r}") from error


def save_policy(settings: QSettings, dataset: DatasetIndex, policy: DecisionPolicy) -> None:
    """Remember ``policy`` for ``dataset``."""
    settings.setValue(policy_key(dataset), policy_to_text(policy))


def load_policy(settings: QSettings, dataset: DatasetIndex) -> DecisionPolicy:
    """The policy remembered for ``dataset``; the automatic default when none (or a bad one)."""
    text = settings.value(policy_key(dataset))
    if not text:
        return DecisionPolicy()
    try:
        return policy_from_text(str(text))
    except InvalidInputError as error:  # an old or hand-edited entry must not stop opening
        log.warning("ignoring the stored decision policy of %s: %s", dataset.root, error)
        return DecisionPolicy()


def recent_folders(settings: QSettings) -> list[str]:
    """Recently opened folders, newest first."""
    value = settings.value(RECENT_KEY, [])
    return [value] if isinstance(value, str) else list(value or [])


def remember_folder(settings: QSettings, folder: str | Path) -> list[str]:
    """Put ``folder`` first in the recent folders; returns the new list."""
    path = str(Path(folder).resolve())
    recent = [path] + [f for f in recent_folders(settings) if f != path]
    settings.setValue(RECENT_KEY, recent[:MAX_RECENT])
    return recent[:MAX_RECENT]


def export_meta(settings: QSettings) -> tuple[str, str]:
    """The lot and operator last typed in the export dialog."""
    return tuple(str(settings.value(key, "") or "") for key in EXPORT_KEYS)  # type: ignore[return-value]


def remember_export_meta(settings: QSettings, lot: str, operator: str) -> None:
    """Remember the lot and operator for the next export."""
    for key, value in zip(EXPORT_KEYS, (lot, operator), strict=True):
        settings.setValue(key, value)
