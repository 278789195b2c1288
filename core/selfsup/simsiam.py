"""SimSiam (Chen & He, 2021): two augmented views of a crop go through the same encoder + projector; a small
predictor on one side must match the other side's projection, whose gradient is stopped.

No negatives (SimCLR / MoCo need large batches or a queue of thousands of keys), no momentum encoder (BYOL), stable
with batches of 8–32. The projector is narrower than the paper's (512, not 2048) to keep steps cheap on a CPU. With
two dates of one place as the pair (``temporal_pairs``), the views come from the two images.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from ..model import conv_like
from ..registries import BACKBONES
from . import cpu_state, random_views

PROJECTION, BOTTLENECK = 512, 128


def augment_view(x: torch.Tensor, valid: torch.Tensor, crop: int, rng: torch.Generator) -> torch.Tensor:
    """One augmented view per sample of ``x`` [B,C,S,S] (normalised; ``valid`` [B,S,S]): a random sub-window
    (side crop..S) resized to ``crop``, a flip and quarter turn, per-band brightness (±0.2 σ) and contrast
    (×0.8–1.2) jitter, gaussian noise (0.05 σ); invalid pixels stay 0. Every draw comes from ``rng``."""
    x, mask = random_views(x, valid, crop, rng)
    b, c = x.shape[:2]
    device = x.device
    contrast = (0.8 + 0.4 * torch.rand(b, c, 1, 1, generator=rng)).to(device)
    brightness = (0.2 * torch.randn(b, c, 1, 1, generator=rng)).to(device)
    noise = (0.05 * torch.randn(x.shape, generator=rng)).to(device)
    return (x * contrast + brightness + noise) * mask


class SimSiam(nn.Module):
    """A registered backbone (N-band first conv, no classifier) + projector + predictor."""

    def __init__(self, backbone: str, in_channels: int):
        super().__init__()
        net = BACKBONES.load(backbone).build()
        net.conv1 = conv_like(net.conv1, in_channels)
        width = net.fc.in_features
        net.fc = nn.Identity()
        self.encoder = net
        self.projector = nn.Sequential(
            nn.Linear(width, PROJECTION, bias=False), nn.BatchNorm1d(PROJECTION), nn.ReLU(inplace=True),
            nn.Linear(PROJECTION, PROJECTION, bias=False), nn.BatchNorm1d(PROJECTION, affine=False))
        self.predictor = nn.Sequential(
            nn.Linear(PROJECTION, BOTTLENECK, bias=False), nn.BatchNorm1d(BOTTLENECK), nn.ReLU(inplace=True),
            nn.Linear(BOTTLENECK, PROJECTION))

    def forward(self, x1: torch.Tensor, v1: torch.Tensor, x2: torch.Tensor, v2: torch.Tensor, crop: int,
                rng: torch.Generator) -> torch.Tensor:
        (z1, p1), (z2, p2) = self._embed(augment_view(x1, v1, crop, rng)), self._embed(augment_view(x2, v2, crop, rng))
        return 0.5 * (_negative_cosine(p1, z2) + _negative_cosine(p2, z1))

    def _embed(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        z = self.projector(self.encoder(x))
        return z, self.predictor(z)

    def backbone_state(self) -> dict[str, torch.Tensor]:
        return cpu_state(self.encoder)


def _negative_cosine(p: torch.Tensor, z: torch.Tensor) -> torch.Tensor:
    return -F.cosine_similarity(p.float(), z.detach().float(), dim=-1).mean()
