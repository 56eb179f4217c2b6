"""The per-part features of a finished batch session, as a stream and a bank hold them."""

from __future__ import annotations

from collections.abc import Generator, Sequence

import torch

from engine.errors import InvalidInputError
from engine.progress import Progress
from engine.session.session import InspectionSession
from engine.session.stages import Stage
from engine.session.tables import cloud_rows
from engine.stream.bank import BankMember
from engine.stream.part_features import PartFeatures
from engine.stream.query import query_tables


def session_parts(session: InspectionSession) -> dict[str, PartFeatures]:
    """Every scored part's features, by name, from a session whose run() completed.

    Parts without every modality the session ran (e.g. no usable XYZ in 2D+3D) are left out:
    a bank member must be comparable with every new part.
    """
    stages = session.snapshot().stages
    modality = session.modality
    tokens = stages.get(Stage.EXTRACT_2D)
    rows_2d = {s.name: i for i, s in enumerate(tokens.samples)} if tokens is not None else {}
    features_2d = stages.get(Stage.AGGREGATE_2D)
    clouds = stages.get(Stage.LOAD_3D, {})
    scored = session.samples
    with_cloud = [s.name for s in scored if s.name in clouds]
    rows_3d = {name: i for i, name in enumerate(with_cloud)}
    features_3d = stages.get(Stage.EXTRACT_3D)
    grid = tokens.grid if tokens is not None else None
    parts = {}
    for sample in scored:
        name = sample.name
        if ("2d" in modality and name not in rows_2d) or ("3d" in modality and name not in rows_3d):
            continue
        layers_2d = [f[rows_2d[name]] for f in features_2d] if "2d" in modality else None
        layers_3d = [f[rows_3d[name]] for f in features_3d] if "3d" in modality else None
        cloud = clouds.get(name) if "3d" in modality else None
        patch_of_group = None
        if cloud is not None and grid is not None:
            patch_of_group = cloud_rows([cloud], grid, session.config.eval_size)[1][0]
        size = tokens.image_sizes[rows_2d[name]] if name in rows_2d else cloud.foreground.shape
        parts[name] = PartFeatures(layers_2d, layers_3d, grid, tuple(size), cloud, patch_of_group)
    return parts


def bank_members(
    parts: dict[str, PartFeatures],
    names: Sequence[str],
    session: InspectionSession,
) -> Generator[Progress, None, list[BankMember]]:
    """Bank members for ``names``, each with its tables against the *other* members.

    Leave-one-out, as in a batch of just these parts: a member's own raw score (for RsCon)
    is what it would score among the others.
    """
    missing = [n for n in names if n not in parts]
    if missing:
        raise InvalidInputError(
            f"cannot put {', '.join(missing)} in the bank: not scored in every modality."
        )
    use_cae = session.uses_cae  # resolved as the batch resolved it
    members = []
    for done, name in enumerate(names, start=1):
        others = [parts[n] for n in names if n != name]
        part = parts[name]
        refs_2d = _stack([o.layers_2d for o in others])
        refs_3d = _stack([o.layers_3d for o in others])
        cumsum_2d, cumsum_3d = query_tables(
            part.layers_2d, refs_2d, part.layers_3d, refs_3d,
            patch_of_group=part.patch_of_group, use_cae=use_cae,
            chunk_mib=session.config.chunk_mib,
        )  # fmt: skip
        members.append(
            BankMember(name, part.layers_2d, part.layers_3d, part.tables(cumsum_2d, cumsum_3d))
        )
        yield Progress("bank", done, len(names), name)
    return members


def _stack(per_part: list[list[torch.Tensor] | None]) -> list[torch.Tensor] | None:
    """Per layer, the parts' rows stacked: (n, rows, C)."""
    if not per_part or per_part[0] is None:
        return None
    return [torch.stack(layer) for layer in zip(*per_part, strict=True)]
