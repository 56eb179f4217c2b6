"""Mutual scoring of both modalities, with cross-modal enhancement, into re-scoring tables.

The output keeps, for every patch (2D) and group (3D), the sorted cumulative sums of its
distances to the other samples, averaged over layers: any interval average (X %) is then a
lookup (:func:`engine.method.mutual_scoring.interval_average`), so X % never triggers this
stage again.
"""

from __future__ import annotations

from collections.abc import Generator
from dataclasses import dataclass

import torch

from engine.method import cae, mutual_scoring
from engine.progress import CancelToken, Progress
from engine.session.branch_3d import Cloud
from engine.session.compute_backend import DistanceBackend, LocalDistances


@dataclass
class SubsetTable:
    """Re-scoring tables of one subset of samples.

    Attributes:
        indices: Sample indices (into the session's sample list) of the 2D rows.
        indices_3d: Sample indices of the 3D rows (samples with a usable cloud).
        cumsum_2d: (n, L, n-1) layer-averaged sorted cumulative distances, or None.
        cumsum_3d: (n3, G, n3-1) the same for 3D, or None.
    """

    indices: list[int]
    indices_3d: list[int]
    cumsum_2d: torch.Tensor | None
    cumsum_3d: torch.Tensor | None


@dataclass(frozen=True)
class _Run:
    """How the distance tables are computed: budget, backend and the cancellation flag."""

    chunk_mib: int
    backend: DistanceBackend
    cancel: CancelToken | None


def _distances(
    features: torch.Tensor, run: _Run, stage: str, unit_norm: bool
) -> Generator[Progress, None, torch.Tensor]:
    table = yield from run.backend.distances(
        features, run.chunk_mib, stage, unit_norm=unit_norm, cancel=run.cancel
    )
    return mutual_scoring.drop_self(table)


def _single(
    layers: list[torch.Tensor], rows: list[int], run: _Run, stage: str, unit_norm: bool
) -> Generator[Progress, None, torch.Tensor | None]:
    """Layer-averaged cumulative tables of one modality, or None for fewer than 2 samples."""
    if len(rows) < 2:
        return None
    total = None
    for index, layer in enumerate(layers, start=1):
        label = f"{stage} (layer {index}/{len(layers)})"
        distances = yield from _distances(layer[rows], run, label, unit_norm)
        cumsum = mutual_scoring.sorted_cumsum(distances)
        total = cumsum if total is None else total + cumsum
    return total / len(layers)


def _enhanced(
    layers_2d: list[torch.Tensor],
    layers_3d: list[torch.Tensor],
    rows_2d: list[int],
    rows_3d: list[int],
    patch_of_group: torch.Tensor,
    run: _Run,
) -> Generator[Progress, None, tuple[torch.Tensor, torch.Tensor]]:
    """CAE per layer pair, then the layer-averaged tables of both modalities.

    The reference pairs its three 2D layers with its three 3D layers. With other counts,
    round t pairs 2D layer ``t*n2//T`` with 3D layer ``t*n3//T`` for T = max(n2, n3) rounds.
    """
    d2 = [None] * len(layers_2d)
    d3 = [None] * len(layers_3d)
    rounds = max(len(d2), len(d3))
    total_2d = total_3d = None
    for t in range(rounds):
        l2, l3 = t * len(d2) // rounds, t * len(d3) // rounds
        if d2[l2] is None:
            d2[l2] = yield from _distances(layers_2d[l2][rows_2d], run, "mutual scoring 2D", True)
        if d3[l3] is None:
            d3[l3] = yield from _distances(layers_3d[l3][rows_3d], run, "mutual scoring 3D", False)
        a_all, b_all = d2[l2], d3[l3]
        enhanced_a, enhanced_b = torch.empty_like(a_all), torch.empty_like(b_all)
        for query in range(a_all.shape[0]):
            enhanced_a[query], enhanced_b[query] = cae.enhance(
                a_all[query], b_all[query], patch_of_group[query]
            )
            if query % 8 == 7 or query == a_all.shape[0] - 1:
                yield Progress(
                    f"cross-modal enhancement ({t + 1}/{rounds})", query + 1, a_all.shape[0]
                )
        cum_a, cum_b = (
            mutual_scoring.sorted_cumsum(enhanced_a),
            mutual_scoring.sorted_cumsum(enhanced_b),
        )
        total_2d = cum_a if total_2d is None else total_2d + cum_a
        total_3d = cum_b if total_3d is None else total_3d + cum_b
    return total_2d / rounds, total_3d / rounds


