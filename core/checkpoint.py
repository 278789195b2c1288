"""Resumable training state: weights, optimiser, scaler and progress, loaded without running any pickle code."""

from __future__ import annotations

import os
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import torch
from torch import nn

from .config import TrainConfig
from .errors import ConfigError, PackageError
from .fileio import atomic_path

#: Settings that must match for a checkpoint to continue the same run.
_SAME_RUN = ("backbone", "decoder", "tile_size", "normalisation", "images", "labels", "label_field", "seed")


@dataclass
class Checkpoint:
    """Progress of a run: last finished ``epoch``, the best score so far and the per-epoch history."""

    epoch: int
    best_score: float  # validation mIoU (or -training loss without validation)
    best_epoch: int
    stale_epochs: int
    history: list[dict[str, Any]] = field(default_factory=list)
    best_metrics: dict[str, Any] = field(default_factory=dict)


def checkpoint_path(package: str | os.PathLike) -> Path:
    """``model.geofm`` → ``model.last.ckpt`` beside it."""
    package = Path(package)
    return package.with_name(f"{package.stem}.last.ckpt")


def metrics_path(package: str | os.PathLike) -> Path:
    """``model.geofm`` → ``model.metrics.json`` beside it (validation metrics of the best epoch)."""
    package = Path(package)
    return package.with_name(f"{package.stem}.metrics.json")


def save_checkpoint(path: Path, model: nn.Module, optimizer: torch.optim.Optimizer, scaler: torch.amp.GradScaler,
                    state: Checkpoint, config: TrainConfig) -> None:
    """Write everything a resume needs, atomically."""
    payload = {"model": model.state_dict(), "optimizer": optimizer.state_dict(), "scaler": scaler.state_dict(),
               "state": asdict(state), "config": config.to_stored()}
    with atomic_path(path) as tmp:
        torch.save(payload, tmp)


def load_checkpoint(path: str | os.PathLike, model: nn.Module, optimizer: torch.optim.Optimizer,
                    scaler: torch.amp.GradScaler, config: TrainConfig) -> Checkpoint:
    """Restore ``model``, ``optimizer`` and ``scaler`` in place from ``path``; return the run's progress."""
    try:
        payload = torch.load(path, map_location="cpu", weights_only=True)
    except FileNotFoundError as err:
        raise ConfigError("the checkpoint to resume from does not exist", path=path,
                          fix="pass the .last.ckpt file written beside the model package") from err
    except Exception as err:  # noqa: BLE001 - any unpickling failure means: not a checkpoint we can trust
        raise PackageError(f"this is not a geofm checkpoint, or it is damaged ({err})", path=path,
                           fix="resume from the .last.ckpt file a geofm training run wrote") from err
    before = payload.get("config", {})
    changed = [k for k in _SAME_RUN if before.get(k) != config.to_dict()[k]]
    if changed:
        raise ConfigError(f"the checkpoint was written by a run with other settings ({', '.join(changed)})",
                          path=path, fix="resume with the same settings, or start a new run without --resume")
    model.load_state_dict(payload["model"])
    optimizer.load_state_dict(payload["optimizer"])
    scaler.load_state_dict(payload["scaler"])
    return Checkpoint(**payload["state"])
