"""Augmentation of training batches: flips and 90° turns (tiles seen from above have no 'up'), and band jitter."""

from __future__ import annotations

import torch


def augment_batch(x: torch.Tensor, y: torch.Tensor, generator: torch.Generator) -> tuple[torch.Tensor, torch.Tensor]:
    """Rotate each square tile by a random multiple of 90° and flip it at random, labels alike.

    ``x`` float [B,C,T,T], ``y`` int64 [B,T,T]; ``generator`` (on the CPU) makes it repeatable for resumes.
    """
    turns = torch.randint(0, 4, (len(x),), generator=generator).tolist()
    flips = torch.randint(0, 2, (len(x),), generator=generator).tolist()
    xs, ys = [], []
    for xi, yi, k, f in zip(x, y, turns, flips):
        xi, yi = torch.rot90(xi, k, (-2, -1)), torch.rot90(yi, k, (-2, -1))
        if f:
            xi, yi = xi.flip(-1), yi.flip(-1)
        xs.append(xi)
        ys.append(yi)
    return torch.stack(xs), torch.stack(ys)


def jitter_bands(x: torch.Tensor, spread: float, generator: torch.Generator) -> torch.Tensor:
    """``x`` [B,C,T,T] (normalised bands) with each band of each tile scaled by 1 + N(0, spread) and shifted by
    N(0, spread): the spectra a model sees vary as haze, season and sensor vary them, while every pixel's place among
    its tile's stays."""
    b, c = x.shape[:2]
    gain = 1 + spread * torch.randn((b, c, 1, 1), generator=generator)
    offset = spread * torch.randn((b, c, 1, 1), generator=generator)
    return x * gain.to(x.device, x.dtype) + offset.to(x.device, x.dtype)
