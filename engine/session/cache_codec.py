"""Writing a session's stage outputs into an HDF5 group and reading them back.

Stage outputs are nested lists, tuples, dicts and a few dataclasses around tensors and arrays;
each node records its kind in an attribute so reading needs no schema. Arrays are stored small
and read back in their own dtype:

* integers in the smallest integer type that holds their range (lossless: the neighbour and
  pixel indices of the 3D clouds fit in 16 bits on a 224 map grid, a quarter of int64);
* the float32 tensors the writer is told to halve (features that only feed mutual scoring
  again) in float16 around their channel mean (:func:`halve`), unless a value would overflow.
"""

from __future__ import annotations

import dataclasses
import json
from typing import Any

import h5py
import numpy as np
import torch

from engine.backbones.base import BackboneInfo, PointBackboneInfo
from engine.data.samples import Sample
from engine.method.point_groups import GroupingBasis, PointGroups
from engine.session.branch_2d import Tokens2D
from engine.session.branch_3d import Cloud
from engine.session.tables import SubsetTable

_CLASSES = {c.__name__: c for c in (Tokens2D, Cloud, GroupingBasis, PointGroups, SubsetTable,
                                    BackboneInfo, PointBackboneInfo)}  # fmt: skip
_HALF_MAX = 60000.0  # float16 overflows at 65504


def _plain(value: Any) -> bool:
    if value is None or isinstance(value, (bool, int, float, str)):
        return True
    return isinstance(value, (list, tuple)) and all(_plain(v) for v in value)


def compact(array: np.ndarray) -> np.ndarray:
    """``array`` in the smallest integer type that holds its values (others unchanged)."""
    if array.dtype.kind in "iu" and array.size and array.itemsize > 1:
        lo, hi = int(array.min()), int(array.max())
        for small in (np.uint8, np.uint16, np.uint32) if lo >= 0 else (np.int8, np.int16, np.int32):
            info = np.iinfo(small)
            if info.min <= lo and hi <= info.max:
                return array.astype(small) if info.bits < 8 * array.itemsize else array
    return array


def halve(array: np.ndarray) -> tuple[np.ndarray, dict[str, Any]] | None:
    """Features (..., C) in float16, and the attributes that read them back; None when a value
    would not fit (or is not finite).

    float16 keeps 11 bits of each value: of its deviation from the channel mean, which is
    stored apart, rather than of the mean all features of one product share. Rows of unit
    length (SNAMD-2D's, whose distances are taken as 2 - 2 x.y) are made unit length again on
    reading, else the rounding of their norm would add straight to the small distances.
    """
    if array.dtype != np.float32 or array.ndim < 2 or not array.size:
        return None
    offset = array.reshape(-1, array.shape[-1]).mean(axis=0, dtype=np.float64)
    offset = offset.astype(np.float32)
    residual = array - offset
    # NaN compares false, so a feature with NaN or inf stays float32 as well
    if not np.abs(residual).max() < _HALF_MAX:
        return None
    unit = bool(np.abs(np.linalg.norm(array, axis=-1) - 1.0).max() < 1e-4)
    attrs = {"dtype": "float32", "offset": offset, "unit_rows": unit}
    return residual.astype(np.float16), attrs


@dataclasses.dataclass
class Writer:
    """Writes nested stage outputs; ``half`` holds the ids of the tensors stored in float16.

    A tensor written once (``seen``, by identity: a cloud's grouping basis inside its
    PointGroups) becomes an HDF5 hard link the second time.
    """

    half: frozenset[int] = frozenset()
    seen: dict[int, h5py.Dataset] = dataclasses.field(default_factory=dict)

    def _array(self, group: h5py.Group, key: str, array: np.ndarray, half: bool) -> h5py.Dataset:
        halved = halve(array) if half else None
        if halved is not None:
            stored, attrs = halved
        else:
            stored = compact(array)
            attrs = {"dtype": array.dtype.name} if stored.dtype != array.dtype else {}
        data = group.create_dataset(key, data=stored)
        data.attrs.update(attrs)
        return data

    def put(self, group: h5py.Group, key: str, value: Any) -> None:
        """Write ``value`` under ``group[key]``."""
        if isinstance(value, torch.Tensor) and id(value) in self.seen:
            group[key] = self.seen[id(value)]
        elif isinstance(value, torch.Tensor):
            array = value.detach().cpu().numpy()
            data = self._array(group, key, array, id(value) in self.half)
            self.seen[id(value)] = data  # the session keeps every tensor alive meanwhile
            data.attrs.update({"kind": "tensor", "device": value.device.type})
        elif isinstance(value, np.ndarray):
            self._array(group, key, value, False).attrs["kind"] = "array"
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
                self.put(sub, str(index), item)
        elif isinstance(value, dict):
            sub = group.create_group(key)
            sub.attrs.update({"kind": "dict", "keys": json.dumps(list(value))})
            for index, item in enumerate(value.values()):
                self.put(sub, str(index), item)
        elif dataclasses.is_dataclass(value) and type(value).__name__ in _CLASSES:
            sub = group.create_group(key)
            sub.attrs.update({"kind": "dataclass", "class": type(value).__name__})
            for f in dataclasses.fields(value):
                self.put(sub, f.name, getattr(value, f.name))
        else:
            raise TypeError(f"cannot cache a {type(value).__name__}")


def _stored(node: h5py.Dataset) -> np.ndarray:
    array = np.asarray(node[()])
    dtype = node.attrs.get("dtype")
    array = array.astype(dtype) if dtype is not None else array
    offset = node.attrs.get("offset")
    if offset is None:
        return array
    array = array + offset
    if node.attrs.get("unit_rows"):
        array /= np.linalg.norm(array, axis=-1, keepdims=True)
    return array


def read(node: h5py.Group | h5py.Dataset, samples: dict[str, Sample], device: torch.device) -> Any:
    """The value :meth:`Writer.put` wrote at ``node``, tensors on ``device`` if not CPU ones.

    Raises:
        KeyError: A stored sample is not in ``samples`` (the dataset changed).
    """
    kind = node.attrs["kind"]
    if kind == "tensor":
        tensor = torch.from_numpy(_stored(node))
        return tensor.to(device) if node.attrs["device"] != "cpu" else tensor
    if kind == "array":
        return _stored(node)
    if kind == "sample":
        return samples[node.attrs["name"]]
    if kind == "json":
        value = json.loads(node.attrs["value"])
        return _tuples(value) if node.attrs["tuple"] else value
    if kind in ("list", "tuple"):
        items = [read(node[str(i)], samples, device) for i in range(int(node.attrs["length"]))]
        return items if kind == "list" else tuple(items)
    if kind == "dict":
        keys = json.loads(node.attrs["keys"])
        return {k: read(node[str(i)], samples, device) for i, k in enumerate(keys)}
    if kind == "dataclass":
        cls = _CLASSES[node.attrs["class"]]
        return cls(**{f.name: read(node[f.name], samples, device) for f in dataclasses.fields(cls)})
    raise ValueError(f"unknown cached kind {kind!r}")


def _tuples(value: Any) -> Any:
    """JSON lists back to tuples (image sizes, layer names)."""
    return tuple(_tuples(v) for v in value) if isinstance(value, list) else value
