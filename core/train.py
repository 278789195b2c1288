"""The training loop: a generator of events that the CLI, the QGIS task and ``torchrun`` all drive."""

from __future__ import annotations

import math
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any, Protocol

import torch
from torch import nn
from torch.nn.parallel import DistributedDataParallel
from torch.utils.data import DataLoader, DistributedSampler, RandomSampler

from .augment import augment_batch
from .checkpoint import Checkpoint, checkpoint_path, load_checkpoint, metrics_path, save_checkpoint
from .config import TrainConfig
from .device import amp_dtype, default_workers, resolve_device
from .distributed import DistContext, any_across, init_distributed, mean_across, shutdown
from .errors import Cancelled, TrainingError
from .events import (
    CancelledEvent,
    CheckpointEvent,
    EpochEvent,
    Event,
    FinishedEvent,
    StartEvent,
    StepEvent,
    WarningEvent,
)
from .fileio import write_json
from .metrics import ConfusionMatrix
from .model import build_model
from .package import save_package
from .training_data import TrainingData, package_metadata_for, prepare_training_data


class CancelFlag(Protocol):
    """Anything with ``is_set()``: a ``threading.Event``, or a QgsTask's ``isCanceled`` wrapped."""

    def is_set(self) -> bool: ...


def train(config: TrainConfig, cancel: CancelFlag | None = None) -> Iterator[Event]:
    """Train a segmentation model as ``config`` says, yielding events; the package lands at ``config.output``.

    Under ``torchrun`` every process runs this; rank 0 alone writes files. Raises a
    :class:`~geofm.core.errors.GeoFMError` with a fix for every failure a user can act on.
    """
    config.validate()
    device = resolve_device(config.device)
    ctx = init_distributed(device.type)
    if ctx.active and device.type == "cuda":
        device = torch.device("cuda", ctx.local_rank)
        torch.cuda.set_device(device)
    try:
        try:  # progress, warnings (e.g. a tolerated CRS difference) and cancellation arrive as events
            data = yield from prepare_training_data(config, cancel)
        except Cancelled:
            yield CancelledEvent("", "Training cancelled while preparing the data; nothing was written.")
            return
        run = _Run(config, device, ctx, cancel, data)
        for note in run.notes:
            yield WarningEvent(note)
        yield from run.events()
    finally:
        shutdown(ctx)


