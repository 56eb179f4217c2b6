"""Weights files that are not checkpoints: one line naming the file and what was expected.

Checkpoints are never unpickled with ``weights_only=False``: a file that holds Python objects
is refused, whoever made it.
"""

from __future__ import annotations

import pickle
import re
import zipfile
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest
import torch
from safetensors.torch import save_file

from engine.backbones import create_backbone, create_point_backbone
from engine.backbones.weights import load_checkpoint
from engine.errors import InvalidInputError, MuscError

ENGINE = Path(__file__).resolve().parents[3] / "engine"


class Payload:
    """A class a malicious or careless checkpoint could pickle."""

    def __reduce__(self) -> tuple[object, tuple[str]]:
        return (print, ("unpickling ran code",))


def random_bytes(path: Path) -> None:
    path.write_bytes(np.random.default_rng(0).bytes(4096))


def text_file(path: Path) -> None:
    path.write_text("model: efficientnet\nweights: see README\n")


def empty_file(path: Path) -> None:
    path.write_bytes(b"")


def plain_pickle_with_class(path: Path) -> None:
    path.write_bytes(pickle.dumps({"model": Payload()}))


def torch_save_with_class(path: Path) -> None:
    torch.save({"state_dict": {"w": torch.ones(2)}, "extra": Payload()}, path)


def truncated_checkpoint(path: Path) -> None:
    torch.save({"w": torch.ones(1000)}, path)
    path.write_bytes(path.read_bytes()[:500])


def broken_safetensors(path: Path) -> None:
    save_file({"w": torch.ones(10)}, str(path))
    path.write_bytes(path.read_bytes()[:40])


def list_checkpoint(path: Path) -> None:
    torch.save([torch.ones(2)], path)


# (builder, file name, pattern of the fault)
FILES: list[tuple[Callable[[Path], None], str, str]] = [
    (random_bytes, "random.pth", r"is not a checkpoint \(neither a PyTorch"),
    (text_file, "notes.pth", r"is not a checkpoint .*starts with b'model: e'"),
    (empty_file, "empty.pt", r"is empty"),
    (plain_pickle_with_class, "pickled.pth", r"plain Python pickle .*unpickling can run code"),
    (
        torch_save_with_class,
        "classy.pth",
        r"holds Python objects other than tensors \(builtins\.print",
    ),
    (truncated_checkpoint, "cut.pth", r"cannot be read as a PyTorch checkpoint \(RuntimeError"),
    (broken_safetensors, "cut.safetensors", r"cannot be read as safetensors \(SafetensorError"),
    (list_checkpoint, "list.pth", r"(not a state dict|not a Point-MAE checkpoint).*found list"),
]
BACKBONES: list[tuple[str, Callable[[Path], object], str]] = [
    ("point_mae", lambda path: create_point_backbone("point_mae", path), "Point-MAE"),
    ("efficientnet_lite0", lambda path: create_backbone("efficientnet_lite0", path), "efficient"),
    ("dino_vits8", lambda path: create_backbone("dino_vits8", path, image_size=64), "vit_small"),
]


@pytest.mark.parametrize("builder, name, fault", FILES, ids=[f[1] for f in FILES])
@pytest.mark.parametrize("backbone, create, expected", BACKBONES, ids=[b[0] for b in BACKBONES])
def test_bad_weights_file_gives_one_line(
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    builder: Callable[[Path], None],
    name: str,
    fault: str,
    backbone: str,
    create: Callable[[Path], object],
    expected: str,
) -> None:
    path = tmp_path / name
    builder(path)
    with pytest.raises(MuscError) as err:
        create(path)
    message = str(err.value)
    assert isinstance(err.value, InvalidInputError)
    assert str(path) in message and "\n" not in message and len(message) < 600
    assert re.search(fault, message), message
    if "found list" not in fault:  # the format checks say what the file should have been
        assert expected in message
    assert "unpickling ran code" not in capsys.readouterr().out  # Payload never ran


def test_numpy_scalars_beside_the_weights_are_allowed(tmp_path: Path) -> None:
    """Training scripts store metrics like np.float64(0.93); numpy 1 names them differently."""
    path = tmp_path / "metrics.pth"
    torch.save({"acc": np.float64(0.5), "w": torch.ones(2)}, path)
    old = tmp_path / "numpy1.pth"
    with zipfile.ZipFile(path) as src, zipfile.ZipFile(old, "w", zipfile.ZIP_STORED) as dst:
        for info in src.infolist():
            data = src.read(info.filename)
            if info.filename.endswith("data.pkl"):
                data = data.replace(b"numpy._core.multiarray", b"numpy.core.multiarray")
                assert b"numpy.core.multiarray" in data
            dst.writestr(info.filename, data)
    for checkpoint in (path, old):
        loaded = load_checkpoint(checkpoint, "a test checkpoint")
        assert loaded["acc"] == 0.5 and torch.equal(loaded["w"], torch.ones(2))


def test_legacy_and_safetensors_formats_load(tmp_path: Path) -> None:
    legacy = tmp_path / "old.pth"
    torch.save({"w": torch.arange(3.0)}, legacy, _use_new_zipfile_serialization=False)
    assert torch.equal(load_checkpoint(legacy, "x")["w"], torch.arange(3.0))
    named_pth = tmp_path / "really_safetensors.pth"  # format by content, not by name
    save_file({"w": torch.arange(2.0)}, str(named_pth))
    assert torch.equal(load_checkpoint(named_pth, "x")["w"], torch.arange(2.0))


def test_missing_or_folder_weights_path(tmp_path: Path) -> None:
    with pytest.raises(InvalidInputError, match=r"cannot be opened .* expected x"):
        load_checkpoint(tmp_path, "x")
    with pytest.raises(InvalidInputError, match=r"absent\.pth.*does not exist"):
        create_point_backbone("point_mae", tmp_path / "absent.pth")


def test_engine_never_unpickles_unsafely() -> None:
    offenders = [
        str(path.relative_to(ENGINE))
        for path in ENGINE.rglob("*.py")
        if re.search(r"weights_only\s*=\s*False", path.read_text())
    ]
    assert offenders == []
