"""Point-MAE point transformer (ShapeNet pretraining): the paper's 3D backbone (docs/method.md §4).

Written from docs/method.md §4; the module names mirror the official checkpoint so its keys load
directly: ``encoder.first_conv.{0,1,3}``, ``encoder.second_conv.{0,1,3}``, ``pos_embed.{0,2}``,
``blocks.blocks.{i}.{norm1,attn.qkv,attn.proj,norm2,mlp.fc1,mlp.fc2}``, ``norm``.

Input convention (as in the reference): the cloud is one sample's foreground normalised to the unit
ball; each group is fed as its members *relative to the group centre* (not rescaled), and the
positional embedding sees the *absolute* centre.

Differences from the reference, by decision (docs/method.md §4, §11):

* No DropPath: the reference runs in train mode, so stochastic depth is active there and its 3D
  features depend on the RNG. Here inference is deterministic.
* BatchNorm keeps the reference's *per-sample* statistics by default (``bn_stats="sample"``: biased
  mean/var over all G groups x K points of this sample), without touching the running buffers;
  ``bn_stats="running"`` uses the checkpoint's running statistics instead. Because the statistics
  are per sample, :meth:`PointMAEBackbone.extract` takes exactly one sample.
* fp32 throughout (the reference runs under CUDA autocast).
"""

from __future__ import annotations

import logging
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import nn

from engine.backbones.base import (
    Backbone3D,
    PointBackboneInfo,
    block_indices,
    check_point_groups,
)
from engine.backbones.registry import register_backbone
from engine.backbones.weights import POINT_MAE_WEIGHTS, load_checkpoint
from engine.config import BN_STATS
from engine.errors import InvalidInputError

logger = logging.getLogger(__name__)

TRANS_DIM = 384
DEPTH = 12
NUM_HEADS = 6
MLP_HIDDEN = 1536
DEFAULT_LAYERS = (3, 7, 11)  # the reference's hard-coded fetch_idx
RANDOM_INIT_SEED = 0  # random-weight models (timing) are reproducible too
POINT_MAE_EXPECTED = "a Point-MAE checkpoint like the official pretrain.pth"


class SampleBatchNorm1d(nn.BatchNorm1d):
    """BatchNorm1d normalising with the current input's statistics or with the running ones.

    Keeps the ``nn.BatchNorm1d`` parameter and buffer names, so checkpoints load unchanged. The
    mode is :attr:`sample_stats`, independent of ``train()``/``eval()``.
    """

    def __init__(self, num_features: int) -> None:
        super().__init__(num_features, eps=1e-5)
        self.sample_stats = True

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.sample_stats:
            # training=True with no running buffers: normalise with the biased batch statistics
            # (what the reference's train mode computes) and never update the running stats.
            return F.batch_norm(x, None, None, self.weight, self.bias, True, 0.0, self.eps)
        return F.batch_norm(
            x, self.running_mean, self.running_var, self.weight, self.bias, False, 0.0, self.eps
        )


class GroupEncoder(nn.Module):
    """Mini-PointNet: (G, K, 3) relative group points -> (G, 384) tokens, permutation invariant."""

    def __init__(self, out_dim: int = TRANS_DIM) -> None:
        super().__init__()
        # Sequential indices 0, 1, 3 carry weights (2 is the ReLU), as in the checkpoint.
        self.first_conv = nn.Sequential(
            nn.Conv1d(3, 128, 1), SampleBatchNorm1d(128), nn.ReLU(), nn.Conv1d(128, 256, 1)
        )
        self.second_conv = nn.Sequential(
            nn.Conv1d(512, 512, 1), SampleBatchNorm1d(512), nn.ReLU(), nn.Conv1d(512, out_dim, 1)
        )

    def forward(self, neighborhood: torch.Tensor) -> torch.Tensor:
        conv1, bn1, _, conv2 = self.first_conv
        conv3, bn2, _, conv4 = self.second_conv
        groups, members, _ = neighborhood.shape
        # The kernel-1 convolutions run as matrix products on the points-by-channels layout
        # (G*K, C): one large GEMM each, 1.6x faster on a 2-core CPU than conv1d on (G, C, K), and
        # BatchNorm over the G*K rows keeps the same per-channel statistics. In-place ReLU/add:
        # the (G*K, 512) activations are ~270 MB at G=1024, K=128, and on the CPU fresh buffers
        # of that size cost as much as the arithmetic on them.
        rows = neighborhood.reshape(groups * members, 3)
        feat = _pointwise(bn1(_pointwise(rows, conv1)).relu_(), conv2)  # (G*K, 256)
        glob = feat.view(groups, members, -1).amax(dim=1)  # (G, 256)
        # The reference convolves the concatenation [global broadcast | local] (G, 512, K). The
        # global half is constant along the group, so its product is computed once per group and
        # broadcast: the same result up to float rounding (checked by the tests), for half the
        # work of the largest conv.
        w_glob, w_loc = conv3.weight[:, :, 0].split(feat.shape[1], dim=1)
        mixed = F.linear(feat, w_loc).view(groups, members, -1)
        mixed.add_(F.linear(glob, w_glob, conv3.bias)[:, None, :])  # (G, K, 512)
        hidden = bn2(mixed.view(groups * members, -1)).relu_()
        return _pointwise(hidden, conv4).view(groups, members, -1).amax(dim=1)


