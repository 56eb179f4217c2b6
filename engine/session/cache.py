"""On-disk session cache: a scored session's stage outputs in one HDF5 file per dataset + config.

Reopening a scored folder loads the cached stages instead of recomputing them, so the result
shows in seconds and a parameter change only recomputes the stages it invalidates.

* Key: :func:`fingerprint` = sha256 over every sample file's (relative path, size, mtime_ns)
  and the config fields a cached stage reads (:func:`engine.session.stages.key_fields`; backbones
  left on "auto" count as the word "auto"). A touched file or a changed
  expensive field gives another key, i.e. a miss.
* File: ``cache_dir() / <fingerprint>.h5`` (``$MUSC_CACHE_DIR/sessions``, default
  ``~/.cache/musc-inspector/sessions``), written atomically.
* Content: the aggregated 2D features, 3D clouds, groups and features, the score tables, the
  scored sample names (matched back to the dataset's samples on load), backbone infos, timings,
  warnings and the resolved config. Raw 2D tokens are only needed when ``r_list`` changes; they
  are stored when smaller than :data:`TOKENS_LIMIT_BYTES`, else a stripped copy (no channels,
  grid and image sizes only) is stored and :meth:`InspectionSession.run` re-extracts them when
  ``aggregate 2D`` has to be recomputed.
* A missing, mismatching or unreadable file is a miss (``None``), never an error.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import logging
import os
from pathlib import Path
from typing import Any

import h5py
import numpy as np
import torch

from engine.backbones.base import BackboneInfo, PointBackboneInfo
from engine.config import MuscConfig
from engine.data.samples import DatasetIndex, Sample, SkippedFile
from engine.device import resolve_device
from engine.method.point_groups import GroupingBasis, PointGroups
from engine.outputs.export import atomic_path
from engine.session.branch_2d import Tokens2D
from engine.session.branch_3d import Cloud
from engine.session.session import InspectionSession, SessionSnapshot
from engine.session.stages import Stage, key_fields
from engine.session.tables import SubsetTable

log = logging.getLogger(__name__)

FORMAT_VERSION = 2  # 2: stages keyed by the stage spec's labels
TOKENS_LIMIT_BYTES = 200 * 1024 * 1024
_CLASSES = {c.__name__: c for c in (Tokens2D, Cloud, GroupingBasis, PointGroups, SubsetTable,
                                    BackboneInfo, PointBackboneInfo)}  # fmt: skip


def fingerprint(dataset: DatasetIndex, config: MuscConfig) -> str:
    """The cache key of ``dataset`` scored with ``config`` (hex sha256)."""
    files = []
    for sample in dataset.samples:
        for path in (sample.rgb_path, sample.xyz_path, sample.mask_path):
            if path is None:
                continue
            stat = Path(path).stat()
            try:
                name = Path(path).resolve().relative_to(Path(dataset.root).resolve()).as_posix()
            except ValueError:
                name = str(Path(path).resolve())
            files.append((name, stat.st_size, stat.st_mtime_ns))
    fields = {k: v for k, v in config.to_dict().items() if k in key_fields()}
    fields["backbone"] = config.backbone or "auto"
    fields["backbone_3d"] = config.backbone_3d or "auto"
    payload = json.dumps({"version": FORMAT_VERSION, "files": sorted(files), "config": fields},
                         sort_keys=True, default=str)  # fmt: skip
    return hashlib.sha256(payload.encode("utf-8")).hexdigest()


def cache_dir() -> Path:
    """``$MUSC_CACHE_DIR/sessions`` (default ``~/.cache/musc-inspector/sessions``)."""
    root = os.environ.get("MUSC_CACHE_DIR") or Path.home() / ".cache" / "musc-inspector"
    return Path(root) / "sessions"


def cache_path(dataset: DatasetIndex, config: MuscConfig) -> Path:
    """Where the session of ``dataset`` with ``config`` is cached."""
    return cache_dir() / f"{fingerprint(dataset, config)}.h5"


# -- encoding ---------------------------------------------------------------------------------


def _plain(value: Any) -> bool:
    if value is None or isinstance(value, (bool, int, float, str)):
        return True
    return isinstance(value, (list, tuple)) and all(_plain(v) for v in value)


def _put(group: h5py.Group, key: str, value: Any, seen: dict[int, h5py.Dataset]) -> None:
    """Write ``value`` under ``group[key]``; a tensor already written (``seen``, by identity,
    e.g. a cloud's grouping basis inside its PointGroups) becomes an HDF5 hard link."""
    if isinstance(value, torch.Tensor) and id(value) in seen:
        group[key] = seen[id(value)]
    elif isinstance(value, torch.Tensor):
        data = group.create_dataset(key, data=value.detach().cpu().numpy())
        seen[id(value)] = data
        data.attrs["kind"] = "tensor"
        data.attrs["device"] = value.device.type
    elif isinstance(value, np.ndarray):
        group.create_dataset(key, data=value).attrs["kind"] = "array"
    elif isinstance(value, Sample):
        group.create_group(key).attrs.update({"kind": "sample", "name": value.name})
    elif _plain(value):
        sub = group.create_group(key)
        sub.attrs.update({"kind": "json", "value": json.dumps(value),
                          "tuple": isinstance(value, tuple)})  # fmt: skip
    elif isinstance(value, (list, tuple)):
        sub = group.create_group(key)
        sub.attrs.update({"kind": type(value).__name__, "length": len(value)})
        for index, item in enumerate(value):
            _put(sub, str(index), item, seen)
    elif isinstance(value, dict):
        sub = group.create_group(key)
        sub.attrs.update({"kind": "dict", "keys": json.dumps(list(value))})
        for index, item in enumerate(value.values()):
            _put(sub, str(index), item, seen)
    elif dataclasses.is_dataclass(value) and type(value).__name__ in _CLASSES:
        sub = group.create_group(key)
        sub.attrs.update({"kind": "dataclass", "class": type(value).__name__})
        for f in dataclasses.fields(value):
            _put(sub, f.name, getattr(value, f.name), seen)
    else:
        raise TypeError(f"cannot cache a {type(value).__name__}")


def _get(node: h5py.Group | h5py.Dataset, samples: dict[str, Sample], device: torch.device) -> Any:
    kind = node.attrs["kind"]
    if kind == "tensor":
        tensor = torch.from_numpy(np.asarray(node[()]))
        return tensor.to(device) if node.attrs["device"] != "cpu" else tensor
    if kind == "array":
        return np.asarray(node[()])
    if kind == "sample":
        return samples[node.attrs["name"]]  # KeyError: the dataset changed -> a miss
    if kind == "json":
        value = json.loads(node.attrs["value"])
        return _tuples(value) if node.attrs["tuple"] else value
    if kind in ("list", "tuple"):
        items = [_get(node[str(i)], samples, device) for i in range(int(node.attrs["length"]))]
        return items if kind == "list" else tuple(items)
    if kind == "dict":
        keys = json.loads(node.attrs["keys"])
        return {k: _get(node[str(i)], samples, device) for i, k in enumerate(keys)}
    if kind == "dataclass":
        cls = _CLASSES[node.attrs["class"]]
        return cls(**{f.name: _get(node[f.name], samples, device) for f in dataclasses.fields(cls)})
    raise ValueError(f"unknown cached kind {kind!r}")


def _tuples(value: Any) -> Any:
    """JSON lists back to tuples (image sizes, layer names)."""
    return tuple(_tuples(v) for v in value) if isinstance(value, list) else value


def _stripped(tokens: Tokens2D) -> Tokens2D:
    """Tokens without channels: grid, samples and image sizes only (a few bytes)."""
    return Tokens2D(tokens.samples, tokens.image_sizes,
                    [layer[..., :0].cpu() for layer in tokens.layers])  # fmt: skip


# -- saving and loading -----------------------------------------------------------------------


def save_session(session: InspectionSession, path: str | Path | None = None, *,
                 config: MuscConfig | None = None) -> Path:  # fmt: skip
    """Write ``session``'s stage caches to ``path`` (default: its :func:`cache_path`).

    Args:
        session: An ``InspectionSession`` that completed a run.
        path: Target file; default ``cache_dir() / <fingerprint>.h5``.
        config: The config to key the file by (default ``session.config``); pass the config the
            session was opened with when its backbones were resolved from "auto" since.

    Returns:
        The written file.
    """
    key_config = config or session.config
    target = Path(path) if path is not None else cache_path(session.dataset, key_config)
    target.parent.mkdir(parents=True, exist_ok=True)
    snapshot = session.snapshot()
    stages = dict(snapshot.stages)
    tokens = stages.get(Stage.EXTRACT_2D)
    if tokens is not None:
        size = sum(layer.numel() * layer.element_size() for layer in tokens.layers)
        if size >= TOKENS_LIMIT_BYTES:
            stages[Stage.EXTRACT_2D] = _stripped(tokens)
    infos = {"backbone": snapshot.backbone_info, "backbone_3d": snapshot.backbone_3d_info}
    with atomic_path(target) as tmp:
        with h5py.File(tmp, "w") as f:
            f.attrs.update({
                "version": FORMAT_VERSION,
                "fingerprint": fingerprint(session.dataset, key_config),
                "config": json.dumps(snapshot.config.to_dict()),
                "samples": json.dumps(snapshot.sample_names),
                "timings": json.dumps(snapshot.timings),
                "warnings": json.dumps(snapshot.warnings),
                "skipped": json.dumps([[str(s.path), s.reason] for s in snapshot.skipped]),
            })  # fmt: skip
            seen: dict[int, h5py.Dataset] = {}  # the session keeps every tensor alive
            _put(f, "stages", stages, seen)
            _put(f, "infos", infos, seen)
    return target


def load_session(dataset: DatasetIndex, config: MuscConfig,
                 path: str | Path | None = None) -> InspectionSession | None:  # fmt: skip
    """The cached session of ``dataset`` with ``config``, or None on a miss.

    The session's stage caches, samples, backbone infos and timings are restored; backbones are
    not built (only a stage that needs one builds it), so :meth:`rescore` works at once and
    :meth:`run` recomputes only missing stages. Cheap fields come from ``config``.
    """
    try:
        key = fingerprint(dataset, config)
    except OSError:
        return None
    target = Path(path) if path is not None else cache_dir() / f"{key}.h5"
    if not target.is_file():
        return None
    try:
        with h5py.File(target, "r") as f:
            if f.attrs["version"] != FORMAT_VERSION or f.attrs["fingerprint"] != key:
                return None
            stored = json.loads(f.attrs["config"])
            stored = {k: tuple(v) if isinstance(v, list) else v for k, v in stored.items()}
            current = {k: v for k, v in dataclasses.asdict(config).items() if k not in key_fields()}
            resolved = MuscConfig(**{**stored, **current})
            device = resolve_device(resolved.device)
            by_name = {s.name: s for s in dataset.samples}
            stages = _get(f["stages"], by_name, device)
            infos = _get(f["infos"], by_name, device)
            snapshot = SessionSnapshot(
                config=resolved,
                stages={Stage(label): value for label, value in stages.items()},
                sample_names=json.loads(f.attrs["samples"]),
                timings=json.loads(f.attrs["timings"]),
                warnings=json.loads(f.attrs["warnings"]),
                skipped=[SkippedFile(Path(p), r) for p, r in json.loads(f.attrs["skipped"])],
                backbone_info=infos["backbone"],
                backbone_3d_info=infos["backbone_3d"],
            )
            session = InspectionSession.from_snapshot(dataset, snapshot)
    except Exception as error:  # noqa: BLE001 - a bad cache is a miss, never a crash
        log.warning("ignoring unreadable session cache %s: %s", target, error)
        return None
    return session
