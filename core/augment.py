"""Batch augmentation in the training loop: random shifts of the tiles, flips and 90° rotations (tiles seen from
above have no 'up')."""

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


def shift_batch(x: torch.Tensor, y: torch.Tensor, tile: int, generator: torch.Generator
                ) -> tuple[torch.Tensor, torch.Tensor]:
    """Cut a ``tile`` px square at a random place out of each larger item (``x`` [B,C,S,S], ``y`` [B,S,S], S ≥
    ``tile``: the tile with a margin of context around it). An item whose cut would hold no labelled pixel keeps
    the centre cut, the tile as indexed (which has one), so no batch is left without labels."""
    room = x.shape[-1] - tile
    if room <= 0:
        return x, y
    offsets = torch.randint(0, room + 1, (len(x), 2), generator=generator).tolist()
    xs, ys = [], []
    for xi, yi, (r, c) in zip(x, y, offsets):
        if not (yi[r:r + tile, c:c + tile] >= 0).any():
            r = c = room // 2
        xs.append(xi[:, r:r + tile, c:c + tile])
        ys.append(yi[r:r + tile, c:c + tile])
    return torch.stack(xs), torch.stack(ys)
