"""The U-Net decoder: upsampling blocks joined by skip connections down to full resolution, where a small branch
on the input bands lets each pixel's own spectrum reach the logits."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from . import conv_bn_relu

#: Decoder channels after each upsampling step, deepest first (stride 16, 8, 4, 2, then full resolution).
CHANNELS = (256, 128, 64, 32, 32)
PIXEL_CHANNELS = 32


class UNetDecoder(nn.Module):
    """From ``layer4`` up: at each step, upsample to the next skip's size, concatenate it, two conv blocks.

    The last step joins a two-block branch computed on the image itself at full resolution, so fine detail and
    the pixel's spectrum are not lost to the backbone's striding.
    """

    uses = ("stem", "layer1", "layer2", "layer3", "layer4")

    def __init__(self, stages: list[tuple[int, int]], in_channels: int, num_classes: int):
        super().__init__()
        channels = [c for c, _ in stages]  # stem, layer1 … layer4
        skips = [*channels[-2::-1], PIXEL_CHANNELS]  # layer3, layer2, layer1, stem, pixel branch
        self.pixel = nn.Sequential(conv_bn_relu(in_channels, PIXEL_CHANNELS), conv_bn_relu(PIXEL_CHANNELS,
                                                                                            PIXEL_CHANNELS))
        blocks, below = [], channels[-1]
        for skip, out in zip(skips, CHANNELS):
            blocks.append(nn.Sequential(conv_bn_relu(below + skip, out), conv_bn_relu(out, out)))
            below = out
        self.blocks = nn.ModuleList(blocks)
        self.classifier = nn.Conv2d(below, num_classes, 1)

    def forward(self, features: dict[str, torch.Tensor], image: torch.Tensor) -> torch.Tensor:
        skips = [features["layer3"], features["layer2"], features["layer1"], features["stem"], self.pixel(image)]
        x = features["layer4"]
        for skip, block in zip(skips, self.blocks):
            x = F.interpolate(x, size=skip.shape[-2:], mode="bilinear", align_corners=False)
            x = block(torch.cat([x, skip], dim=1))
        return self.classifier(x)
