"""Choosing the compute device."""

from __future__ import annotations

import dataclasses
from typing import Any

import torch

from engine.errors import InvalidInputError


def resolve_device(name: str) -> torch.device:
    """``"auto"`` picks CUDA when present; ``"cuda"`` without a GPU is an error."""
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if name == "cuda" and not torch.cuda.is_available():
        raise InvalidInputError(
            "--device cuda was asked for, but torch sees no CUDA GPU; use auto or cpu."
        )
    return torch.device(name)


def move_tensors(value: Any, device: torch.device) -> Any:
    """``value`` with every tensor inside (lists, tuples, dicts, dataclasses) on ``device``.

    Containers and dataclasses are copied only where something inside moved, so objects without
    tensors (samples, infos) keep their identity.
    """
    if isinstance(value, torch.Tensor):
        return value.to(device)
    if isinstance(value, (list, tuple)):
        moved = [move_tensors(item, device) for item in value]
        if all(a is b for a, b in zip(moved, value, strict=True)):
            return value
        return type(value)(moved) if isinstance(value, list) else tuple(moved)
    if isinstance(value, dict):
        moved_items = {key: move_tensors(item, device) for key, item in value.items()}
        if all(moved_items[key] is item for key, item in value.items()):
            return value
        return moved_items
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        changes = {}
        for f in dataclasses.fields(value):
            if f.init:
                old = getattr(value, f.name)
                new = move_tensors(old, device)
                if new is not old:
                    changes[f.name] = new
        return dataclasses.replace(value, **changes) if changes else value
    return value
