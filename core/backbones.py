"""Backbones: torchvision ResNets, built without weights (see :mod:`.weights` for where weights come from)."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import torchvision
from torch import nn


@dataclass(frozen=True)
class TorchvisionBackbone:
    """A torchvision classification network used as a feature extractor, and its ImageNet weights enum."""

    builder: Callable[..., nn.Module]
    imagenet: type[torchvision.models.WeightsEnum]

    def build(self) -> nn.Module:
        """The network with random weights (3 input bands; the model adapts its first conv)."""
        return self.builder()


resnet18 = TorchvisionBackbone(torchvision.models.resnet18, torchvision.models.ResNet18_Weights)
resnet34 = TorchvisionBackbone(torchvision.models.resnet34, torchvision.models.ResNet34_Weights)
resnet50 = TorchvisionBackbone(torchvision.models.resnet50, torchvision.models.ResNet50_Weights)
resnet101 = TorchvisionBackbone(torchvision.models.resnet101, torchvision.models.ResNet101_Weights)
