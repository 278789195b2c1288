"""The training loop, for any :class:`.tasks.Task`: device, mixed precision, DDP, accumulation, clipping,
checkpoints and exact resume, early stopping, frozen-backbone epochs, cancel, and the events fronts consume.

The task says what is learnt (data, model, loss, metrics, what is saved); the loop never looks inside a batch.
"""

from __future__ import annotations

import math
import time
from collections.abc import Iterator
from dataclasses import dataclass, fields
from pathlib import Path
from typing import Any

import torch
from torch import nn
from torch.nn.parallel import DistributedDataParallel
from torch.utils.data import DataLoader, DistributedSampler, RandomSampler

from .checkpoint import Checkpoint, check_same_run, checkpoint_path, read_checkpoint, restore, save_checkpoint
from .cost import auto_epochs
from .device import amp_dtype, default_workers, resolve_device
from .distributed import any_across, init_distributed, mean_across, shutdown
from .errors import ConfigError, TrainingError
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
from .tasks import CancelFlag, Task


def epoch_lr(lr: float, schedule: str, epoch: int, epochs: int) -> float:
    """The learning rate of ``epoch`` (1-based) of ``epochs``: ``lr`` throughout ("constant"), or from ``lr`` in
    the first epoch down a half cosine to a hundredth of it in the last ("cosine"). A function of the epoch and the
    run's length, so a resumed run follows the same schedule without storing it; continuing with more epochs
    stretches the curve (the rate rises again), and a run stopped early never reaches the floor."""
    if schedule != "cosine" or epochs <= 1:
        return lr
    floor = lr / 100
    return floor + (lr - floor) * 0.5 * (1 + math.cos(math.pi * (epoch - 1) / (epochs - 1)))


@dataclass
class LoopSettings:
    """What the loop needs of a job's config; :meth:`from_config` takes them from any config that has them."""

    output: str
    epochs: int = 30  # 0: automatic, see auto_epochs
    batch_size: int = 8
    lr: float = 1e-3
    weight_decay: float = 1e-3
    accumulate: int = 1
    max_grad_norm: float = 1.0
    freeze_backbone_epochs: int = 0
    patience: int = 0  # epochs without a better monitored value before stopping; 0: never stop early
    seed: int = 0
    device: str = "auto"
    num_workers: int | None = None
    resume: str | None = None
    time_limit_s: float = 0.0  # stop after the last whole epoch that fits this budget; 0: no budget
    keep_checkpoint: bool = True  # False: a finished run removes its .last.ckpt (its package is complete)
    lr_schedule: str = "constant"  # or "cosine": see epoch_lr

    @classmethod
    def from_config(cls, config: Any) -> LoopSettings:
        return cls(**{f.name: getattr(config, f.name) for f in fields(cls) if hasattr(config, f.name)})


@dataclass
class EpochTiming:
    """Where an epoch's training pass spent its time (validation and checkpoints excluded), for benchmarks."""

    epoch: int
    tiles: int = 0
    seconds: float = 0.0
    data_wait_s: float = 0.0  # waiting for the loader to hand over the next batch


