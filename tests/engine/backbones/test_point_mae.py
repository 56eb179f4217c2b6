"""Point-MAE backbone: shapes, determinism, BatchNorm modes, checkpoints, weights; 3D registry."""

from __future__ import annotations

import dataclasses
import math
import re
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest
import torch

import engine.backbones.registry as registry
from engine.backbones import (
    backbone_entry,
    choose_default_point_backbone,
    create_point_backbone,
    list_backbones,
    register_backbone,
)
from engine.backbones.point_mae import PointMAEBackbone, PointTransformer
from engine.backbones.weights import POINT_MAE_WEIGHTS, sha256_of
from engine.errors import InvalidInputError, UnknownBackboneError, WeightsUnavailableError

G, K = 32, 16
DECODER_KEYS = (
    "module.mask_token",
    "module.decoder_pos_embed.0.weight",
    "module.MAE_decoder.blocks.blocks.0.norm1.weight",
    "module.MAE_decoder.norm.weight",
    "module.increase_dim.0.weight",
)


def small_cloud(seed: int = 0) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """A wavy surface in the unit ball, G random centres, their K nearest points as groups."""
    gen = torch.Generator().manual_seed(seed)
    uv = torch.rand(600, 2, generator=gen) * 1.4 - 0.7
    z = 0.1 * torch.sin(5 * uv[:, 0]) * torch.cos(4 * uv[:, 1])
    points = torch.cat([uv, z[:, None]], dim=1)
    centers_idx = torch.randperm(600, generator=gen)[:G]
    centers = points[centers_idx]
    groups = torch.cdist(centers, points).topk(K, largest=False).indices
    return points, centers, groups


def randomise_bn_running_stats(model: torch.nn.Module, seed: int) -> None:
    gen = torch.Generator().manual_seed(seed)
    for m in model.modules():
        if isinstance(m, torch.nn.BatchNorm1d):
            m.running_mean.copy_(torch.randn(m.num_features, generator=gen))
            m.running_var.copy_(torch.rand(m.num_features, generator=gen) + 0.5)


@pytest.fixture(scope="module")
def fake_ckpt(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, dict[str, torch.Tensor]]:
    """A checkpoint in the official layout (random encoder of another seed, decoder keys)."""
    torch.manual_seed(123)
    model = PointTransformer()
    randomise_bn_running_stats(model, 7)
    encoder = {k: v.clone() for k, v in model.state_dict().items()}
    base = {f"module.MAE_encoder.{k}": v for k, v in encoder.items()}
    base.update({k: torch.randn(4) for k in DECODER_KEYS})
    path = tmp_path_factory.mktemp("ckpt") / "pretrain.pth"
    torch.save({"base_model": base, "epoch": 300, "metrics": {"acc": 0.0}}, path)
    return path, encoder


@pytest.fixture(scope="module")
def random_backbone() -> PointMAEBackbone:
    return create_point_backbone("point_mae", "random")  # type: ignore[return-value]


def test_output_shapes_and_info(random_backbone: PointMAEBackbone) -> None:
    feats = random_backbone.extract(*small_cloud())
    assert len(feats) == 3
    for f in feats:
        assert f.shape == (G, 384) and f.dtype == torch.float32 and torch.isfinite(f).all()
    assert random_backbone.info.layers == tuple(f"blocks.blocks.{i}" for i in (3, 7, 11))
    assert random_backbone.info.weights_source == "random (timing only)"
    two = create_point_backbone("point_mae", "random", layers=[0, 5]).extract(*small_cloud())
    assert [f.shape for f in two] == [(G, 384), (G, 384)]
    assert torch.equal(
        two[1], create_point_backbone("point_mae", "random", layers=[5]).extract(*small_cloud())[0]
    )


def test_deterministic(random_backbone: PointMAEBackbone) -> None:
    cloud = small_cloud()
    a, b = random_backbone.extract(*cloud), random_backbone.extract(*cloud)
    assert all(torch.equal(x, y) for x, y in zip(a, b, strict=True))
    # Random init is seeded locally: a second model is identical, and the global RNG untouched.
    state = torch.get_rng_state()
    c = create_point_backbone("point_mae", "random").extract(*cloud)
    assert torch.equal(state, torch.get_rng_state())
    assert all(torch.equal(x, y) for x, y in zip(a, c, strict=True))