def side_by_side(
    tables_2d: list[SubsetTable] | None, tables_3d: list[SubsetTable] | None
) -> list[SubsetTable] | None:
    """One table per subset holding the 2D and the 3D cumsums, scored apart (no CAE).

    Both lists come from the same seeded split of the same samples, so they pair up by subset.
    """
    if tables_2d is None or tables_3d is None:
        return tables_2d or tables_3d
    return [
        SubsetTable(two.indices, three.indices_3d, two.cumsum_2d, three.cumsum_3d)
        for two, three in zip(tables_2d, tables_3d, strict=True)
    ]


def cloud_rows(
    clouds: list[Cloud | None], grid: tuple[int, int] | None, eval_size: int
) -> tuple[dict[int, int], torch.Tensor | None]:
    """Where each sample's 3D features sit, and the 2D patch of each group centre (for CAE).

    Args:
        clouds: Per scored sample its cloud, or None where it has none.
        grid: (h, w) of the 2D token grid, or None without 2D.
        eval_size: Side of the square map grid the clouds live on.

    Returns:
        Sample index -> row of the 3D features, and (N3, G) patch indices (None without 2D).
    """
    row_3d, patch_rows = {}, []
    for index, cloud in enumerate(clouds):
        if cloud is None:
            continue
        row_3d[index] = len(row_3d)
        if grid is not None:
            centre_pixels = cloud.pixel_index[cloud.basis.center_idx]
            patch_rows.append(cae.patch_of_pixel(centre_pixels, (eval_size, eval_size), grid))
    return row_3d, torch.stack(patch_rows) if patch_rows else None


def mutual_scores(
    subsets: list[list[int]],
    layers_2d: list[torch.Tensor] | None,
    layers_3d: list[torch.Tensor] | None,
    row_3d: dict[int, int],
    patch_of_group: torch.Tensor | None,
    *,
    use_cae: bool,
    chunk_mib: int,
    backend: DistanceBackend | None = None,
    cancel: CancelToken | None = None,
) -> Generator[Progress, None, list[SubsetTable]]:
    """Re-scoring tables for every subset.

    Args:
        subsets: Sample indices of each subset.
        layers_2d: Per layer (N, L, C) unit-norm 2D features, or None in 3D-only mode.
        layers_3d: Per layer (N3, G, C) 3D features, or None in 2D-only mode.
        row_3d: Sample index -> row of ``layers_3d`` for samples with a cloud.
        patch_of_group: (N3, G) 2D patch index of every group centre (needed for CAE).
        use_cae: Enhance across modalities; applied only when every sample of a subset has
            both modalities (mixed subsets would compare references that differ by modality).
        chunk_mib: Memory budget of one similarity block.
        backend: Where the distance tables are computed (default: this process).
        cancel: Checked by backends that wait on other processes (a local run is cancelled
            between its yields by the caller).
    """
    run = _Run(chunk_mib, backend or LocalDistances(), cancel)
    tables = []
    for members in subsets:
        with_3d = [i for i in members if i in row_3d]
        rows_3d = [row_3d[i] for i in with_3d]
        cumsum_2d = cumsum_3d = None
        if (
            layers_2d is not None
            and layers_3d is not None
            and use_cae
            and len(with_3d) == len(members)
        ):
            cumsum_2d, cumsum_3d = yield from _enhanced(
                layers_2d, layers_3d, members, rows_3d, patch_of_group[rows_3d], run
            )
        else:
            if layers_2d is not None:
                cumsum_2d = yield from _single(layers_2d, members, run, "mutual scoring 2D", True)
            if layers_3d is not None:
                cumsum_3d = yield from _single(layers_3d, rows_3d, run, "mutual scoring 3D", False)
        tables.append(SubsetTable(members, with_3d, cumsum_2d, cumsum_3d))
    return tables
