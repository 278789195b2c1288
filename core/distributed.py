"""One training entry point for one process or many (``torchrun``): rank, world size and reductions."""

from __future__ import annotations

import os
from dataclasses import dataclass

import torch
import torch.distributed as dist


@dataclass(frozen=True)
class DistContext:
    """Where this process stands: ``rank`` of ``world_size``; ``is_main`` alone writes files."""

    rank: int = 0
    world_size: int = 1
    local_rank: int = 0

    @property
    def is_main(self) -> bool:
        return self.rank == 0

    @property
    def active(self) -> bool:
        return self.world_size > 1


def init_distributed(device_type: str) -> DistContext:
    """Join the process group ``torchrun`` describes in the environment; a plain run gets a 1-process context."""
    world = int(os.environ.get("WORLD_SIZE", "1"))
    if world <= 1:
        return DistContext()
    if not dist.is_initialized():
        dist.init_process_group(backend="nccl" if device_type == "cuda" else "gloo")
    return DistContext(dist.get_rank(), dist.get_world_size(), int(os.environ.get("LOCAL_RANK", "0")))


def shutdown(ctx: DistContext) -> None:
    """Leave the process group (a no-op for a single process)."""
    if ctx.active and dist.is_initialized():
        dist.destroy_process_group()


def mean_across(value: float, ctx: DistContext, device: torch.device) -> float:
    """The mean of ``value`` over all processes."""
    if not ctx.active:
        return value
    t = torch.tensor([value], dtype=torch.float64, device=device)
    dist.all_reduce(t)
    return float(t.item()) / ctx.world_size


def any_across(flag: bool, ctx: DistContext, device: torch.device) -> bool:
    """True when ``flag`` is true in any process (so all stop together)."""
    if not ctx.active:
        return flag
    t = torch.tensor([1.0 if flag else 0.0], device=device)
    dist.all_reduce(t)
    return bool(t.item() > 0)


def is_main_process() -> bool:
    """True unless ``torchrun`` started this process as a rank other than 0 (only rank 0 prints and writes)."""
    return int(os.environ.get("RANK", "0")) == 0
