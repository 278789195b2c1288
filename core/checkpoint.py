"""Resumable training state: weights, optimiser, scaler and progress, loaded without running any pickle code.

A checkpoint also records which task wrote it, the task's stored config and its run fingerprint (the settings
that define the run, see :meth:`.tasks.Task.fingerprint`), so that a resume with other data is refused with
every differing setting named, before any data is read.
"""

from __future__ import annotations

import math
import os
import zipfile
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import torch
from torch import nn

from .errors import ConfigError, PackageError
from .fileio import atomic_path

#: What a checkpoint holds besides the optional ``task``, ``config`` and ``fingerprint``.
_REQUIRED = ("model", "optimizer", "scaler", "state")
_RESUME_FROM = "resume from the .last.ckpt file written beside the model package (e.g. model.last.ckpt)"


@dataclass
class Checkpoint:
    """Progress of a run: last finished ``epoch``, the best score so far and the per-epoch history."""

    epoch: int
    best_score: float  # the task's monitored value, higher is better (-loss for a 'min' monitor)
    best_epoch: int
    stale_epochs: int
    history: list[dict[str, Any]] = field(default_factory=list)
    best_metrics: dict[str, Any] = field(default_factory=dict)

    @classmethod
    def fresh(cls) -> Checkpoint:
        return cls(epoch=0, best_score=-math.inf, best_epoch=0, stale_epochs=0)


def checkpoint_path(package: str | os.PathLike) -> Path:
    """``model.geofm`` → ``model.last.ckpt`` beside it."""
    package = Path(package)
    return package.with_name(f"{package.stem}.last.ckpt")


def metrics_path(package: str | os.PathLike) -> Path:
    """``model.geofm`` → ``model.metrics.json`` beside it (validation metrics of the best epoch)."""
    package = Path(package)
    return package.with_name(f"{package.stem}.metrics.json")


def save_checkpoint(path: Path, model: nn.Module, optimizer: torch.optim.Optimizer, scaler: torch.amp.GradScaler,
                    state: Checkpoint, *, task: str, config: dict[str, Any], fingerprint: dict[str, Any]) -> None:
    """Write everything a resume needs, atomically."""
    payload = {"task": task, "model": model.state_dict(), "optimizer": optimizer.state_dict(),
               "scaler": scaler.state_dict(), "state": asdict(state), "config": config, "fingerprint": fingerprint}
    with atomic_path(path) as tmp:
        torch.save(payload, tmp)


def read_checkpoint(path: str | os.PathLike) -> dict[str, Any]:
    """The payload of the checkpoint at ``path``; ConfigError / PackageError naming it when it is not one."""
    if not Path(path).is_file():
        raise ConfigError("the checkpoint to resume from does not exist", path=path, fix=_RESUME_FROM)
    if _is_model_package(path):
        raise PackageError("this is a geofm model package, not a geofm checkpoint: it holds the weights of the best "
                           "epoch but not the optimiser and progress a resume needs", path=path, fix=_RESUME_FROM)
    try:
        payload = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as err:  # noqa: BLE001 - any unpickling failure means: not a checkpoint we can trust
        from .package import refused_pickle_reason

        raise PackageError(f"this is not a geofm checkpoint, or it is damaged ({refused_pickle_reason(err)})",
                           path=path, fix=_RESUME_FROM) from err
    if not isinstance(payload, dict) or not all(key in payload for key in _REQUIRED):
        raise PackageError(f"this is not a geofm checkpoint: the file holds {_what(payload)}", path=path,
                           fix=_RESUME_FROM)
    state = payload["state"]
    if not isinstance(state, dict) or not isinstance(state.get("epoch"), int):
        raise PackageError("this geofm checkpoint is damaged: its progress record is unreadable", path=path,
                           fix=_RESUME_FROM)
    return payload


def check_same_run(before: dict[str, Any], now: dict[str, Any], path: str | os.PathLike) -> None:
    """ConfigError naming each setting whose value in the checkpoint's run (``before``) differs from ``now``
    (settings only one of them records are not compared)."""
    changed = [key for key in now if key in before and before[key] != now[key]]
    if changed:
        lines = "; ".join(f"{key}: {_shown(before[key])} in the checkpoint, {_shown(now[key])} now" for key in changed)
        raise ConfigError(f"the checkpoint was written by a run with other settings ({lines})", path=path,
                          fix="resume with the checkpoint's settings, or start a new run without --resume")


