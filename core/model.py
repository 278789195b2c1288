"""Segmentation model: a torchvision ResNet backbone adapted to N bands, with a `simple` or `fpn` decoder."""

from __future__ import annotations

import os
from collections import OrderedDict
from collections.abc import Sequence
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn
from torchvision.models._utils import IntermediateLayerGetter
from torchvision.ops import FeaturePyramidNetwork

from .errors import ConfigError
from .weights import BACKBONES, check_backbone, load_backbone_weights

DECODERS = ("simple", "fpn")
_STAGES = ("layer1", "layer2", "layer3", "layer4")


def build_model(
    backbone: str = "resnet50",
    decoder: str = "fpn",
    in_channels: int = 3,
    num_classes: int = 2,
    weights: str | os.PathLike = "none",
    rgb_bands: Sequence[int] | None = (0, 1, 2),
) -> SegmentationModel:
    """A segmentation network: float [B, in_channels, H, W] -> logits [B, num_classes, H, W].

    ``backbone`` is one of resnet18/34/50/101 (avgpool and fc stripped); ``decoder`` is ``'simple'``
    (conv3x3 + BN + ReLU, then a transposed conv whose factor is the backbone's measured output stride) or
    ``'fpn'`` (torchvision FeaturePyramidNetwork over layer1..layer4 and a light head, bilinear to H, W).
    ``weights`` is ``'imagenet'``, ``'none'`` or a local state-dict path (see :mod:`.weights`);
    pretrained first-conv kernels are adapted to ``in_channels`` bands as :func:`adapt_first_conv` describes;
    with ``'none'`` an N-band first conv is initialised as torchvision initialises its convs. ``rgb_bands``
    names the (0-based) bands holding red, green and blue. Freeze the backbone with
    :meth:`SegmentationModel.freeze_backbone`. Rebuild a model from its description with ``build_model(**model.architecture, weights='none')``.
    """
    check_backbone(backbone)
    if decoder not in DECODERS:
        raise ConfigError(f"unknown decoder {decoder!r}", fix=f"choose one of {', '.join(DECODERS)}")
    if in_channels < 1 or num_classes < 1:
        raise ConfigError(
            f"a model needs at least one band and one class (got {in_channels} bands, {num_classes} classes)",
            fix="check the image's bands and the label classes",
        )
    rgb = _check_rgb_bands(rgb_bands, in_channels)
    net = BACKBONES[backbone][0]()
    state = load_backbone_weights(backbone, weights)
    if state is not None:
        net.load_state_dict(state, strict=False)  # only fc.* is missing: weights.py checked the rest
        if in_channels != 3 or rgb != (0, 1, 2):
            net.conv1 = _conv_like(net.conv1, in_channels, adapt_first_conv(net.conv1.weight.data, in_channels, rgb))
    elif in_channels != 3:
        net.conv1 = _conv_like(net.conv1, in_channels)
    stages = _STAGES if decoder == "fpn" else _STAGES[-1:]
    body = IntermediateLayerGetter(net, return_layers={name: name for name in stages})
    shapes = _probe(body, in_channels)
    if decoder == "fpn":
        head: nn.Module = FPNDecoder([c for c, _ in shapes], num_classes)
    else:
        head = SimpleDecoder(shapes[-1][0], num_classes, stride=shapes[-1][1])
    architecture = {
        "backbone": backbone,
        "decoder": decoder,
        "in_channels": in_channels,
        "num_classes": num_classes,
        "rgb_bands": list(rgb) if rgb is not None else None,
    }
    return SegmentationModel(body, head, architecture)


def adapt_first_conv(weight: torch.Tensor, in_channels: int, rgb_bands: Sequence[int] | None) -> torch.Tensor:
    """Turn pretrained RGB kernels [O, 3, k, k] into N-band kernels [O, N, k, k].

    Band ``rgb_bands[j]`` keeps the pretrained kernel of RGB channel j; every other band starts from the mean
    RGB kernel. All kernels are then scaled by 3/N so that, for bands of similar values, the conv's output
    keeps the magnitude it had on 3-band input (one band gets the sum of the RGB kernels). With
    ``rgb_bands=None`` (or fewer than 3 bands) every band starts from the mean kernel.
    """
    new = weight.mean(dim=1, keepdim=True).repeat(1, in_channels, 1, 1)
    for j, band in enumerate(rgb_bands or ()):
        new[:, band] = weight[:, j]
    return new * (3.0 / in_channels)


