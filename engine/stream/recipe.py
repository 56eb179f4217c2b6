"""The recipe: one HDF5 file per product that lets the next shift start in seconds.

It holds the configuration (with the backbones resolved), which networks and weights made the
features, the image and pixel cuts, and the bank with its features and tables, so nothing is
extracted again (docs/method.md §14). A recipe is refused when the backbones built now differ
from the ones that made it (other weights, layers or image size): their features would not be
comparable.

Layout: root attributes hold JSON documents (``config``, ``modality``, ``backbone``,
``backbone_3d``, ``weights_digest``, ``image_cut``, ``pixel_cut``, ``calibration``); the group
``bank/<slot>`` holds one member (attribute ``name``; datasets ``layers_2d/<l>``,
``layers_3d/<l>``, ``cumsum_2d``, ``cumsum_3d``, ``interp_index``, ``interp_weight``,
``pixel_index``; attribute ``grid``).
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import os
from dataclasses import dataclass, field
from pathlib import Path

import h5py
import numpy as np
import torch

from engine.backbones.base import BackboneInfo, PointBackboneInfo
from engine.config import MuscConfig
from engine.decision.thresholds import Threshold
from engine.errors import InvalidInputError
from engine.stream.bank import BankMember
from engine.stream.part_readout import PartTables, penultimate

FORMAT = "musc-recipe"
VERSION = 1


@dataclass
class Recipe:
    """Everything a stream needs from the batch it was made from.

    Attributes:
        config: The batch's configuration, backbones resolved to names.
        modality: "2d", "3d" or "2d+3d".
        backbone: The 2D network that made the features (None in 3D only).
        backbone_3d: The 3D network (None in 2D only).
        weights_digest: SHA-256 of each weights file by modality ("" when none).
        image_cut: The pass/fail cut on stream scores.
        pixel_cut: The defect-pixel cut on stream maps.
        members: The bank.
        calibration: Where the cuts came from: source folder, parts, scores by name.
    """

    config: MuscConfig
    modality: str
    backbone: BackboneInfo | None
    backbone_3d: PointBackboneInfo | None
    weights_digest: dict[str, str]
    image_cut: Threshold
    pixel_cut: Threshold
    members: list[BankMember]
    calibration: dict = field(default_factory=dict)


def weights_digest(info: BackboneInfo | PointBackboneInfo | None) -> str:
    """SHA-256 of the weights file behind ``info`` ("" without a file)."""
    path = info.weights_path if info is not None else None
    if not path or not os.path.isfile(path):
        return ""
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def _identity(info: BackboneInfo | PointBackboneInfo | None) -> dict | None:
    if info is None:
        return None
    values = dataclasses.asdict(info)
    values.pop("weights_path", None)  # the same weights may sit elsewhere on another machine
    return {k: list(v) if isinstance(v, tuple) else v for k, v in values.items()}


def check_backbones(
    recipe: Recipe,
    backbone: BackboneInfo | None,
    backbone_3d: PointBackboneInfo | None,
    path: Path | str = "recipe",
) -> None:
    """Refuse a recipe whose features were made by other networks or weights than these.

    Raises:
        InvalidInputError: One line per difference, and what to do.
    """
    problems = []
    for what, made, now, key in (("2D", recipe.backbone, backbone, "2d"),
                                 ("3D", recipe.backbone_3d, backbone_3d, "3d")):  # fmt: skip
        if _identity(made) != _identity(now):
            problems.append(f"{what} backbone: recipe {_describe(made)}, now {_describe(now)}")
        elif recipe.weights_digest.get(key) and now is not None:
            digest = weights_digest(now)
            if digest and digest != recipe.weights_digest[key]:
                problems.append(f"{what} weights file {now.weights_path} differs (SHA-256)")
    if problems:
        raise InvalidInputError(
            f"{path}: this recipe was made with other networks or weights than this run "
            f"({'; '.join(problems)}); its bank is not comparable. Make a new recipe with "
            "`musc recipe create`, or run with the recipe's weights."
        )


def _describe(info: BackboneInfo | PointBackboneInfo | None) -> str:
    if info is None:
        return "none"
    return f"{info.name} ({info.weights_source}, layers {', '.join(info.layers)})"


def _threshold_json(cut: Threshold) -> str:
    return json.dumps(dataclasses.asdict(cut))


def _put(group: h5py.Group, name: str, tensor: torch.Tensor | None) -> None:
    if tensor is not None:
        group.create_dataset(name, data=tensor.detach().cpu().numpy())


def save_recipe(recipe: Recipe, path: Path | str) -> Path:
    """Write ``recipe`` to ``path`` (through a temporary file, so a crash leaves no half file).

    Raises:
        InvalidInputError: The file cannot be written (names the path and the fix).
    """
    path = Path(path)
    temporary = path.with_name(path.name + ".part")
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        with h5py.File(temporary, "w") as handle:
            attrs = handle.attrs
            attrs["format"], attrs["version"] = FORMAT, VERSION
            attrs["config"] = json.dumps(recipe.config.to_dict())
            attrs["modality"] = recipe.modality
            attrs["backbone"] = json.dumps(_info_json(recipe.backbone))
            attrs["backbone_3d"] = json.dumps(_info_json(recipe.backbone_3d))
            attrs["weights_digest"] = json.dumps(recipe.weights_digest)
            attrs["image_cut"] = _threshold_json(recipe.image_cut)
            attrs["pixel_cut"] = _threshold_json(recipe.pixel_cut)
            attrs["calibration"] = json.dumps(recipe.calibration)
            bank = handle.create_group("bank")
            for slot, member in enumerate(recipe.members):
                _write_member(bank.create_group(str(slot)), member)
        os.replace(temporary, path)
    except OSError as error:
        temporary.unlink(missing_ok=True)
        raise InvalidInputError(
            f"{path}: cannot write the recipe ({error.strerror or error}); choose a folder "
            "you can write to."
        ) from error
    return path


def _info_json(info: BackboneInfo | PointBackboneInfo | None) -> dict | None:
    return None if info is None else dataclasses.asdict(info)


def _write_member(group: h5py.Group, member: BankMember) -> None:
    group.attrs["name"] = member.name
    group.attrs["pinned"] = member.pinned
    tables = member.tables
    for key, layers in (("layers_2d", member.layers_2d), ("layers_3d", member.layers_3d)):
        if layers is not None:
            sub = group.create_group(key)
            for index, layer in enumerate(layers):
                _put(sub, str(index), layer)
    _put(group, "cumsum_2d", tables.cumsum_2d)
    _put(group, "cumsum_3d", tables.cumsum_3d)
    if tables.grid is not None:
        group.attrs["grid"] = list(tables.grid)
    if tables.interpolation is not None:
        _put(group, "interp_index", tables.interpolation[0])
        _put(group, "interp_weight", tables.interpolation[1])
        _put(group, "pixel_index", tables.pixel_index)


def load_recipe(path: Path | str, device: torch.device | str = "cpu") -> Recipe:
    """Read a recipe written by :func:`save_recipe`.

    Raises:
        InvalidInputError: Missing, unreadable, not a recipe, or of a newer format version.
    """
    path = Path(path)
    try:
        with h5py.File(path, "r") as handle:
            attrs = handle.attrs
            if attrs.get("format") != FORMAT:
                raise InvalidInputError(
                    f"{path}: not a MuSc recipe; make one with `musc recipe create`."
                )
            if int(attrs["version"]) > VERSION:
                raise InvalidInputError(
                    f"{path}: recipe format {int(attrs['version'])} is newer than this "
                    f"program reads ({VERSION}); update MuSc Inspector."
                )
            config = _config(json.loads(attrs["config"]))
            bank = handle["bank"]
            members = [_read_member(bank[str(s)], device) for s in range(len(bank))]
            return Recipe(
                config=config,
                modality=str(attrs["modality"]),
                backbone=_info(BackboneInfo, json.loads(attrs["backbone"])),
                backbone_3d=_info(PointBackboneInfo, json.loads(attrs["backbone_3d"])),
                weights_digest=json.loads(attrs["weights_digest"]),
                image_cut=Threshold(**json.loads(attrs["image_cut"])),
                pixel_cut=Threshold(**json.loads(attrs["pixel_cut"])),
                members=members,
                calibration=json.loads(attrs["calibration"]),
            )
    except (OSError, KeyError, ValueError) as error:
        raise InvalidInputError(
            f"{path}: cannot read the recipe ({error}); check the path, or make the recipe "
            "again with `musc recipe create`."
        ) from error


def _config(values: dict) -> MuscConfig:
    for key in ("layers", "r_list"):
        if values.get(key) is not None:
            values[key] = tuple(values[key])
    return MuscConfig(**values)


def _info(kind: type, values: dict | None):
    if values is None:
        return None
    values = {k: tuple(v) if isinstance(v, list) else v for k, v in values.items()}
    return kind(**values)


def _tensor(group: h5py.Group, name: str, device) -> torch.Tensor | None:
    return torch.from_numpy(np.asarray(group[name])).to(device) if name in group else None


def _layers(group: h5py.Group, name: str, device) -> list[torch.Tensor] | None:
    if name not in group:
        return None
    return [_tensor(group[name], str(i), device) for i in range(len(group[name]))]


def _read_member(group: h5py.Group, device) -> BankMember:
    layers_2d, layers_3d = _layers(group, "layers_2d", device), _layers(group, "layers_3d", device)
    interpolation = None
    if "interp_index" in group:
        interpolation = (_tensor(group, "interp_index", device),
                         _tensor(group, "interp_weight", device))  # fmt: skip
    tables = PartTables(
        cumsum_2d=_tensor(group, "cumsum_2d", device),
        cumsum_3d=_tensor(group, "cumsum_3d", device),
        salient_2d=penultimate(layers_2d),
        salient_3d=penultimate(layers_3d),
        grid=tuple(int(v) for v in group.attrs["grid"]) if "grid" in group.attrs else None,
        interpolation=interpolation,
        pixel_index=_tensor(group, "pixel_index", device),
    )
    return BankMember(
        str(group.attrs["name"]), layers_2d, layers_3d, tables, bool(group.attrs["pinned"])
    )
