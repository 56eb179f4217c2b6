"""Re-run on a folder indexed again: which parts are new, changed or gone, and what to keep.

A part is unchanged when its files have the same (path, size, mtime_ns) as when the session
last indexed them. :meth:`InspectionSession.rescan` keeps the per-part outputs of unchanged parts
(clouds, tokens, SNAMD features, groups, 3D features) by part name here; the next run computes
those stages only for the new and changed parts and puts the rows back in the new part order.
Mutual scoring compares every part with every other, so it and the read-out run on the whole
new set.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

import torch

from engine.data.samples import DatasetIndex, Sample, SkippedFile
from engine.session.branch_2d import Tokens2D
from engine.session.stages import Stage

Signature = tuple[tuple[str, int, int], ...]


@dataclass(frozen=True)
class RescanSummary:
    """What a rescan found, as part (sample) names in the order of the new index.

    Attributes:
        added: Parts not indexed before.
        removed: Parts no longer found (in the old order).
        changed: Parts whose files differ (path, size or mtime).
        kept: Parts whose files are the same; their per-part stage outputs are reused.
    """

    added: tuple[str, ...]
    removed: tuple[str, ...]
    changed: tuple[str, ...]
    kept: tuple[str, ...]

    @property
    def unchanged(self) -> bool:
        """True when no part was added, removed or changed."""
        return not (self.added or self.removed or self.changed)


def file_signatures(dataset: DatasetIndex) -> dict[str, Signature]:
    """Per part, (path, size, mtime_ns) of each of its files; a vanished file reads as -1s."""
    signatures = {}
    for sample in dataset.samples:
        files = []
        for path in (sample.rgb_path, sample.xyz_path, sample.mask_path):
            if path is None:
                continue
            try:
                stat = Path(path).stat()
                files.append((str(path), stat.st_size, stat.st_mtime_ns))
            except OSError:
                files.append((str(path), -1, -1))
        signatures[sample.name] = tuple(files)
    return signatures


def compare(before: dict[str, Signature], after: dict[str, Signature]) -> RescanSummary:
    """What changed from the signatures ``before`` to ``after`` (each in its index order)."""
    return RescanSummary(
        added=tuple(n for n in after if n not in before),
        removed=tuple(n for n in before if n not in after),
        changed=tuple(n for n in after if n in before and before[n] != after[n]),
        kept=tuple(n for n in after if n in before and before[n] == after[n]),
    )


def rows_by_name(layers: list[torch.Tensor], names: list[str]) -> dict[str, list[torch.Tensor]]:
    """Row ``i`` of every layer, by the name of part ``i``."""
    return {name: [layer[i] for layer in layers] for i, name in enumerate(names)}


def stack_rows(names: list[str], rows: dict[str, list[torch.Tensor]]) -> list[torch.Tensor]:
    """Per layer, the rows of ``names`` stacked in that order."""
    if not names:
        return []
    count = len(rows[names[0]])
    return [torch.stack([rows[name][layer] for name in names]) for layer in range(count)]


def in_order(names: Iterable[str], kept: dict[str, object], fresh: dict[str, object]) -> dict:
    """The pieces of ``names`` (kept, else fresh) in that order; names in neither are left out."""
    return {n: kept[n] if n in kept else fresh[n] for n in names if n in kept or n in fresh}


def token_rows(tokens: Tokens2D) -> dict[str, tuple[tuple[int, int], list[torch.Tensor]]]:
    """Per part, its image size and token rows."""
    rows = rows_by_name(tokens.layers, [s.name for s in tokens.samples])
    return {s.name: (size, rows[s.name]) for s, size in zip(tokens.samples, tokens.image_sizes,
                                                            strict=True)}  # fmt: skip


def merge_tokens(samples: list[Sample], kept: dict, fresh: Tokens2D) -> Tokens2D:
    """Tokens of the kept and the freshly extracted parts, in the order of ``samples``.

    When the kept rows are a cached session's stripped copy (no channels), the fresh rows are
    stripped too: their SNAMD features must have been computed before (see the session).
    """
    rows = token_rows(fresh)
    stripped = any(int(r[0].shape[-1]) == 0 for _, r in kept.values())
    if stripped:
        rows = {n: (size, [r[..., :0] for r in layers]) for n, (size, layers) in rows.items()}
    merged = in_order((s.name for s in samples), kept, rows)
    order = [s for s in samples if s.name in merged]
    layers = stack_rows([s.name for s in order], {n: r for n, (_, r) in merged.items()})
    return Tokens2D(order, [merged[s.name][0] for s in order], layers)


def carry(
    stages: dict[Stage, object],
    carried: dict[Stage, dict],
    kept: set[str],
    names_2d: list[str],
    names_3d: list[str],
) -> dict[Stage, dict]:
    """Per stage, the per-part outputs of the ``kept`` parts, by part name.

    Args:
        stages: The session's complete cached stages.
        carried: Pieces carried from an earlier rescan not yet run (filtered again).
        kept: Names of the unchanged parts.
        names_2d: The parts of the rows of the 2D tokens and features.
        names_3d: The parts of the rows of the 3D features (scored parts with a cloud).
    """
    out = {
        stage: {n: v for n, v in pieces.items() if n in kept} for stage, pieces in carried.items()
    }
    for stage, value in stages.items():
        if stage in (Stage.LOAD_3D, Stage.GROUP_3D):
            pieces = value
        elif stage is Stage.EXTRACT_2D:
            pieces = token_rows(value)
        elif stage is Stage.AGGREGATE_2D and len(names_2d) == int(value[0].shape[0]):
            pieces = rows_by_name(value, names_2d)
        elif stage is Stage.EXTRACT_3D and len(names_3d) == int(value[0].shape[0]):
            pieces = rows_by_name(value, names_3d)
        else:
            continue  # scores compare all parts: recomputed
        out[stage] = {n: v for n, v in pieces.items() if n in kept}
    return out


def carried_notes(
    old: DatasetIndex,
    new: DatasetIndex,
    skipped: list[SkippedFile],
    warnings: list[str],
    kept: set[str],
) -> tuple[list[SkippedFile], list[str]]:
    """Skipped files and warnings after a rescan: the new index's, plus those the stages gave
    about the files of kept parts (the run adds those of fresh parts and its own again)."""
    files = {str(p) for s in new.samples if s.name in kept
             for p in (s.rgb_path, s.xyz_path, s.mask_path) if p is not None}  # fmt: skip
    from_index = set(old.warnings)
    notes = [w for w in warnings if w not in from_index and w.split(": ", 1)[0] in files]
    return (
        list(dict.fromkeys([*new.skipped, *(f for f in skipped if str(f.path) in files)])),
        list(dict.fromkeys([*new.warnings, *notes])),
    )
