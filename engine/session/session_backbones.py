"""The backbones of a session: chosen on "auto", built lazily, dropped when what made them changes.

A session restored from the cache or moved to another device holds no backbone, only the
infos of the ones that computed its stages (results name them); a stage that needs a backbone
builds it then.
"""

from __future__ import annotations

from engine.backbones import (
    choose_default_backbone,
    choose_default_point_backbone,
)
from engine.backbones.base import Backbone2D, Backbone3D, BackboneInfo, PointBackboneInfo
from engine.config import MuscConfig
from engine.session.stages import Stage, model_fields


class SessionBackbones:
    """The 2D and 3D backbone slots of :class:`engine.session.session.InspectionSession`."""

    config: MuscConfig
    modality: str  # the session's resolved modality (a property there)

    def __init__(self, backbone: Backbone2D | None, backbone_3d: Backbone3D | None) -> None:
        self.backbone_reason = ""
        self.backbone_3d_reason = ""
        self._backbone = backbone
        self._backbone_3d = backbone_3d
        # infos of backbones not built in this process (restored, or dropped by a device move)
        self.backbone_info: BackboneInfo | None = None
        self.backbone_3d_info: PointBackboneInfo | None = None

    @property
    def backbone(self) -> Backbone2D | None:
        """The 2D backbone in use (built lazily)."""
        return self._backbone

    @property
    def backbone_3d(self) -> Backbone3D | None:
        """The 3D backbone in use (built lazily)."""
        return self._backbone_3d

    def backbone_infos(self) -> tuple[BackboneInfo | None, PointBackboneInfo | None]:
        """Infos of the backbones that computed the stages (built here or not)."""
        return (
            self._backbone.info if self._backbone else self.backbone_info,
            self._backbone_3d.info if self._backbone_3d else self.backbone_3d_info,
        )

    def choose_backbones(self) -> list[str]:
        """Resolve backbones left on "auto" now, before the long run.

        Returns:
            One line per automatic choice saying which backbone is used and why.
        """
        lines = []
        if "2d" in self.modality and self.config.backbone is None and self._backbone is None:
            name, self.backbone_reason = choose_default_backbone()
            self.config = self.config.replace(backbone=name)
            lines.append(self.backbone_reason)
        if "3d" in self.modality and self.config.backbone_3d is None and self._backbone_3d is None:
            name, self.backbone_3d_reason = choose_default_point_backbone()
            self.config = self.config.replace(backbone_3d=name)
            lines.append(self.backbone_3d_reason)
        return lines

    def _forget_backbones(self, changed: set[str]) -> None:
        """Drop each backbone (and its info) whose model fields are among ``changed``."""
        if changed & model_fields(Stage.EXTRACT_2D):
            self._backbone, self.backbone_info = None, None
        if changed & model_fields(Stage.EXTRACT_3D):
            self._backbone_3d, self.backbone_3d_info = None, None

    def _park_backbones(self) -> None:
        """Drop the built backbones but keep their infos (they are rebuilt where needed)."""
        if self._backbone is not None:
            self.backbone_info, self._backbone = self._backbone.info, None
        if self._backbone_3d is not None:
            self.backbone_3d_info, self._backbone_3d = self._backbone_3d.info, None