class SegmentationModel(nn.Module):
    """Backbone + decoder; ``architecture`` is the dict that rebuilds it (see :func:`build_model`)."""

    def __init__(self, backbone: IntermediateLayerGetter, decoder: nn.Module, architecture: dict[str, Any]):
        super().__init__()
        self.backbone = backbone
        self.decoder = decoder
        self.architecture = architecture
        self.backbone_frozen = False

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """float [B, C, H, W] -> logits [B, K, H, W]."""
        return self.decoder(self.backbone(x), x.shape[-2:])

    def freeze_backbone(self, frozen: bool = True) -> None:
        """Stop (or resume) training the backbone: no gradients, batch-norm statistics kept as they are.

        Under DDP, wrap the model after the last change, or DDP will not synchronise re-enabled parameters.
        """
        self.backbone_frozen = frozen
        self.backbone.requires_grad_(not frozen)
        self.train(self.training)

    def train(self, mode: bool = True) -> SegmentationModel:
        super().train(mode)
        if self.backbone_frozen:
            self.backbone.eval()
        return self


class SimpleDecoder(nn.Module):
    """conv3x3 + BN + ReLU on the deepest features, then a transposed conv upsampling by ``stride``.

    Logits match the tile exactly when H and W are divisible by ``stride``; otherwise they are resized
    bilinearly to H, W (the fallback).
    """

    def __init__(self, in_channels: int, num_classes: int, stride: int, channels: int = 256):
        super().__init__()
        self.block = _conv_bn_relu(in_channels, channels)
        self.up = nn.ConvTranspose2d(channels, num_classes, kernel_size=stride, stride=stride)

    def forward(self, features: OrderedDict[str, torch.Tensor], size: Sequence[int]) -> torch.Tensor:
        logits = self.up(self.block(next(reversed(features.values()))))
        if tuple(logits.shape[-2:]) != tuple(size):
            logits = F.interpolate(logits, size=tuple(size), mode="bilinear", align_corners=False)
        return logits


class FPNDecoder(nn.Module):
    """FeaturePyramidNetwork over the backbone stages; the levels are resized to the finest one (stride 4)
    and summed, then conv3x3 + BN + ReLU and a 1x1 classifier; logits are resized bilinearly to H, W."""

    def __init__(self, in_channels_list: list[int], num_classes: int, channels: int = 128):
        super().__init__()
        self.fpn = FeaturePyramidNetwork(in_channels_list, channels)
        self.head = nn.Sequential(_conv_bn_relu(channels, channels), nn.Conv2d(channels, num_classes, 1))

    def forward(self, features: OrderedDict[str, torch.Tensor], size: Sequence[int]) -> torch.Tensor:
        levels = list(self.fpn(features).values())
        fine = levels[0]
        for level in levels[1:]:
            fine = fine + F.interpolate(level, size=fine.shape[-2:], mode="bilinear", align_corners=False)
        return F.interpolate(self.head(fine), size=tuple(size), mode="bilinear", align_corners=False)


def _conv_bn_relu(in_channels: int, out_channels: int) -> nn.Sequential:
    return nn.Sequential(
        nn.Conv2d(in_channels, out_channels, 3, padding=1, bias=False),
        nn.BatchNorm2d(out_channels),
        nn.ReLU(inplace=True),
    )


def _conv_like(conv: nn.Conv2d, in_channels: int, weight: torch.Tensor | None = None) -> nn.Conv2d:
    """A copy of ``conv`` taking ``in_channels`` bands: given ``weight``, or initialised as torchvision does."""
    new = nn.Conv2d(in_channels, conv.out_channels, conv.kernel_size, conv.stride, conv.padding, bias=False)
    if weight is None:
        nn.init.kaiming_normal_(new.weight, mode="fan_out", nonlinearity="relu")
    else:
        new.weight.data.copy_(weight)
    return new


def _check_rgb_bands(rgb_bands: Sequence[int] | None, in_channels: int) -> tuple[int, ...] | None:
    """The RGB mapping to use: None when not given or when there are fewer than 3 bands."""
    if rgb_bands is None or in_channels < 3:
        return None
    rgb = tuple(int(b) for b in rgb_bands)
    if len(rgb) != 3 or len(set(rgb)) != 3 or not all(0 <= b < in_channels for b in rgb):
        raise ConfigError(
            f"rgb_bands must be three different band indices in 0..{in_channels - 1} (got {list(rgb_bands)})",
            fix="name the (0-based) bands that hold red, green and blue, e.g. [2, 1, 0]",
        )
    return rgb


def _probe(body: nn.Module, in_channels: int, size: int = 64) -> list[tuple[int, int]]:
    """(channels, output stride) of each returned stage, measured on meta tensors (shapes only, no compute)."""
    meta = {name: t.to("meta") for name, t in [*body.named_parameters(), *body.named_buffers()]}
    with torch.no_grad():
        features = torch.func.functional_call(body, meta, (torch.zeros(1, in_channels, size, size, device="meta"),))
    return [(f.shape[1], size // f.shape[-1]) for f in features.values()]
