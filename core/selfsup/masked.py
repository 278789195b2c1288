"""Masked reconstruction: the segmentation network itself (backbone + FPN decoder) fills in every band of the
patches hidden from its input, from what it sees around them.

A dense objective: every pixel is scored, as segmentation scores them, so the backbone's features at every stride
must carry what tells one place from its neighbours (texture, context, spectra), not only what two views of a crop
share. Half of the 8 × 8 px patches of each crop are hidden (set to the band means, 0 after normalisation); the loss
is the mean squared error of the normalised band values over the hidden valid pixels (SimMIM, Xie et al. 2022, on
a convolutional network). Views: a random crop of the context window, turned and flipped; no colour change, so the
values to restore are the image's own. The backbone is kept, and the FPN decoder less its last 1 × 1 convolution
(the per-band output), which fine-tuning may start its own FPN decoder from.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from ..model import build_model, is_output_weight
from . import cpu_state, random_views

#: Side of the hidden patches (px) and the share of patches hidden.
PATCH, HIDDEN = 8, 0.5


class MaskedReconstruction(nn.Module):
    """Backbone + FPN decoder with one output per band; ``forward`` returns the reconstruction loss."""

    def __init__(self, backbone: str, in_channels: int):
        super().__init__()
        self.net = build_model(backbone, "fpn", in_channels, in_channels, weights="none", spectral_branch=False)

    def forward(self, x1: torch.Tensor, v1: torch.Tensor, x2: torch.Tensor, v2: torch.Tensor, crop: int,
                rng: torch.Generator) -> torch.Tensor:
        x, valid = random_views(x1, v1, crop, rng, rescale=False)
        cells = -(-crop // PATCH)
        hidden = (torch.rand(len(x), 1, cells, cells, generator=rng) < HIDDEN).float().to(x.device)
        hidden = F.interpolate(hidden, scale_factor=PATCH, mode="nearest")[..., :crop, :crop]
        error = (self.net(x * (1 - hidden)).float() - x) ** 2
        scored = hidden * valid
        return (error * scored).sum() / (scored.sum() * x.shape[1]).clamp(min=1)

    def backbone_state(self) -> dict[str, torch.Tensor]:
        return cpu_state(self.net.backbone)

    def decoder_state(self) -> tuple[str, dict[str, torch.Tensor]]:
        """The FPN decoder without its output layer (its outputs are bands, not classes)."""
        head = self.net.decoder
        return "fpn", {k: v for k, v in cpu_state(head).items() if not is_output_weight(head, k)}