class Loop:
    """Runs ``task`` as ``settings`` say: ``run()`` yields Start, Step, Epoch, Checkpoint and Finished (or
    Cancelled) events. Under ``torchrun`` every process runs it; rank 0 alone writes files."""

    def __init__(self, task: Task, settings: LoopSettings, cancel: CancelFlag | None = None):
        self.task, self.settings, self.cancel = task, settings, cancel
        self.output = Path(settings.output)
        self.ckpt = checkpoint_path(self.output)
        self.state = Checkpoint.fresh()
        self.timings: list[EpochTiming] = []

    def run(self) -> Iterator[Event]:
        device = resolve_device(self.settings.device)
        ctx = init_distributed(device.type)
        if ctx.active and device.type == "cuda":
            device = torch.device("cuda", ctx.local_rank)
            torch.cuda.set_device(device)
        self.device, self.ctx = device, ctx
        try:
            yield from self._run()
        finally:
            shutdown(ctx)

    # -- the run ------------------------------------------------------------------------------------------------
    def _run(self) -> Iterator[Event]:
        s, task = self.settings, self.task
        resumed = self._read_resume() if s.resume else None  # before any data work: a wrong file fails at once
        torch.manual_seed(s.seed)
        yield from task.prepare(self.cancel)
        if self._cancelled():
            yield CancelledEvent("", "Training cancelled while preparing the data; nothing was written.")
            return
        self._build(resumed)
        notes = getattr(task, "notes", [])
        while notes:
            yield WarningEvent(notes.pop(0))
        loader = self._loader(task.train_dataset(), shuffle=True)
        val = task.val_dataset()
        val_loader = self._loader(val, shuffle=False) if val is not None and len(val) else None
        epochs = s.epochs or auto_epochs(len(loader.dataset))
        if resumed is not None:
            self._check_epochs_left(self.state.epoch, epochs)
        yield StartEvent(epochs, math.ceil(len(loader) / s.accumulate), len(loader.dataset),
                         len(val) if val_loader else 0, str(self.device), task.summary)
        run_started = time.perf_counter()
        for epoch in range(self.state.epoch + 1, epochs + 1):
            started = time.perf_counter()
            net = self._start_epoch(epoch, loader, epochs)
            train_loss = None
            for event in self._train_epoch(net, loader, epoch):
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
            if s.patience and self.state.stale_epochs >= s.patience:
                break
            if self._out_of_time(run_started, time.perf_counter() - started):
                break
            if self._cancelled():
                yield self._cancel_event()
                return
        self._drop_checkpoint()
        yield FinishedEvent(str(self.output), self._summary())

    def _build(self, resumed: dict[str, Any] | None) -> None:
        s = self.settings
        torch.manual_seed(s.seed)
        self.model = self.task.build_model().to(self.device)
        groups = self.task.parameter_groups(self.model)
        self.lr_scales = [scale for _, scale in groups]
        self.optimizer = torch.optim.AdamW([{"params": params} for params, _ in groups], lr=s.lr,
                                           weight_decay=s.weight_decay)
        self.amp_dtype = amp_dtype(self.device)
        self.scaler = torch.amp.GradScaler("cuda", enabled=self.amp_dtype == torch.float16)
        if self.device.type == "cuda":
            torch.backends.cudnn.benchmark = True
        if resumed is not None:
            self.state = restore(resumed, s.resume, self.model, self.optimizer, self.scaler)

    def _check_epochs_left(self, done: int, epochs: int) -> None:
        if done >= epochs:
            raise ConfigError(f"the run is already complete: the checkpoint is at epoch {done} and this run asks "
                              f"for {epochs} epoch(s)", path=self.settings.resume,
                              fix=f"to train longer, set the epochs above {done} (e.g. {done + 10}) and resume; the "
                                  f"best model so far is {self.output}")

    def _read_resume(self) -> dict[str, Any]:
        """The checkpoint to resume from, checked: a checkpoint, of this task, of this run, with epochs left."""
        s, path = self.settings, self.settings.resume
        payload = read_checkpoint(path)
        written_by = payload.get("task", self.task.name)
        if written_by != self.task.name:
            raise ConfigError(f"this checkpoint was written by the '{written_by}' task, not the '{self.task.name}' "
                              "task this run trains", path=path,
                              fix="resume from the .last.ckpt written beside the model of the same kind of run")
        try:
            before = self.task.fingerprint_of(payload.get("config") or {}, "the checkpoint's settings")
        except ConfigError as err:
            raise ConfigError(err.problem, path=path, fix=err.fix) from err
        before.update(payload.get("fingerprint") or {})  # as recorded when written (e.g. absolute paths)
        check_same_run(before, self.task.fingerprint(), path)
        state = payload["state"]
        if s.epochs:  # automatic epochs are known once the data is
            self._check_epochs_left(state["epoch"], s.epochs)
        stale = state.get("stale_epochs", 0)
        if s.patience and stale >= s.patience:
            raise ConfigError(f"the run already stopped early: {stale} epoch(s) without a better score (patience "
                              f"{s.patience})", path=path,
                              fix="resume with a larger early-stopping patience (0: never stop early), or start a new "
                                  "run")
        return payload

    # -- one epoch ----------------------------------------------------------------------------------------------
    def _start_epoch(self, epoch: int, loader: DataLoader, epochs: int) -> nn.Module:
        """Seed everything random in the epoch from (seed, epoch) alone, so a resumed run repeats it exactly; set
        the epoch's learning rate."""
        s = self.settings
        self.lr = epoch_lr(s.lr, s.lr_schedule, epoch, epochs)
        for group, scale in zip(self.optimizer.param_groups, self.lr_scales):
            group["lr"] = self.lr * scale
        torch.manual_seed(s.seed * 104_729 + epoch)
        if isinstance(loader.sampler, DistributedSampler):
            loader.sampler.set_epoch(epoch)
        else:
            loader.sampler.generator.manual_seed(s.seed * 1000 + epoch)
        frozen = epoch <= s.freeze_backbone_epochs
        self.task.freeze_backbone(self.model, frozen)
        return self._wrapped(frozen)

    def _train_epoch(self, net: nn.Module, loader: DataLoader, epoch: int) -> Iterator[Any]:
        """One pass over the training data; yields StepEvents, then the epoch's mean loss as a float."""
        s = self.settings
        net.train()
        rng = torch.Generator().manual_seed(s.seed * 7919 + epoch)
        timing = EpochTiming(epoch)
        self.timings.append(timing)
        total, count, step, t0, tiles = 0.0, 0, 0, time.perf_counter(), 0
        self.optimizer.zero_grad(set_to_none=True)
        started = waited = time.perf_counter()
        for i, batch in enumerate(loader):
            timing.data_wait_s += time.perf_counter() - waited
            batch = _to_device(batch, self.device)
            size = _batch_len(batch)
            loss = self._forward_backward(net, batch, rng, epoch)
            total, count, tiles = total + loss, count + 1, tiles + size
            timing.tiles += size
            if (i + 1) % s.accumulate == 0 or i + 1 == len(loader):
                self._optimizer_step()
                step += 1
                now = time.perf_counter()
                timing.seconds = now - started
                yield StepEvent(epoch, step, loss, self.lr, tiles / max(now - t0, 1e-9))
                t0, tiles = now, 0
            if self._cancelled():
                break
            waited = time.perf_counter()
        timing.seconds = time.perf_counter() - started
        yield mean_across(total / max(count, 1), self.ctx, self.device)

    def _forward_backward(self, net: nn.Module, batch: Any, rng: torch.Generator, epoch: int) -> float:
        s = self.settings
        try:
            with torch.autocast(self.device.type, dtype=self.amp_dtype, enabled=self.amp_dtype is not None):
                loss = self.task.training_step(net, batch, rng)
            if not torch.isfinite(loss):
                raise TrainingError(
                    f"the loss became {loss.item()} (not a number) at epoch {epoch}; training stopped",
                    path=self.task.source,
                    fix=f"likely causes: {self.task.nonfinite_causes}, or a learning rate too high (try "
                        f"{s.lr / 10:g}). The last good checkpoint was kept.",
                )
            self.scaler.scale(loss / s.accumulate).backward()
        except torch.cuda.OutOfMemoryError as err:
            raise TrainingError(
                f"the GPU ran out of memory with batch size {s.batch_size}",
                fix=f"use a smaller batch size (e.g. {max(1, s.batch_size // 2)}) with gradient accumulation "
                    f"{s.accumulate * 2} to keep the effective batch, or smaller tiles",
            ) from err
        return float(loss.item())

    def _optimizer_step(self) -> None:
        self.scaler.unscale_(self.optimizer)
        torch.nn.utils.clip_grad_norm_(self.model.parameters(), max_norm=self.settings.max_grad_norm)
        self.scaler.step(self.optimizer)
        self.scaler.update()
        self.optimizer.zero_grad(set_to_none=True)
        self.task.after_optimizer_step(self.model)

    @torch.no_grad()
    def _validate(self, loader: DataLoader) -> tuple[float | None, dict[str, Any]]:
        self.model.eval()
        total, count = 0.0, 0
        for batch in loader:
            batch = _to_device(batch, self.device)
            with torch.autocast(self.device.type, dtype=self.amp_dtype, enabled=self.amp_dtype is not None):
                loss = self.task.validation_step(self.model, batch)
            if loss is not None:
                total += float(loss)
                count += 1
        metrics = self.task.epoch_metrics()
        return mean_across(total / max(count, 1), self.ctx, self.device), metrics

    # -- bookkeeping --------------------------------------------------------------------------------------------
    def _record(self, epoch: int, train_loss: float, val_loss: float | None, metrics: dict[str, Any]) -> bool:
        """Add the epoch to the history; True when its monitored value is the best so far."""
        task, s = self.task, self.state
        values = {"train_loss": train_loss, "val_loss": val_loss, **metrics}
        monitored = values.get(task.monitor)
        if monitored is None:  # nothing to monitor (no validation labels): a fixed schedule, the last epoch kept
            score = float(epoch)
        else:
            score = monitored if task.mode == "max" else -monitored
        s.history.append({"epoch": epoch, "train_loss": train_loss, "val_loss": val_loss,
                          **{k: metrics.get(k) for k in task.history_metrics}})
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
            self.task.save_best(str(self.output), self.model, epoch, metrics, self.state.history)
            yield CheckpointEvent(str(self.output), "best", epoch)
        save_checkpoint(self.ckpt, self.model, self.optimizer, self.scaler, self.state, task=self.task.name,
                        config=self.task.stored_config(), fingerprint=self.task.fingerprint())
        yield CheckpointEvent(str(self.ckpt), "last", epoch)

    def _drop_checkpoint(self) -> None:
        """A finished run's package is written and complete: its checkpoint (about three times the package) goes,
        unless the settings keep it to continue training later. Cancelled and failed runs never get here."""
        if self.ctx.is_main and not self.settings.keep_checkpoint:
            self.ckpt.unlink(missing_ok=True)

    def _summary(self) -> dict[str, Any]:
        return {"best_epoch": self.state.best_epoch, "epochs_run": self.state.epoch,
                "metrics": self.state.best_metrics, "history": self.state.history}

    def _out_of_time(self, run_started: float, epoch_seconds: float) -> bool:
        """True when another epoch as long as the last would overrun ``time_limit_s`` (a time-budgeted run ends
        as a finished one, with its last epoch saved)."""
        limit = self.settings.time_limit_s
        late = bool(limit) and time.perf_counter() - run_started + epoch_seconds > limit
        return any_across(late, self.ctx, self.device)

    def _cancelled(self) -> bool:
        return any_across(bool(self.cancel and self.cancel.is_set()), self.ctx, self.device)

    def _cancel_event(self) -> CancelledEvent:
        kept = str(self.output) if self.state.best_epoch else ""
        why = (f"kept the best model so far (epoch {self.state.best_epoch})" if kept
               else "no epoch had finished, so no model was saved")
        return CancelledEvent(kept, f"Training cancelled; {why}.")

    # -- plumbing -----------------------------------------------------------------------------------------------
    def _loader(self, dataset, shuffle: bool) -> DataLoader:
        s = self.settings
        workers = s.num_workers if s.num_workers is not None else default_workers(self.device)
        if self.ctx.active:
            sampler = DistributedSampler(dataset, self.ctx.world_size, self.ctx.rank, shuffle=shuffle, seed=s.seed)
        elif shuffle:
            sampler = RandomSampler(dataset, generator=torch.Generator().manual_seed(s.seed))
        else:
            sampler = None
        return DataLoader(dataset, batch_size=s.batch_size, sampler=sampler, num_workers=workers,
                          pin_memory=self.device.type == "cuda", persistent_workers=workers > 0,
                          # a last training batch of one tile would break batch norm on a 1×1 feature map
                          drop_last=shuffle and len(dataset) > s.batch_size)

    def _wrapped(self, frozen: bool) -> nn.Module:
        if not self.ctx.active:
            return self.model
        ids = [self.device.index] if self.device.type == "cuda" else None
        # Rebuilt when freezing changes: DDP only synchronises parameters that needed gradients when wrapped.
        if getattr(self, "_ddp_frozen", None) != frozen:
            self._ddp = DistributedDataParallel(self.model, device_ids=ids)
            self._ddp_frozen = frozen
        return self._ddp


def _to_device(batch: Any, device: torch.device) -> Any:
    """Every tensor of a batch (a tensor, or tuples / lists / dicts of them) on ``device``."""
    if isinstance(batch, torch.Tensor):
        return batch.to(device, non_blocking=True)
    if isinstance(batch, (list, tuple)):
        return type(batch)(_to_device(b, device) for b in batch)
    if isinstance(batch, dict):
        return {k: _to_device(v, device) for k, v in batch.items()}
    return batch


def _batch_len(batch: Any) -> int:
    """Samples (tiles) in a batch: the length of its first tensor."""
    if isinstance(batch, torch.Tensor):
        return len(batch)
    items = batch.values() if isinstance(batch, dict) else batch if isinstance(batch, (list, tuple)) else ()
    return next((_batch_len(b) for b in items), 0)
