"""The torch runner: normalise, run the package's model (fp16 autocast on CUDA), softmax."""

from __future__ import annotations

import os
from contextlib import nullcontext
from typing import Any

import numpy as np
import torch

from ..errors import PredictionError
from ..normalise import normalise
from ..package import ModelPackage, load_package


class TorchRunner:
    """A :class:`..package.ModelPackage` on a torch device, as a :class:`.runner.Runner`.

    Softmax is taken in float32.
    """

    def __init__(self, package: ModelPackage, device: torch.device):
        self.package = package
        self.torch_device = device
        self.model = package.model.to(device).eval()

    @classmethod
    def load(cls, package: ModelPackage | str | os.PathLike, device: torch.device) -> TorchRunner:
        """A runner for a loaded package or the .geofm file at ``package``."""
        return cls(package if isinstance(package, ModelPackage) else load_package(package, device), device)

    # the package facts a runner offers
    classes = property(lambda self: self.package.classes)
    tile_size = property(lambda self: self.package.tile_size)
    in_channels = property(lambda self: self.package.in_channels)
    normalisation = property(lambda self: self.package.normalisation)
    stats = property(lambda self: self.package.stats)
    resolution = property(lambda self: self.package.resolution)
    crs = property(lambda self: self.package.crs)
    path = property(lambda self: self.package.path)

    @property
    def metadata(self) -> dict[str, Any]:
        return self.package.metadata

    @property
    def device(self) -> str:
        return str(self.torch_device)

    def probabilities(self, raw_tiles: np.ndarray, valid: np.ndarray) -> np.ndarray:
        """Raw float32 [B, C, T, T] and validity [B, T, T] -> softmax probabilities float32 [B, K, T, T]."""
        x = np.stack([normalise(t, v, self.stats, self.normalisation) for t, v in zip(raw_tiles, valid)])
        try:
            amp = torch.autocast("cuda") if self.torch_device.type == "cuda" else nullcontext()
            with torch.inference_mode(), amp:
                logits = self.model(torch.from_numpy(x).to(self.torch_device))
            return torch.softmax(logits.float(), dim=1).cpu().numpy()
        except torch.cuda.OutOfMemoryError as err:
            raise PredictionError("the device ran out of memory",
                                  fix=f"use a batch size below {len(raw_tiles)}, or --device cpu") from err
