"""Self-supervised objectives the pretraining task (:mod:`..tasks.pretrain`) can run, one module each, listed in
``registries.PRETRAIN_METHODS``; and the views they cut from a batch of context windows.

A method is an ``nn.Module`` built as ``Method(backbone, in_channels)`` whose ``forward(x1, v1, x2, v2, crop, rng)``
returns the loss of one batch (``x1``/``x2`` [B,C,S,S] normalised context windows, ``v1``/``v2`` [B,S,S] their
validity; the two are the same window, or the same place on two dates), and whose ``backbone_state()`` is the part a
segmentation model starts from, under torchvision's names (``conv1.weight`` … ``layer4.*``, no ``fc``). A method
that trains a segmentation decoder as well may also offer ``decoder_state()``: ``(decoder name, weights)`` without
the final classifier, which fine-tuning can start its decoder from (``TrainConfig.pretrained_decoder``). The loss is
computed in ``forward`` so that DDP sees every pass; every random draw comes from ``rng``.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn


def cpu_state(module: nn.Module) -> dict[str, torch.Tensor]:
    """``module``'s weights and buffers, detached, on the CPU (what a backbone package stores)."""
    return {k: v.detach().cpu().contiguous() for k, v in module.state_dict().items()}


def random_views(x: torch.Tensor, valid: torch.Tensor, crop: int, rng: torch.Generator, rescale: bool = True
                 ) -> tuple[torch.Tensor, torch.Tensor]:
    """One ``crop`` px view per sample of ``x`` [B,C,S,S] and its validity [B,1,crop,crop]: a random sub-window
    (side crop..S, resized to ``crop``; with ``rescale=False`` always ``crop``), then a quarter turn and a flip."""
    b, c, s, _ = x.shape
    xs, masks = [], []
    for k in range(b):
        side = int(torch.randint(min(crop, s), s + 1, (1,), generator=rng)) if rescale else min(crop, s)
        r, q = (int(torch.randint(s - side + 1, (1,), generator=rng)) for _ in range(2))
        xv = x[k:k + 1, :, r:r + side, q:q + side]
        vv = valid[k:k + 1, None, r:r + side, q:q + side]
        if side != crop:
            xv = F.interpolate(xv, size=(crop, crop), mode="bilinear", align_corners=False)
            vv = F.interpolate(vv, size=(crop, crop), mode="nearest")
        turns, flip = int(torch.randint(4, (1,), generator=rng)), bool(torch.randint(2, (1,), generator=rng))
        xv, vv = torch.rot90(xv, turns, (2, 3)), torch.rot90(vv, turns, (2, 3))
        if flip:
            xv, vv = xv.flip(3), vv.flip(3)
        xs.append(xv)
        masks.append(vv)
    return torch.cat(xs), torch.cat(masks)