def test_permutation_invariance_within_groups(random_backbone: PointMAEBackbone) -> None:
    points, centers, groups = small_cloud()
    gen = torch.Generator().manual_seed(1)
    order = torch.argsort(torch.rand(groups.shape, generator=gen), dim=1)
    shuffled = torch.gather(groups, 1, order)
    assert not torch.equal(shuffled, groups)
    a = random_backbone.extract(points, centers, groups)
    b = random_backbone.extract(points, centers, shuffled)
    for x, y in zip(a, b, strict=True):
        torch.testing.assert_close(x, y, rtol=0, atol=1e-5)
    # Reordering the groups reorders the tokens (no position other than the centre's).
    perm = torch.randperm(G, generator=gen)
    c = random_backbone.extract(points, centers[perm], groups[perm])
    torch.testing.assert_close(c[2], a[2][perm], rtol=0, atol=1e-4)


def hand_encoder(enc: torch.nn.Module, x: torch.Tensor, stats: str) -> torch.Tensor:
    """The mini-PointNet in float64 with explicit BatchNorm and an explicit concatenation."""

    def conv(layer: torch.nn.Conv1d, h: torch.Tensor) -> torch.Tensor:
        w = layer.weight.double()[:, :, 0]
        return torch.einsum("oi,gik->gok", w, h) + layer.bias.double()[None, :, None]

    def bn(layer: torch.nn.BatchNorm1d, h: torch.Tensor) -> torch.Tensor:
        if stats == "sample":  # biased statistics over all groups x points, per channel
            mean, var = h.mean(dim=(0, 2)), h.var(dim=(0, 2), unbiased=False)
        else:
            mean, var = layer.running_mean.double(), layer.running_var.double()
        h = (h - mean[None, :, None]) / torch.sqrt(var[None, :, None] + 1e-5)
        return h * layer.weight.double()[None, :, None] + layer.bias.double()[None, :, None]

    c1, b1, _, c2 = enc.first_conv
    c3, b2, _, c4 = enc.second_conv
    h = conv(c2, torch.relu(bn(b1, conv(c1, x.double().transpose(1, 2)))))
    h = torch.cat([h.amax(dim=2, keepdim=True).expand_as(h), h], dim=1)
    return conv(c4, torch.relu(bn(b2, conv(c3, h)))).amax(dim=2)


@pytest.mark.parametrize("bn_stats", ["sample", "running"])
def test_batchnorm_modes_match_hand_computation(
    fake_ckpt: tuple[Path, dict], bn_stats: str
) -> None:
    backbone = create_point_backbone("point_mae", fake_ckpt[0], bn_stats=bn_stats)
    enc = backbone.model.encoder  # type: ignore[attr-defined]
    buffers = {k: v.clone() for k, v in enc.state_dict().items()}
    x = torch.randn(6, 5, 3, generator=torch.Generator().manual_seed(2)) * 0.1
    with torch.no_grad():
        got = enc(x)
    want = hand_encoder(enc, x, bn_stats)
    torch.testing.assert_close(got.double(), want, rtol=1e-5, atol=1e-5)
    other = hand_encoder(enc, x, "running" if bn_stats == "sample" else "sample")
    assert (got.double() - other).abs().max() > 1e-2  # the two modes really differ
    # Extracting never touches the running statistics (the reference's train mode did).
    backbone.extract(*small_cloud())
    assert all(torch.equal(v, enc.state_dict()[k]) for k, v in buffers.items())


def test_forward_follows_spec(fake_ckpt: tuple[Path, dict]) -> None:
    """docs/method.md §4 by hand: relative groups, absolute-centre pos before every block."""
    backbone = create_point_backbone("point_mae", fake_ckpt[0], layers=[1, 3])
    m = backbone.model  # type: ignore[attr-defined]
    points, centers, groups = small_cloud(4)
    x = hand_encoder(m.encoder, points[groups] - centers[:, None, :], "sample").float()[None]
    lin1, _, lin2 = m.pos_embed
    pos = lin2(torch.nn.functional.gelu(lin1(centers)))[None]
    want = []
    with torch.no_grad():
        for i, blk in enumerate(m.blocks.blocks[:4]):
            x = x + pos
            x = x + blk.attn(blk.norm1(x))
            x = x + blk.mlp.fc2(torch.nn.functional.gelu(blk.mlp.fc1(blk.norm2(x))))
            if i in (1, 3):
                want.append(
                    torch.nn.functional.layer_norm(
                        x[0], (384,), m.norm.weight, m.norm.bias, eps=1e-5
                    )
                )
    got = backbone.extract(points, centers, groups)
    for g, w in zip(got, want, strict=True):
        torch.testing.assert_close(g, w, rtol=1e-4, atol=1e-4)


