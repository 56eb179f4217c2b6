"""A spy on a session's stages and backbones (tiny fake backbones), for the session tests."""

from __future__ import annotations

import pytest
import torch

from engine.session import branch_2d, branch_3d
from engine.session import session as session_module
from engine.session.session import InspectionSession
from engine.session.stages import Stage
from tests.engine.fakes import GroupShapeBackbone, PixelPatchBackbone

L3, E2, A2 = Stage.LOAD_3D, Stage.EXTRACT_2D, Stage.AGGREGATE_2D
G3, E3 = Stage.GROUP_3D, Stage.EXTRACT_3D
S2, S3, SC = Stage.SCORE_2D, Stage.SCORE_3D, Stage.SCORE_CAE


class Spy:
    """Records which stage functions and backbones run."""

    def __init__(self, monkeypatch: pytest.MonkeyPatch) -> None:
        self.stages: list[Stage] = []
        self.backbone_2d_calls = self.backbone_3d_calls = 0
        self.images: list[torch.Tensor] = []  # every image the 2D backbone saw
        for module, name, stage in (
            (branch_3d, "load_clouds", L3),
            (branch_2d, "extract_2d", E2),
            (branch_2d, "aggregate_2d", A2),
            (branch_3d, "group_clouds", G3),
            (branch_3d, "extract_3d", E3),
        ):
            monkeypatch.setattr(module, name, self._wrap(getattr(module, name), stage))
        scores = session_module.mutual_scores

        def mutual_scores(subsets, layers_2d, layers_3d, *args, use_cae, **kwargs):
            both = layers_2d is not None and layers_3d is not None
            self.stages.append(SC if both and use_cae else S2 if layers_3d is None else S3)
            return scores(subsets, layers_2d, layers_3d, *args, use_cae=use_cae, **kwargs)

        monkeypatch.setattr(session_module, "mutual_scores", mutual_scores)
        spy = self

        def ensure_2d(session: InspectionSession) -> PixelPatchBackbone:
            if session._backbone is None:
                session._backbone = PixelPatchBackbone(session.config.image_size or 64)
            backbone, extract = session._backbone, session._backbone.extract
            if getattr(backbone, "spied", False):  # counted already (a second run)
                return backbone

            def counted(images: torch.Tensor) -> list[torch.Tensor]:
                spy.backbone_2d_calls += 1
                spy.images.extend(images)
                return extract(images)

            backbone.extract, backbone.spied = counted, True
            return backbone

        def ensure_3d(session: InspectionSession) -> GroupShapeBackbone:
            if session._backbone_3d is None:
                session._backbone_3d = GroupShapeBackbone(session.config.backbone_3d)
            backbone, extract = session._backbone_3d, session._backbone_3d.extract
            if getattr(backbone, "spied", False):
                return backbone

            def counted(*args: torch.Tensor) -> list[torch.Tensor]:
                spy.backbone_3d_calls += 1
                return extract(*args)

            backbone.extract, backbone.spied = counted, True
            return backbone

        monkeypatch.setattr(InspectionSession, "_ensure_backbone", ensure_2d)
        monkeypatch.setattr(InspectionSession, "_ensure_backbone_3d", ensure_3d)

    def _wrap(self, function, stage: Stage):
        def wrapped(*args, **kwargs):
            self.stages.append(stage)
            return function(*args, **kwargs)

        return wrapped
