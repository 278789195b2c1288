"""Pretraining a backbone on unlabelled rasters: the pretraining task (:mod:`.tasks.pretrain`) run by the shared loop."""

from __future__ import annotations

import time
from collections.abc import Iterator

import torch

from .checkpoint import read_checkpoint
from .config import PretrainConfig
from .device import resolve_device
from .events import Event
from .fileio import check_outputs, train_outputs
from .loop import Loop, LoopSettings
from .raster import open_raster
from .registries import PRETRAIN_METHODS
from .tasks import CancelFlag
from .tasks.pretrain import CONTEXT, PretrainTask, epochs_for_minutes

__all__ = ["estimate_seconds_per_step", "plan", "pretrain"]


def pretrain(config: PretrainConfig, cancel: CancelFlag | None = None) -> Iterator[Event]:
    """Pretrain a backbone as ``config`` says, yielding the same events as training; the backbone package lands at
    ``config.output`` (rewritten after every epoch), a ``.last.ckpt`` beside it for resuming.

    With a time budget (``minutes``) the epochs are those that fit, from a timed step, and the loop stops after the
    last whole epoch that fits (a finished run, not a cancelled one).
    """
    config.validate()
    outputs = train_outputs(config.output)  # before any image is read: no output may be an input
    check_outputs(outputs, {"image": config.images})
    check_outputs({k: v for k, v in outputs.items() if not k.startswith("resume checkpoint")},
                  {"checkpoint to resume from": config.resume})
    yield from Loop(PretrainTask(config), plan(config), cancel).run()


def plan(config: PretrainConfig, seconds_per_step: float | None = None) -> LoopSettings:
    """The loop settings of a pretraining run: the epochs given, or those that fit the time budget."""
    settings = LoopSettings.from_config(config)
    settings.freeze_backbone_epochs = 0
    if config.minutes:
        step = seconds_per_step if seconds_per_step is not None else estimate_seconds_per_step(config)
        done = read_checkpoint(config.resume)["state"]["epoch"] if config.resume else 0
        settings.epochs = done + epochs_for_minutes(config.minutes, step, config.steps_per_epoch)
        settings.time_limit_s = config.minutes * 60
    return settings


def estimate_seconds_per_step(config: PretrainConfig, repeats: int = 2) -> float:
    """Seconds one training step of the configured method takes on the configured device (its views, forward,
    loss, backward, optimiser), timed on random data after a warm-up step; data reading is not included."""
    with open_raster(config.images[0]) as src:
        bands = src.count
    device = resolve_device(config.device)
    side = round(config.crop_size * CONTEXT)
    model = PRETRAIN_METHODS.load(config.method)(config.backbone, bands).to(device).train()
    optimizer = torch.optim.AdamW(model.parameters(), lr=config.lr)
    rng = torch.Generator().manual_seed(0)
    x = torch.randn(config.batch_size, bands, side, side, device=device)
    valid = torch.ones(config.batch_size, side, side, device=device)
    seconds = []
    for _ in range(repeats + 1):
        started = time.perf_counter()
        model(x, valid, x, valid, config.crop_size, rng).backward()
        optimizer.step()
        optimizer.zero_grad(set_to_none=True)
        if device.type == "cuda":
            torch.cuda.synchronize()
        seconds.append(time.perf_counter() - started)
    return min(seconds[1:])
