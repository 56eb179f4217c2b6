"""Choosing the arithmetic precision of the backbone forward passes.

``bf16`` runs the 2D backbones and the Point-MAE transformer under ``torch.autocast`` with
bfloat16; their outputs are cast back to float32, so everything downstream stays float32.
``auto`` picks bf16 only where it is known to pay: a CPU with native bf16 matrix units
(AMX-BF16 or AVX512-BF16), and a backbone that opts in (:attr:`auto_bf16`) because it ran much
faster there with maps agreeing with float32 (README, "Precision"): ViT-B/8 extraction 2.45x
faster, maps Pearson 0.99938; Point-MAE 2.3x, 0.99972. EfficientNet-Lite stays float32 under
``auto``: bf16 gained 1.09x on a whole run and moved image AUROC by 0.7 points. Elsewhere, CUDA
included (not measured here), ``auto`` is float32.
``bf16`` asked for on a CPU without those units still works: torch emulates bfloat16 there, with
the same results and usually slower than float32.
"""

from __future__ import annotations

import contextlib
from functools import cache
from pathlib import Path

import torch

from engine.config import PRECISIONS

CPUINFO = Path("/proc/cpuinfo")
# /proc/cpuinfo flags of native bf16 matrix/vector instructions (Intel AMX, AVX-512 BF16).
BF16_FLAGS = frozenset({"amx_bf16", "avx512_bf16"})


@cache
def cpu_has_bf16(cpuinfo: Path = CPUINFO) -> bool:
    """Whether the CPU has native bf16 units, from the flags in ``cpuinfo`` (read once).

    False where the file does not exist (macOS, Windows) or cannot be read.
    """
    try:
        text = cpuinfo.read_text(errors="replace")
    except OSError:
        return False
    for line in text.splitlines():
        if line.startswith("flags") and ":" in line:
            # every core lists the same flags: the first line decides
            return not BF16_FLAGS.isdisjoint(line.split(":", 1)[1].split())
    return False


def resolve_precision(
    config_value: str, device: torch.device | str, *, auto_bf16: bool = True
) -> torch.dtype | None:
    """The autocast dtype of the backbones for ``config.precision`` on ``device``.

    Args:
        config_value: ``auto``, ``fp32`` or ``bf16``.
        device: Where the backbone runs.
        auto_bf16: The backbone opts in to bf16 under ``auto``.

    Returns:
        ``torch.bfloat16`` to run under autocast, or None for plain float32.

    Raises:
        ValueError: ``config_value`` is not one of :data:`PRECISIONS`.
    """
    if config_value not in PRECISIONS:
        raise ValueError(f"precision must be one of {', '.join(PRECISIONS)}, got {config_value!r}.")
    if config_value == "bf16":
        return torch.bfloat16
    if (
        config_value == "auto"
        and auto_bf16
        and torch.device(device).type == "cpu"
        and cpu_has_bf16()
    ):
        return torch.bfloat16
    return None


def apply_precision(backbone: object, config_value: str) -> None:
    """Set a backbone's :attr:`precision` for ``config.precision`` (its device, its opt-in)."""
    backbone.precision = resolve_precision(  # type: ignore[attr-defined]
        config_value,
        backbone.device,  # type: ignore[attr-defined]
        auto_bf16=getattr(backbone, "auto_bf16", False),
    )


def autocast(device: torch.device, dtype: torch.dtype | None) -> contextlib.AbstractContextManager:
    """``torch.autocast`` on ``device`` with ``dtype``, or a no-op context when it is None."""
    if dtype is None:
        return contextlib.nullcontext()
    return torch.autocast(device.type, dtype=dtype)
