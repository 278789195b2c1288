"""The torch runner: normalise, run the package's model under the shared mixed-precision policy, softmax."""

from __future__ import annotations

import os
from typing import Any

import numpy as np
import torch

from ..device import amp_dtype
from ..errors import PredictionError
from ..normalise import normalise
from ..package import ModelPackage, load_package


class TorchRunner:
    """A :class:`..package.ModelPackage` on a torch device, as a :class:`.runner.Runner`.

    Mixed precision follows :func:`..device.amp_dtype`, the policy training uses: bf16 autocast on GPUs that
    support it, fp16 on older ones, none on CPU and MPS. Softmax is taken in float32.
    """

    def __init__(self, package: ModelPackage, device: torch.device):
        self.package = package
        self.torch_device = device
        self.model = package.model.to(device).eval()
        self.amp = amp_dtype(device)

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
            with torch.inference_mode(), torch.autocast(
                self.torch_device.type, dtype=self.amp, enabled=self.amp is not None
            ):
                logits = self.model(torch.from_numpy(x).to(self.torch_device))
            return torch.softmax(logits.float(), dim=1).cpu().numpy()
        except torch.cuda.OutOfMemoryError as err:
            raise PredictionError("the device ran out of memory",
                                  fix=f"use a batch size below {len(raw_tiles)}, or --device cpu") from err