def _pointwise(rows: torch.Tensor, conv: nn.Conv1d) -> torch.Tensor:
    """A kernel-1 ``Conv1d`` applied to (points, C_in) rows: (points, C_out)."""
    return F.linear(rows, conv.weight[:, :, 0], conv.bias)


class Attention(nn.Module):
    """Multi-head self-attention with a fused qkv projection (timm layout, no qkv bias)."""

    def __init__(self, dim: int, num_heads: int) -> None:
        super().__init__()
        self.num_heads = num_heads
        self.qkv = nn.Linear(dim, dim * 3, bias=False)
        self.proj = nn.Linear(dim, dim)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        b, n, c = x.shape
        qkv = self.qkv(x).reshape(b, n, 3, self.num_heads, c // self.num_heads)
        q, k, v = qkv.permute(2, 0, 3, 1, 4).unbind(0)
        out = F.scaled_dot_product_attention(q, k, v)  # default scale head_dim**-0.5, as the ref
        return self.proj(out.transpose(1, 2).reshape(b, n, c))


class Mlp(nn.Module):
    """Two-layer MLP with exact GELU (no dropout: p=0 in the reference)."""

    def __init__(self, dim: int, hidden: int) -> None:
        super().__init__()
        self.fc1 = nn.Linear(dim, hidden)
        self.act = nn.GELU()
        self.fc2 = nn.Linear(hidden, dim)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fc2(self.act(self.fc1(x)))


class Block(nn.Module):
    """Pre-norm transformer block (LayerNorm eps 1e-5); DropPath deliberately omitted."""

    def __init__(self, dim: int, num_heads: int, hidden: int) -> None:
        super().__init__()
        self.norm1 = nn.LayerNorm(dim, eps=1e-5)
        self.attn = Attention(dim, num_heads)
        self.norm2 = nn.LayerNorm(dim, eps=1e-5)
        self.mlp = Mlp(dim, hidden)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = x + self.attn(self.norm1(x))
        return x + self.mlp(self.norm2(x))


class TransformerEncoder(nn.Module):
    """Holder of the blocks; exists only so that keys read ``blocks.blocks.{i}``."""

    def __init__(self, depth: int) -> None:
        super().__init__()
        self.blocks = nn.ModuleList(Block(TRANS_DIM, NUM_HEADS, MLP_HIDDEN) for _ in range(depth))


class PointTransformer(nn.Module):
    """Group encoder + centre positional embedding + 12 blocks + shared final LayerNorm."""

    def __init__(self, depth: int = DEPTH) -> None:
        super().__init__()
        self.encoder = GroupEncoder(TRANS_DIM)
        self.pos_embed = nn.Sequential(nn.Linear(3, 128), nn.GELU(), nn.Linear(128, TRANS_DIM))
        self.blocks = TransformerEncoder(depth)
        self.norm = nn.LayerNorm(TRANS_DIM, eps=1e-5)

    def set_bn_stats(self, bn_stats: str) -> None:
        """Select ``"sample"`` or ``"running"`` BatchNorm statistics for every BN layer."""
        for m in self.modules():
            if isinstance(m, SampleBatchNorm1d):
                m.sample_stats = bn_stats == "sample"

    def forward(
        self, neighborhood: torch.Tensor, centers: torch.Tensor, layers: tuple[int, ...]
    ) -> list[torch.Tensor]:
        """(G, K, 3) relative groups and (G, 3) centres -> one (G, 384) tensor per layer."""
        x = self.encoder(neighborhood)[None]  # one sample: the G groups are the token sequence
        pos = self.pos_embed(centers)[None]
        wanted, feats = set(layers), {}
        for i, block in enumerate(self.blocks.blocks[: max(layers) + 1]):
            x = block(x + pos)  # pos is re-added before every block (Point-MAE style)
            if i in wanted:
                feats[i] = self.norm(x)[0]
        return [feats[i].float().contiguous() for i in layers]


def load_point_mae_checkpoint(model: PointTransformer, path: Path) -> tuple[str, ...]:
    """Load an official Point-MAE checkpoint into ``model``.

    Takes ``ckpt['base_model']`` (or a bare state dict), strips the ``module.`` and then the
    ``MAE_encoder.`` prefixes, and loads the keys the model has.

    Returns:
        The checkpoint keys that were ignored (decoder, mask token, ...), with their original names.

    Raises:
        InvalidInputError: The file is unreadable, or keys the model needs are missing or have
            the wrong shape; the message names the file.
    """
    raw = load_checkpoint(path, POINT_MAE_EXPECTED)
    state = raw.get("base_model", raw) if isinstance(raw, dict) else None
    if not isinstance(state, dict):
        raise InvalidInputError(
            f"Weights file {path} is not a Point-MAE checkpoint: expected a dict with "
            f"'base_model' (or a state dict), found {type(raw).__name__}"
        )
    own = model.state_dict()
    matched: dict[str, torch.Tensor] = {}
    ignored: list[str] = []
    for key, value in state.items():
        name = str(key).removeprefix("module.").removeprefix("MAE_encoder.")
        if name in own and isinstance(value, torch.Tensor):
            matched[name] = value
        else:
            ignored.append(str(key))
    # num_batches_tracked only matters for training; older checkpoints may lack it.
    missing = [k for k in own if k not in matched and not k.endswith("num_batches_tracked")]
    if missing:
        raise InvalidInputError(
            f"Weights file {path} is not a Point-MAE checkpoint: {len(missing)} required keys are "
            f"missing (e.g. {', '.join(missing[:4])}); expected the official pretrain.pth layout "
            "(base_model -> module.MAE_encoder.*)"
        )
    wrong = [k for k, v in matched.items() if tuple(v.shape) != tuple(own[k].shape)]
    if wrong:
        k = wrong[0]
        raise InvalidInputError(
            f"Weights file {path} does not fit Point-MAE: {len(wrong)} keys have the wrong shape "
            f"(e.g. {k}: {tuple(matched[k].shape)} vs {tuple(own[k].shape)})"
        )
    model.load_state_dict(matched, strict=False)
    return tuple(ignored)


class PointMAEBackbone(Backbone3D):
    """Frozen Point-MAE point transformer returning per-group tokens of selected blocks."""

    # bf16 autocast: 2.3x faster on a 2-core AMX CPU, 2D+3D maps Pearson 0.99972 with float32
    # (cable_gland, N = 10, random weights; README "Precision")
    auto_bf16 = True

    def __init__(
        self,
        weights: Path | None,
        weights_source: str,
        *,
        layers: tuple[int, ...] | None = None,
        bn_stats: str = "sample",
        device: torch.device | str = "cpu",
    ) -> None:
        if bn_stats not in BN_STATS:
            raise InvalidInputError(f"bn_stats {bn_stats!r} is invalid: expected one of {BN_STATS}")
        layers = block_indices(layers if layers is not None else DEFAULT_LAYERS, DEPTH, "point_mae")
        with torch.random.fork_rng(devices=[]):  # reproducible init, caller's RNG untouched
            torch.manual_seed(RANDOM_INIT_SEED)
            model = PointTransformer()
        self.ignored_keys: tuple[str, ...] = ()
        if weights is not None:
            self.ignored_keys = load_point_mae_checkpoint(model, weights)
            logger.info(
                "Point-MAE: loaded %s; ignored %d checkpoint keys not used by the encoder "
                "(decoder, mask token, ...): %s",
                weights,
                len(self.ignored_keys),
                ", ".join(self.ignored_keys[:8]) + (" ..." if len(self.ignored_keys) > 8 else ""),
            )
        model.set_bn_stats(bn_stats)
        # eval() only for hygiene: BN follows bn_stats, and there is no dropout/DropPath at all.
        self.model = model.eval().requires_grad_(False).to(torch.device(device))
        self.device = torch.device(device)
        self.layers = tuple(layers)
        self.bn_stats = bn_stats
        self.info = PointBackboneInfo(
            name="point_mae",
            architecture=f"Point-MAE point transformer ({DEPTH} blocks, dim {TRANS_DIM}), "
            f"BN stats: {bn_stats}",
            weights_source=weights_source,
            weights_path=str(weights) if weights is not None else None,
            layers=tuple(f"blocks.blocks.{i}" for i in self.layers),
        )

    def extract(
        self, points: torch.Tensor, centers: torch.Tensor, groups: torch.Tensor
    ) -> list[torch.Tensor]:
        """One sample's per-group tokens, (G, 384) per layer; see :meth:`Backbone3D.extract`.

        The groups are fed relative to their centres; the BatchNorm statistics (default) are
        those of this sample's G x K points, so never concatenate several samples into one call.
        """
        check_point_groups(points, centers, groups)
        with torch.no_grad():
            points = points.to(self.device, torch.float32)
            centers = centers.to(self.device, torch.float32)
            neighborhood = points[groups.to(self.device)] - centers[:, None, :]
            with self.autocast():  # the forward casts its outputs back to float32
                return self.model(neighborhood, centers, self.layers)


register_backbone(
    "point_mae",
    PointMAEBackbone,  # the constructor is the factory; it validates ``layers``
    modality="3d",
    description=(
        "Point-MAE point transformer (ShapeNet pretraining), the paper's 3D backbone; checkpoint "
        "downloaded from the Point-MAE GitHub release"
    ),
    offline=False,
    weights_spec=POINT_MAE_WEIGHTS,
    default="paper",
)
