"""On-disk session cache: a scored session's stage outputs in one HDF5 file per dataset + config.

Reopening a scored folder loads the cached stages instead of recomputing them, so the result
shows in seconds and a parameter change only recomputes the stages it invalidates; applying a
config used before loads its file instead of recomputing.

* Key: :func:`fingerprint` = sha256 over every sample file's (relative path, size, mtime_ns)
  and the config fields a cached stage reads (:func:`engine.session.stages.key_fields`; backbones
  left on "auto" count as the word "auto"). A touched file or a changed expensive field gives
  another key, i.e. a miss. A session opened with "auto" backbones is saved under that key and,
  as a hard link to the same file, under the key of the backbones it resolved to.
* File: ``cache_dir() / <fingerprint>.h5`` (``$MUSC_CACHE_DIR/sessions``, default
  ``~/.cache/musc-inspector/sessions``), written atomically. The files are capped at
  :data:`DEFAULT_CAP_BYTES` (``$MUSC_CACHE_MAX_BYTES``), least recently used out first
  (:mod:`engine.session.cache_store`); a load counts as a use.
* Content: the aggregated 2D features, 3D clouds, groups and features, the score tables, the
  scored sample names (matched back to the dataset's samples on load), backbone infos, timings,
  warnings and the resolved config. Features are stored in float16 except the layer the
  read-out takes RsCon's salient features from, so a restored session re-scores to the same
  numbers and only a re-run of mutual scoring sees the rounding; indices in the smallest lossless
  integer type (:mod:`engine.session.cache_codec`). Raw 2D tokens are only needed when
  ``r_list`` changes; they are stored when smaller than :data:`TOKENS_LIMIT_BYTES`, else a
  stripped copy (no channels, grid and image sizes only) is stored and
  :meth:`InspectionSession.run` re-extracts them when ``aggregate 2D`` has to be recomputed.
* A missing, mismatching or unreadable file is a miss (``None``), never an error; an unreadable
  one is removed.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import logging
import os
import threading
from pathlib import Path

import h5py

from engine.config import MuscConfig
from engine.data.samples import DatasetIndex, SkippedFile
from engine.device import resolve_device
from engine.outputs.export import atomic_path
from engine.session.branch_2d import Tokens2D
from engine.session.cache_codec import Writer, read
from engine.session.cache_store import (
    DEFAULT_CAP_BYTES,
    cache_dir,
    cache_usage,
    clear_cache,
    enforce_cap,
    touch,
)
from engine.session.session import InspectionSession, SessionSnapshot
from engine.session.stages import Stage, key_fields

__all__ = [
    "DEFAULT_CAP_BYTES", "FORMAT_VERSION", "TOKENS_LIMIT_BYTES", "cache_dir", "cache_path",
    "cache_usage", "clear_cache", "enforce_cap", "fingerprint", "load_session", "save_session",
]  # fmt: skip

log = logging.getLogger(__name__)

FORMAT_VERSION = 3  # 2: stages keyed by the stage spec's labels; 3: float16 features, keys
TOKENS_LIMIT_BYTES = 200 * 1024 * 1024
# what a file that cannot be read raises (h5py: OSError, KeyError; json and kinds: ValueError)
_UNREADABLE = (OSError, KeyError, ValueError, TypeError)


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


def cache_path(dataset: DatasetIndex, config: MuscConfig) -> Path:
    """Where the session of ``dataset`` with ``config`` is cached."""
    return cache_dir() / f"{fingerprint(dataset, config)}.h5"


def _stripped(tokens: Tokens2D) -> Tokens2D:
    """Tokens without channels: grid, samples and image sizes only (a few bytes)."""
    return Tokens2D(tokens.samples, tokens.image_sizes,
                    [layer[..., :0].cpu() for layer in tokens.layers])  # fmt: skip


def _read_out_layer(count: int) -> int:
    # the layer engine.session.readout takes RsCon's salient features from (its _penultimate)
    return max(0, count - 2)


def _half(stages: dict[Stage, object]) -> frozenset[int]:
    """Ids of the feature tensors that may be stored in float16.

    Features feed only mutual scoring (when it runs again) and RsCon's salient features; the
    read-out layer keeps its dtype so a restored session re-scores exactly. Raw tokens feed
    only SNAMD-2D again, so all their layers are halved.
    """
    ids = set()
    tokens = stages.get(Stage.EXTRACT_2D)
    if isinstance(tokens, Tokens2D):
        ids.update(id(layer) for layer in tokens.layers)
    for stage in (Stage.AGGREGATE_2D, Stage.EXTRACT_3D):
        layers = stages.get(stage) or []
        ids.update(id(x) for i, x in enumerate(layers) if i != _read_out_layer(len(layers)))
    return frozenset(ids)


def _keys(path: Path) -> set[str]:
    """The keys the file at ``path`` was written for (empty when unreadable or another format)."""
    try:
        with h5py.File(path, "r") as f:
            if f.attrs["version"] != FORMAT_VERSION:
                return set()
            return set(json.loads(f.attrs["keys"]))
    except _UNREADABLE:
        return set()


def _link(target: Path, alias: Path) -> None:
    """Give ``target`` the second name ``alias`` (the same file: no space); best effort."""
    tmp = alias.with_name(f".{alias.name}.{os.getpid()}-{threading.get_ident()}.tmp")
    try:
        if alias.exists() and os.path.samefile(target, alias):
            return
        tmp.unlink(missing_ok=True)
        os.link(target, tmp)
        os.replace(tmp, alias)  # replaces a file of an older resolution of "auto"
    except OSError as error:  # a file system without hard links: the second key misses
        log.debug("could not link %s to %s: %s", alias, target, error)
        tmp.unlink(missing_ok=True)


def save_session(session: InspectionSession, path: str | Path | None = None, *,
                 config: MuscConfig | None = None) -> Path:  # fmt: skip
    """Write ``session``'s stage caches to ``path`` (default: its :func:`cache_path`).

    A file already cached for the same keys holds the same computation and is only marked as
    used, not written again. Afterwards the cache is trimmed to its cap (:func:`enforce_cap`),
    never removing this file.

    Args:
        session: An ``InspectionSession`` that completed a run.
        path: Target file; default ``cache_dir() / <fingerprint>.h5``.
        config: The config to key the file by (default ``session.config``); pass the config the
            session was opened with when its backbones were resolved from "auto" since. The
            file is then also found under the resolved config.

    Returns:
        The written file.
    """
    key_config = config or session.config
    key = fingerprint(session.dataset, key_config)
    resolved = fingerprint(session.dataset, session.config)
    target = Path(path) if path is not None else cache_dir() / f"{key}.h5"
    target.parent.mkdir(parents=True, exist_ok=True)
    if {key, resolved} <= _keys(target):
        touch(target)
    else:
        _write(session, target, sorted({key, resolved}))
    if path is None and resolved != key:
        _link(target, cache_dir() / f"{resolved}.h5")
    enforce_cap(keep=target)
    return target


def _write(session: InspectionSession, target: Path, keys: list[str]) -> None:
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
                "keys": json.dumps(keys),
                "config": json.dumps(snapshot.config.to_dict()),
                "samples": json.dumps(snapshot.sample_names),
                "timings": json.dumps(snapshot.timings),
                "warnings": json.dumps(snapshot.warnings),
                "skipped": json.dumps([[str(s.path), s.reason] for s in snapshot.skipped]),
            })  # fmt: skip
            writer = Writer(half=_half(stages))
            writer.put(f, "stages", stages)
            writer.put(f, "infos", infos)


def load_session(dataset: DatasetIndex, config: MuscConfig,
                 path: str | Path | None = None) -> InspectionSession | None:  # fmt: skip
    """The cached session of ``dataset`` with ``config``, or None on a miss.

    The session's stage caches, samples, backbone infos and timings are restored; backbones are
    not built (only a stage that needs one builds it), so :meth:`rescore` works at once and
    :meth:`run` recomputes only missing stages. Cheap fields come from ``config``. A hit marks
    the file as used (the size cap removes it last); an unreadable file in the cache is removed.
    """
    try:
        key = fingerprint(dataset, config)
    except OSError:
        return None
    target = Path(path) if path is not None else cache_dir() / f"{key}.h5"
    if not target.is_file():
        return None
    try:
        session = _read(target, key, dataset, config)
    except _UNREADABLE as error:
        log.warning("ignoring unreadable session cache %s: %s", target, error)
        if path is None:  # our own file: it would only fail again
            target.unlink(missing_ok=True)
        return None
    except Exception as error:  # noqa: BLE001 - e.g. no memory on the device: a miss, file kept
        log.warning("could not restore the session cache %s: %s", target, error)
        return None
    touch(target)
    return session


def _read(target: Path, key: str, dataset: DatasetIndex,
          config: MuscConfig) -> InspectionSession:  # fmt: skip
    with h5py.File(target, "r") as f:
        if f.attrs["version"] != FORMAT_VERSION or key not in json.loads(f.attrs["keys"]):
            raise ValueError("written for another key or format")
        stored = json.loads(f.attrs["config"])
        stored = {k: tuple(v) if isinstance(v, list) else v for k, v in stored.items()}
        current = {k: v for k, v in dataclasses.asdict(config).items() if k not in key_fields()}
        resolved = MuscConfig(**{**stored, **current})
        device = resolve_device(resolved.device)
        by_name = {s.name: s for s in dataset.samples}
        stages = read(f["stages"], by_name, device)
        infos = read(f["infos"], by_name, device)
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
    return InspectionSession.from_snapshot(dataset, snapshot)
