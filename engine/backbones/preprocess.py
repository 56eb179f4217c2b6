"""Turning decoded images into backbone input tensors."""

from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F


def image_to_tensor(
    rgb: np.ndarray,
    size: int,
    mean: tuple[float, float, float],
    std: tuple[float, float, float],
) -> torch.Tensor:
    """Resize an RGB image to size x size and normalise it.

    Like the reference (torchvision Resize((S, S)) on a PIL image) the image is squashed, not
    cropped, with antialiased bicubic interpolation, so every pixel of the part is scored.

    Args:
        rgb: (H, W, 3) uint8 image.
        size: Output side.
        mean: Per-channel mean of the backbone's normalisation.
        std: Per-channel std of the backbone's normalisation.

    Returns:
        (3, size, size) float32 tensor.
    """
    pixels = torch.from_numpy(np.require(rgb, requirements=["C", "W"]))
    tensor = pixels.permute(2, 0, 1)[None].float() / 255.0
    if tensor.shape[-2:] != (size, size):
        tensor = F.interpolate(
            tensor, size=(size, size), mode="bicubic", align_corners=False, antialias=True
        ).clamp_(0.0, 1.0)
    mean_t = torch.tensor(mean, dtype=torch.float32).view(1, 3, 1, 1)
    std_t = torch.tensor(std, dtype=torch.float32).view(1, 3, 1, 1)
    return ((tensor - mean_t) / std_t)[0]
