"""The FPN decoder: torchvision's FeaturePyramidNetwork over every stage, summed at the finest level."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn
from torchvision.ops import FeaturePyramidNetwork

from . import conv_bn_relu


class FPNDecoder(nn.Module):
    """The pyramid's levels are resized to the finest one (stride 4) and summed, then conv3x3 + BN + ReLU and a
    1x1 classifier; logits are resized bilinearly to H, W."""

    uses = ("layer1", "layer2", "layer3", "layer4")

    def __init__(self, stages: list[tuple[int, int]], in_channels: int, num_classes: int, channels: int = 128):
        super().__init__()
        self.fpn = FeaturePyramidNetwork([c for c, _ in stages], channels)
        self.head = nn.Sequential(conv_bn_relu(channels, channels), nn.Conv2d(channels, num_classes, 1))

    def forward(self, features: dict[str, torch.Tensor], image: torch.Tensor) -> torch.Tensor:
        levels = list(self.fpn(features).values())
        fine = levels[0]
        for level in levels[1:]:
            fine = fine + F.interpolate(level, size=fine.shape[-2:], mode="bilinear", align_corners=False)
        return F.interpolate(self.head(fine), size=image.shape[-2:], mode="bilinear", align_corners=False)
