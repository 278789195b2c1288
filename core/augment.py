"""Flip and 90° rotation of whole batches: tiles seen from above have no 'up'."""

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