class _Run:
    """The state of one run; ``events()`` drives it epoch by epoch."""

    def __init__(self, config: TrainConfig, device: torch.device, ctx: DistContext, cancel: CancelFlag | None,
                 data: TrainingData):
        self.config, self.device, self.ctx, self.cancel = config, device, ctx, cancel
        self.data = data
        torch.manual_seed(config.seed)
        self.notes: list[str] = []  # e.g. ImageNet weights unreachable offline: training goes on from scratch
        self.model = build_model(config.backbone, config.decoder, self.data.in_channels, self.data.classes.num_classes,
                                 config.weights, config.rgb_bands, notes=self.notes).to(device)
        self.optimizer = torch.optim.AdamW(self.model.parameters(), lr=config.lr, weight_decay=config.weight_decay)
        self.amp_dtype = amp_dtype(device)
        self.scaler = torch.amp.GradScaler("cuda", enabled=self.amp_dtype == torch.float16)
        weight = self.data.class_weights.to(device) if config.class_weights else None
        self.loss_fn = nn.CrossEntropyLoss(weight=weight, ignore_index=-1)
        if device.type == "cuda":
            torch.backends.cudnn.benchmark = True
        self.state = Checkpoint(epoch=0, best_score=-1.0, best_epoch=0, stale_epochs=0, history=[])
        if config.resume:
            self.state = load_checkpoint(config.resume, self.model, self.optimizer, self.scaler, config)
        self.output = Path(config.output)
        self.ckpt = checkpoint_path(self.output)

    # -- the loop ---------------------------------------------------------------------------------------------
    def events(self) -> Iterator[Event]:
        cfg = self.config
        loader = self._loader(self.data.train, shuffle=True)
        val_loader = self._loader(self.data.val, shuffle=False) if len(self.data.val) else None
        steps = math.ceil(len(loader) / cfg.accumulate)
        yield StartEvent(cfg.epochs, steps, len(self.data.train), len(self.data.val), str(self.device),
                         self.data.summary)
        for epoch in range(self.state.epoch + 1, cfg.epochs + 1):
            started = time.perf_counter()
            frozen = epoch <= cfg.freeze_backbone_epochs
            self.model.freeze_backbone(frozen)
            net = self._wrapped(frozen)
            if isinstance(loader.sampler, DistributedSampler):
                loader.sampler.set_epoch(epoch)
            else:
                loader.sampler.generator.manual_seed(cfg.seed * 1000 + epoch)
            train_loss = None
            for event in self._epoch(net, loader, epoch):
                if isinstance(event, float):
                    train_loss = event
                else:
                    yield event
                if self._cancelled():
                    yield self._cancel_event()
                    return
            val_loss, metrics = self._validate(val_loader) if val_loader else (None, {})
            yield EpochEvent(epoch, train_loss, val_loss, metrics, time.perf_counter() - started)
            improved = self._record(epoch, train_loss, val_loss, metrics)
            yield from self._save(epoch, improved, metrics)
            if cfg.patience and self.state.stale_epochs >= cfg.patience:
                break
            if self._cancelled():
                yield self._cancel_event()
                return
        yield FinishedEvent(str(self.output), self._summary())

    def _epoch(self, net: nn.Module, loader: DataLoader, epoch: int) -> Iterator[Any]:
        """One pass over the training tiles; yields StepEvents, then the epoch's mean loss as a float."""
        cfg = self.config
        net.train()
        gen = torch.Generator().manual_seed(cfg.seed * 7919 + epoch)
        total, count, step, t0, tiles = 0.0, 0, 0, time.perf_counter(), 0
        self.optimizer.zero_grad(set_to_none=True)
        for i, (x, y) in enumerate(loader):
            x = x.to(self.device, non_blocking=True)
            y = y.to(self.device, non_blocking=True)
            if cfg.augment:
                x, y = augment_batch(x, y, gen)
            loss = self._forward_backward(net, x, y)
            total, count, tiles = total + loss, count + 1, tiles + len(x)
            if (i + 1) % cfg.accumulate == 0 or i + 1 == len(loader):
                self._optimizer_step()
                step += 1
                now = time.perf_counter()
                yield StepEvent(epoch, step, loss, self.optimizer.param_groups[0]["lr"], tiles / max(now - t0, 1e-9))
                t0, tiles = now, 0
            if self._cancelled():
                break
        yield mean_across(total / max(count, 1), self.ctx, self.device)

    def _forward_backward(self, net: nn.Module, x: torch.Tensor, y: torch.Tensor) -> float:
        try:
            with torch.autocast(self.device.type, dtype=self.amp_dtype, enabled=self.amp_dtype is not None):
                loss = self.loss_fn(net(x), y)
            if not torch.isfinite(loss):
                raise TrainingError(
                    f"the loss became {loss.item()} (not a number) at epoch {self.state.epoch + 1}; training stopped",
                    path=self.config.images[0],
                    fix="likely causes: a band with extreme or unmasked nodata values (check the image's nodata "
                        "value and use global normalisation), label values outside the classes, or a learning "
                        f"rate too high (try {self.config.lr / 10:g}). The last good checkpoint was kept.",
                )
            self.scaler.scale(loss / self.config.accumulate).backward()
        except torch.cuda.OutOfMemoryError as err:
            raise TrainingError(
                f"the GPU ran out of memory with batch size {self.config.batch_size} and tile size "
                f"{self.config.tile_size}",
                fix=f"use a smaller batch size (e.g. {max(1, self.config.batch_size // 2)}) with gradient "
                    f"accumulation {self.config.accumulate * 2} to keep the effective batch, or a smaller tile",
            ) from err
        return float(loss.item())

    def _optimizer_step(self) -> None:
        self.scaler.unscale_(self.optimizer)
        torch.nn.utils.clip_grad_norm_(self.model.parameters(), max_norm=1.0)
        self.scaler.step(self.optimizer)
        self.scaler.update()
        self.optimizer.zero_grad(set_to_none=True)

    @torch.no_grad()
    def _validate(self, loader: DataLoader) -> tuple[float, dict[str, Any]]:
        self.model.eval()
        cm = ConfusionMatrix(self.data.classes.num_classes, self.data.classes.names)
        total, count = 0.0, 0
        for x, y in loader:
            x, y = x.to(self.device), y.to(self.device)
            with torch.autocast(self.device.type, dtype=self.amp_dtype, enabled=self.amp_dtype is not None):
                logits = self.model(x)
            if (y >= 0).any():
                total += float(self.loss_fn(logits.float(), y).item())
                count += 1
            cm.update(logits.argmax(1), y)
        cm.all_reduce()
        return mean_across(total / max(count, 1), self.ctx, self.device), cm.compute()

    # -- bookkeeping --------------------------------------------------------------------------------------------
    def _record(self, epoch: int, train_loss: float, val_loss: float | None, metrics: dict[str, Any]) -> bool:
        score = metrics.get("mean_iou")
        score = -train_loss if score is None else score  # without validation tiles: the lowest training loss
        s = self.state
        s.history.append({"epoch": epoch, "train_loss": train_loss, "val_loss": val_loss,
                          "mean_iou": metrics.get("mean_iou"), "overall_accuracy": metrics.get("overall_accuracy")})
        s.epoch = epoch
        improved = score > s.best_score
        if improved:
            s.best_score, s.best_epoch, s.stale_epochs, s.best_metrics = score, epoch, 0, metrics
        else:
            s.stale_epochs += 1
        return improved

    def _save(self, epoch: int, improved: bool, metrics: dict[str, Any]) -> Iterator[Event]:
        if not self.ctx.is_main:
            return
        if improved:
            meta = package_metadata_for(self.config, self.data, metrics, self.state.history, epoch)
            save_package(self.output, self.model, meta)
            write_json(metrics_path(self.output), meta["metrics"])
            yield CheckpointEvent(str(self.output), "best", epoch)
        save_checkpoint(self.ckpt, self.model, self.optimizer, self.scaler, self.state, self.config)
        yield CheckpointEvent(str(self.ckpt), "last", epoch)

    def _summary(self) -> dict[str, Any]:
        return {"best_epoch": self.state.best_epoch, "epochs_run": self.state.epoch,
                "metrics": self.state.best_metrics, "history": self.state.history}

    def _cancelled(self) -> bool:
        return any_across(bool(self.cancel and self.cancel.is_set()), self.ctx, self.device)

    def _cancel_event(self) -> CancelledEvent:
        kept = str(self.output) if self.state.best_epoch else ""
        why = (f"kept the best model so far (epoch {self.state.best_epoch})" if kept
               else "no epoch had finished, so no model was saved")
        return CancelledEvent(kept, f"Training cancelled; {why}.")

    # -- plumbing -----------------------------------------------------------------------------------------------
    def _loader(self, dataset, shuffle: bool) -> DataLoader:
        cfg = self.config
        workers = cfg.num_workers if cfg.num_workers is not None else default_workers(self.device)
        if self.ctx.active:
            sampler = DistributedSampler(dataset, self.ctx.world_size, self.ctx.rank, shuffle=shuffle, seed=cfg.seed)
        elif shuffle:
            sampler = RandomSampler(dataset, generator=torch.Generator().manual_seed(cfg.seed))
        else:
            sampler = None
        return DataLoader(dataset, batch_size=cfg.batch_size, sampler=sampler, num_workers=workers,
                          pin_memory=self.device.type == "cuda", persistent_workers=workers > 0,
                          # a last training batch of one tile would break batch norm on a 1×1 feature map
                          drop_last=shuffle and len(dataset) > cfg.batch_size)

    def _wrapped(self, frozen: bool) -> nn.Module:
        if not self.ctx.active:
            return self.model
        ids = [self.device.index] if self.device.type == "cuda" else None
        # Rebuilt when freezing changes: DDP only synchronises parameters that needed gradients when wrapped.
        if getattr(self, "_ddp_frozen", None) != frozen:
            self._ddp = DistributedDataParallel(self.model, device_ids=ids)
            self._ddp_frozen = frozen
        return self._ddp