def test_sample_bn_equals_torch_train_mode(random_backbone: PointMAEBackbone) -> None:
    enc = random_backbone.model.encoder  # type: ignore[attr-defined]
    bn = enc.first_conv[1]
    reference = torch.nn.BatchNorm1d(bn.num_features, eps=1e-5).train()
    reference.load_state_dict(bn.state_dict())
    x = torch.randn(6, bn.num_features, 7, generator=torch.Generator().manual_seed(3))
    with torch.no_grad():
        torch.testing.assert_close(bn(x), reference(x), rtol=1e-5, atol=1e-6)


def test_official_layout_loads(fake_ckpt: tuple[Path, dict[str, torch.Tensor]]) -> None:
    path, encoder = fake_ckpt
    backbone = create_point_backbone("point_mae", path)
    state = backbone.model.state_dict()  # type: ignore[attr-defined]
    assert set(state) == set(encoder)
    assert all(torch.equal(state[k], v) for k, v in encoder.items())
    assert "encoder.first_conv.1.running_mean" in state
    assert "blocks.blocks.11.attn.qkv.weight" in state
    assert "blocks.blocks.0.attn.qkv.bias" not in state  # qkv_bias=False
    assert set(backbone.ignored_keys) == set(DECODER_KEYS)  # type: ignore[attr-defined]
    assert backbone.info.weights_source == f"file {path.resolve()}"
    assert backbone.info.weights_path == str(path.resolve())


def test_missing_or_unfitting_keys(tmp_path: Path, fake_ckpt: tuple[Path, dict]) -> None:
    base = torch.load(fake_ckpt[0], weights_only=True)["base_model"]
    cut = dict(base)
    del cut["module.MAE_encoder.blocks.blocks.5.mlp.fc2.weight"]
    bad = tmp_path / "cut.pth"
    torch.save({"base_model": cut}, bad)
    with pytest.raises(InvalidInputError, match=r"cut\.pth.*blocks\.blocks\.5\.mlp\.fc2\.weight"):
        create_point_backbone("point_mae", bad)
    wrong = dict(base)
    wrong["module.MAE_encoder.norm.weight"] = torch.ones(7)
    torch.save({"base_model": wrong}, bad)
    with pytest.raises(InvalidInputError, match=r"cut\.pth.*wrong shape"):
        create_point_backbone("point_mae", bad)
    torch.save([1, 2], bad)
    with pytest.raises(InvalidInputError, match=r"cut\.pth"):
        create_point_backbone("point_mae", bad)
    bad.write_bytes(b"not a checkpoint")
    with pytest.raises(InvalidInputError, match=r"cut\.pth"):
        create_point_backbone("point_mae", bad)


def test_bad_arguments() -> None:
    with pytest.raises(InvalidInputError, match="bn_stats"):
        create_point_backbone("point_mae", "random", bn_stats="train")
    for bad in ([12], [], [1.0], [True], ["3"]):
        with pytest.raises(InvalidInputError, match="layers"):
            create_point_backbone("point_mae", "random", layers=bad)
    ok = create_point_backbone("point_mae", "random", layers=np.array([3, 11]))
    assert ok.info.layers == ("blocks.blocks.3", "blocks.blocks.11")
    backbone = create_point_backbone("point_mae", "random", layers=[0])
    points, centers, groups = small_cloud()
    with pytest.raises(InvalidInputError, match="int64"):
        backbone.extract(points, centers, groups.int())
    with pytest.raises(InvalidInputError, match="indices"):
        backbone.extract(points[:10], centers, groups)


