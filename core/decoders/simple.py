"""The simple decoder: one block on the deepest features, then a transposed conv back to the tile's size."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from . import conv_bn_relu


class SimpleDecoder(nn.Module):
    """conv3x3 + BN + ReLU on ``layer4``, then a transposed conv upsampling by its measured stride.

    Logits match the tile exactly when H and W are divisible by the stride; otherwise they are resized
    bilinearly to H, W.
    """

    uses = ("layer4",)

    def __init__(self, stages: list[tuple[int, int]], in_channels: int, num_classes: int, channels: int = 256):
        super().__init__()
        (deep, stride), = stages
        self.block = conv_bn_relu(deep, channels)
        self.up = nn.ConvTranspose2d(channels, num_classes, kernel_size=stride, stride=stride)

    def forward(self, features: dict[str, torch.Tensor], image: torch.Tensor) -> torch.Tensor:
        logits = self.up(self.block(features["layer4"]))
        if logits.shape[-2:] != image.shape[-2:]:
            logits = F.interpolate(logits, size=image.shape[-2:], mode="bilinear", align_corners=False)
        return logits
