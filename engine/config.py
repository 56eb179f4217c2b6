"""The one frozen dataclass of MuSc-V2 hyperparameters.

Each field carries metadata the GUI builds its parameter panel from: ``title`` (label) and
``range`` (the valid values of a numeric field, enforced on construction, and the slider's
bounds). What a change of each field recomputes is declared once,
in :mod:`engine.session.stages`; docs/method.md lists every parameter.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field, fields, replace
from typing import Any

from engine.errors import InvalidInputError

MODALITIES = ("auto", "2d", "3d", "2d+3d")
IPG_VARIANTS = ("paper", "reference")
FUSIONS = ("sum", "scaled")
BN_STATS = ("sample", "running")
DEVICES = ("auto", "cpu", "cuda")
PRECISIONS = ("auto", "fp32", "bf16")


def _meta(title: str, value_range: tuple[float, float] | None = None) -> dict[str, Any]:
    return {"title": title, "range": value_range}


@dataclass(frozen=True)
class MuscConfig:
    """Hyperparameters of one scoring run. Defaults follow the paper (docs/method.md §10)."""

    # Which data the method looks at; "auto" = 2d+3d when the samples have XYZ maps, else 2d.
    modality: str = field(default="auto", metadata=_meta("Modality"))
    # Backbone registry name; None picks the paper's dino_vitb8 when its weights can be had,
    # else the best offline backbone (see engine.backbones.choose_default_backbone).
    backbone: str | None = field(default=None, metadata=_meta("2D backbone"))
    # Explicit weights file for the backbone; None resolves package -> cache -> download.
    weights: str | None = field(default=None, metadata=_meta("Weights file"))
    # Square input side in pixels; None uses the backbone's own default.
    image_size: int | None = field(default=None, metadata=_meta("Image size", (32, 2048)))
    # Backbone layers to score (0-based block indices or stage names); None = backbone default.
    layers: tuple[int, ...] | None = field(default=None, metadata=_meta("Layers"))
    # 3D backbone registry name; None picks point_mae when its weights can be had, else fpfh.
    backbone_3d: str | None = field(default=None, metadata=_meta("3D backbone"))
    # Explicit weights file for the 3D backbone.
    weights_3d: str | None = field(default=None, metadata=_meta("3D weights file"))
    # Point-transformer BatchNorm statistics: "sample" (reference behaviour) or "running".
    bn_stats: str = field(default="sample", metadata=_meta("BatchNorm statistics"))
    # Remove the background plane and small clusters from XYZ maps (docs/method.md §2).
    remove_background: bool = field(default=True, metadata=_meta("Remove background"))
    # Also black out the RGB background, as the reference preprocessing does on MVTec 3D-AD.
    black_rgb_background: bool = field(default=False, metadata=_meta("Black RGB background"))
    # Number of 3D point groups G (FPS centres) and points per group K_P.
    num_groups: int = field(default=1024, metadata=_meta("3D groups", (16, 4096)))
    group_size: int = field(default=128, metadata=_meta("Points per group", (8, 512)))
    # IPG: points added per step (K_iter) and curvature threshold C_thr (docs/method.md §4).
    k_iter: int = field(default=80, metadata=_meta("K_iter", (1, 512)))
    c_thr: float = field(default=0.01, metadata=_meta("C_thr", (0.0, 0.34)))
    # "paper" = iterative min-distance expansion; "reference" = the official one-step variant.
    ipg_variant: str = field(default="paper", metadata=_meta("IPG variant"))
    # Cross-modal anomaly enhancement of 2D and 3D scores (docs/method.md §6). None = automatic: on
    # with the paper's point_mae, off with fpfh, whose weak image-level 3D scores it spreads
    # into 2D (cable_gland dev, 2D+3D image AUROC 73.3 without CAE, 66.3 with it).
    cae: bool | None = field(default=None, metadata=_meta("Cross-modal enhancement"))
    # How 2D and 3D maps are fused: "sum" adds them as they are (the reference, docs/method.md §7);
    # "scaled" first divides each modality by the median of its patch/group scores over the batch,
    # for data whose 3D distances are tiny next to 2D ones (the synthetic line: fused image AUROC
    # 0.18 -> 1.0). On cable_gland dev "sum" is better (image AUROC 73.3 vs 63.5), so it is default.
    fusion: str = field(default="sum", metadata=_meta("Fusion"))
    # Gaussian blur of the 3D map, in pixels of the map grid (docs/method.md §7).
    blur_sigma: float = field(default=4.0, metadata=_meta("3D blur sigma", (0.0, 64.0)))
    # SNAMD aggregation degrees r (r x r neighbourhoods); docs/method.md §3.
    r_list: tuple[int, ...] = field(default=(1, 3, 5), metadata=_meta("Degrees r"))
    # Interval average keeps the lowest X% of the N-1 reference scores (docs/method.md §5).
    x_percent: float = field(default=30.0, metadata=_meta("X %", (0.1, 100.0)))
    # RsCon neighbourhood window k; final score = mean of k=1 and k=window (docs/method.md §8).
    rscon_window: int = field(default=7, metadata=_meta("RsCon window k", (1, 200)))
    # Number of subsets g scored independently (docs/method.md §9); 1 = all samples together.
    subsets: int = field(default=1, metadata=_meta("Subsets g", (1, 256)))
    # Compute device: "auto" picks CUDA when present.
    device: str = field(default="auto", metadata=_meta("Device"))
    # Backbone arithmetic: "bf16" runs the forward passes under bfloat16 autocast (features stay
    # float32 afterwards); "auto" = bf16 on a CPU with AMX-BF16/AVX512-BF16, else fp32
    # (engine.precision; docs/method.md §11). Default fp32: CPU and GPU runs agree to float
    # tolerance; bf16 (auto: ViT and Point-MAE on AMX/AVX512-BF16 CPUs) trades that for speed.
    precision: str = field(default="fp32", metadata=_meta("Precision"))
    # Seed for the subset split; everything else is deterministic.
    seed: int = field(default=42, metadata=_meta("Seed"))
    # Images per backbone forward pass.
    batch_size: int = field(default=8, metadata=_meta("Batch size", (1, 256)))
    # Upper bound for one mutual-scoring similarity block, in MiB (bounds peak memory).
    chunk_mib: int = field(default=64, metadata=_meta("MSM chunk (MiB)", (4, 4096)))
    # Side of the square grid on which the 3D branch runs, maps are fused and pixel metrics are
    # evaluated (reference: 224).
    eval_size: int = field(default=224, metadata=_meta("Map size", (4, 2048)))

    def __post_init__(self) -> None:
        if self.modality not in MODALITIES:
            raise InvalidInputError(
                f"modality must be one of {', '.join(MODALITIES)}, got {self.modality!r}."
            )
        for name, value, allowed in (
            ("ipg_variant", self.ipg_variant, IPG_VARIANTS),
            ("bn_stats", self.bn_stats, BN_STATS),
            ("fusion", self.fusion, FUSIONS),
            ("precision", self.precision, PRECISIONS),
        ):
            if value not in allowed:
                raise InvalidInputError(
                    f"{name} must be one of {', '.join(allowed)}, got {value!r}."
                )
        if not 1 <= self.k_iter <= self.group_size:
            raise InvalidInputError(
                f"k_iter must be in [1, group_size={self.group_size}], got {self.k_iter}."
            )
        if self.c_thr < 0:
            raise InvalidInputError(f"c_thr must be >= 0, got {self.c_thr}.")
        if self.device not in DEVICES:
            raise InvalidInputError(
                f"device must be one of {', '.join(DEVICES)}, got {self.device!r}."
            )
        for f in fields(self):
            value_range, value = f.metadata["range"], getattr(self, f.name)
            if value_range is not None and value is not None:
                low, high = value_range
                if isinstance(value, bool) or not low <= value <= high:
                    raise InvalidInputError(
                        f"{f.name} must be in [{low:g}, {high:g}], got {value!r}."
                    )
        if not self.r_list or any(r < 1 or r % 2 == 0 for r in self.r_list):
            raise InvalidInputError(f"r_list must hold odd degrees >= 1, got {self.r_list}.")

    def replace(self, **changes: Any) -> MuscConfig:
        """Return a copy with ``changes`` applied (validated again)."""
        return replace(self, **changes)

    def to_dict(self) -> dict[str, Any]:
        """Plain JSON-serialisable dict of all fields."""
        out = asdict(self)
        for key, value in out.items():
            if isinstance(value, tuple):
                out[key] = list(value)
        return out

    @staticmethod
    def field_info() -> dict[str, dict[str, Any]]:
        """Metadata of each field (title, range) for building a parameter panel."""
        return {f.name: dict(f.metadata) for f in fields(MuscConfig)}