def restore(payload: dict[str, Any], path: str | os.PathLike, model: nn.Module, optimizer: torch.optim.Optimizer,
            scaler: torch.amp.GradScaler) -> Checkpoint:
    """Load a :func:`read_checkpoint` payload into ``model``, ``optimizer`` and ``scaler``; return the progress.
    A model of another shape (other classes or bands read from the data) is a ConfigError naming the checkpoint."""
    try:
        model.load_state_dict(payload["model"])
        optimizer.load_state_dict(_regrouped(payload["optimizer"], optimizer))
        scaler.load_state_dict(payload["scaler"])
    except (RuntimeError, ValueError, KeyError, TypeError) as err:
        raise ConfigError(f"the checkpoint's model does not fit this run's model ({_mismatch(payload['model'], model)})"
                          "; the data now gives other classes or bands than the checkpoint's run was trained on",
                          path=path, fix="resume only with the data the checkpoint was trained on (the same classes "
                                         "in the labels, the same bands), or start a new run without --resume"
                          ) from err
    try:
        return Checkpoint(**payload["state"])
    except TypeError as err:
        raise PackageError(f"this geofm checkpoint is damaged: its progress record is unreadable ({err})", path=path,
                           fix=_RESUME_FROM) from err


def _regrouped(saved: dict[str, Any], optimizer: torch.optim.Optimizer) -> dict[str, Any]:
    """The saved optimiser state split into ``optimizer``'s parameter groups when only the grouping differs (a
    pretrained backbone's learning rate changed on resume, or a checkpoint of a geofm with one group): the
    parameters keep their order, so the saved per-parameter state carries over unchanged."""
    groups = saved.get("param_groups") if isinstance(saved, dict) else None
    now = optimizer.state_dict()["param_groups"]
    ids = [i for g in groups or [] for i in g["params"]]
    if not groups or len(groups) == len(now) or len(ids) != sum(len(g["params"]) for g in now):
        return saved  # the same grouping, or another model: load_state_dict decides
    regrouped, start = [], 0
    for group in now:
        regrouped.append({**groups[0], "params": ids[start:start + len(group["params"])]})
        start += len(group["params"])
    return {**saved, "param_groups": regrouped}


def _mismatch(saved: Any, model: nn.Module) -> str:
    """The first tensors whose shapes differ (or are missing) between a saved state dict and ``model``."""
    if not isinstance(saved, dict):
        return "no weights in the checkpoint"
    now = model.state_dict()
    diffs = [f"{k} is {list(saved[k].shape)} in the checkpoint, {list(v.shape)} now"
             for k, v in now.items() if k in saved and hasattr(saved[k], "shape") and saved[k].shape != v.shape]
    missing = [k for k in now if k not in saved]
    if missing:
        diffs.append(f"{len(missing)} tensor(s) missing from the checkpoint, e.g. {missing[0]}")
    extra = [k for k in saved if k not in now]
    if extra:
        diffs.append(f"{len(extra)} tensor(s) this model lacks, e.g. {extra[0]}")
    return "; ".join(diffs[:3]) or "the optimiser state does not match the model's parameters"


def _is_model_package(path: str | os.PathLike) -> bool:
    try:
        with zipfile.ZipFile(path) as zf:
            return "metadata.json" in zf.namelist()
    except (OSError, zipfile.BadZipFile):
        return False


def _what(payload: Any) -> str:
    if isinstance(payload, dict) and payload and all(isinstance(v, torch.Tensor) for v in payload.values()):
        return f"a plain state dict ({len(payload)} tensors), not a training checkpoint"
    if isinstance(payload, dict):
        keys = ", ".join(sorted(map(str, payload))[:6])
        return f"a dict with other keys ({keys or 'none'})"
    return f"a {type(payload).__name__}"


def _shown(value: Any) -> str:
    if value is None:
        return "not set"
    text = repr(value)
    return text if len(text) <= 120 else text[:117] + "…"
