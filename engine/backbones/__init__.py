"""Backbones: one registry (:mod:`.registry`) of 2D image networks and 3D point-cloud networks.

``create_backbone("dino_vitb8")`` builds a 2D backbone in the spirit of timm's create_model,
``create_point_backbone("point_mae")`` a 3D one; ``list_backbones()`` names them all.
"""

from __future__ import annotations

# The family modules register their backbones when imported.
from engine.backbones import efficientnet_lite, fpfh, point_mae, vit  # noqa: F401
from engine.backbones.base import (
    Backbone2D,
    Backbone3D,
    BackboneInfo,
    PointBackboneInfo,
    check_images,
    check_point_groups,
)
from engine.backbones.registry import (
    BackboneEntry,
    BackboneFactory,
    Modality,
    PointBackboneFactory,
    backbone_entry,
    choose_default_backbone,
    choose_default_point_backbone,
    create_backbone,
    create_point_backbone,
    default_backbone,
    hub_reachable,
    list_backbones,
    register_backbone,
)
from engine.backbones.weights import WeightsSpec

__all__ = [
    "Backbone2D",
    "Backbone3D",
    "BackboneEntry",
    "BackboneFactory",
    "BackboneInfo",
    "Modality",
    "PointBackboneFactory",
    "PointBackboneInfo",
    "WeightsSpec",
    "backbone_entry",
    "check_images",
    "check_point_groups",
    "choose_default_backbone",
    "choose_default_point_backbone",
    "create_backbone",
    "create_point_backbone",
    "default_backbone",
    "hub_reachable",
    "list_backbones",
    "register_backbone",
]