def patch_spec(monkeypatch: pytest.MonkeyPatch, url: str, sha256: str | None) -> None:
    entry = backbone_entry("point_mae")
    spec = dataclasses.replace(POINT_MAE_WEIGHTS, url=url, sha256=sha256)
    monkeypatch.setitem(
        registry._REGISTRY, "point_mae", dataclasses.replace(entry, weights_spec=spec)
    )


def test_download_then_cache_hit(
    cache: Path,
    fake_ckpt: tuple[Path, dict],
    serve: Callable[[Path], str],
    closed_port: int,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    path, encoder = fake_ckpt
    patch_spec(monkeypatch, f"{serve(path.parent)}/{path.name}", sha256_of(path))
    first = create_point_backbone("point_mae")
    cached = cache / POINT_MAE_WEIGHTS.filename
    assert cached.is_file() and sha256_of(cached) == sha256_of(path)
    assert first.info.weights_source.startswith("downloaded from http://127.0.0.1")
    # Nothing listens any more: only the cache can serve the second request.
    patch_spec(monkeypatch, f"http://127.0.0.1:{closed_port}/{path.name}", sha256_of(path))
    second = create_point_backbone("point_mae")
    assert second.info.weights_source == f"cache {cached}"
    state = second.model.state_dict()  # type: ignore[attr-defined]
    assert torch.equal(state["norm.weight"], encoder["norm.weight"])


def test_offline_error_names_file_url_and_fpfh(
    cache: Path, closed_port: int, monkeypatch: pytest.MonkeyPatch
) -> None:
    url = f"http://127.0.0.1:{closed_port}/pretrain.pth"
    patch_spec(monkeypatch, url, "0" * 64)
    with pytest.raises(WeightsUnavailableError) as err:
        create_point_backbone("point_mae")
    msg = str(err.value)
    assert POINT_MAE_WEIGHTS.filename in msg and url in msg and "fpfh" in msg
    assert str(cache / POINT_MAE_WEIGHTS.filename) in msg
    assert not (cache / POINT_MAE_WEIGHTS.filename).exists()


def test_registry_names_and_errors() -> None:
    assert list_backbones("3d") == ["fpfh", "point_mae"]
    fpfh = backbone_entry("fpfh", "3d")
    assert fpfh.offline and fpfh.weights_spec is None and fpfh.modality == "3d"
    assert backbone_entry("point_mae").weights_spec == POINT_MAE_WEIGHTS
    for name in ("pointnet", "efficientnet_lite0"):  # a 2D name is no 3D backbone
        with pytest.raises(UnknownBackboneError) as err:
            create_point_backbone(name)
        assert re.search(
            rf"Unknown 3D backbone '{name}'; valid names: fpfh, point_mae$", str(err.value)
        )
    with pytest.raises(ValueError, match="twice"):
        register_backbone(
            "fpfh", fpfh.factory, modality="3d", description="x", offline=True, weights_spec=None
        )
    assert "efficientnet_lite0" in list_backbones("2d")  # one registry, filtered by modality
    assert "fpfh" not in list_backbones("2d")


def test_default_online_and_cached(cache: Path) -> None:
    name, reason = choose_default_point_backbone(probe=lambda timeout: True)
    assert name == "point_mae" and "download" in reason

    def no_probe(timeout: float) -> bool:
        raise AssertionError("the network must not be probed when the weights are cached")

    cache.mkdir()
    (cache / POINT_MAE_WEIGHTS.filename).write_bytes(b"fake")
    name, reason = choose_default_point_backbone(probe=no_probe)
    assert name == "point_mae" and "cached" in reason


def test_attention_scale_is_head_dim() -> None:
    # The fused attention must use 1/sqrt(64) like the reference's explicit softmax(q k^T * scale).
    torch.manual_seed(0)
    attn = PointTransformer(depth=1).blocks.blocks[0].attn
    x = torch.randn(1, 9, 384)
    q, k, v = attn.qkv(x).reshape(1, 9, 3, 6, 64).permute(2, 0, 3, 1, 4)
    weights = torch.softmax(q @ k.transpose(-2, -1) / math.sqrt(64), dim=-1)
    want = attn.proj((weights @ v).transpose(1, 2).reshape(1, 9, 384))
    with torch.no_grad():
        torch.testing.assert_close(attn(x), want, rtol=1e-5, atol=1e-5)
