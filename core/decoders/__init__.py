"""Decoders: one module each, registered in :mod:`geofm.core.registries` (``DECODERS``).

A decoder is an ``nn.Module`` class with
- ``uses``: the backbone stages it reads, among ``stem`` (stride 2), ``layer1`` (4), ``layer2`` (8), ``layer3`` (16)
  and ``layer4`` (32);
- ``__init__(stages, in_channels, num_classes)``: ``stages`` lists (channels, output stride) of each used stage in
  that order, measured on the backbone; ``in_channels`` is the image's band count;
- ``forward(features, image)``: ``features`` maps stage name to tensor, ``image`` is the normalised input
  [B, C, H, W]; it returns logits [B, num_classes, H, W].
"""

from __future__ import annotations

from torch import nn


def conv_bn_relu(in_channels: int, out_channels: int) -> nn.Sequential:
    """conv3x3 (no bias) + batch norm + ReLU: the block every decoder is made of."""
    return nn.Sequential(
        nn.Conv2d(in_channels, out_channels, 3, padding=1, bias=False),
        nn.BatchNorm2d(out_channels),
        nn.ReLU(inplace=True),
    )
