"""Training tasks: what is learnt, from which data, judged how. :class:`..loop.Loop` does everything else.

The contract a task keeps with the loop (the loop assumes nothing beyond it):

- ``prepare(cancel)`` is a generator: it reads and checks the data, yielding events on the way (e.g. a
  :class:`~..events.WarningEvent` for a tolerated problem). Every process of a ``torchrun`` run calls it.
- ``train_dataset()`` / ``val_dataset()`` (after ``prepare``): map-style datasets; the loop batches them with the
  default collate, shuffles the training one (per-epoch seeded) and moves every tensor of a batch (a tensor, or
  tuples / lists / dicts of them) to the device. ``val_dataset()`` may be ``None`` or empty: no validation.
- ``build_model()`` (after ``prepare``): a fresh ``nn.Module`` on the CPU; the loop seeds torch before calling it,
  moves it, wraps it for DDP, optimises all its parameters that need gradients (AdamW) and saves its
  ``state_dict`` in checkpoints. State the task needs to resume exactly (a MoCo queue, a momentum encoder)
  belongs in the model as buffers or parameters with ``requires_grad=False``.
- ``training_step(model, batch, rng)`` -> a scalar loss tensor: augment (drawing from ``rng``, a CPU generator
  seeded per epoch, so a resumed run draws what the uninterrupted one drew), forward, loss. The loop runs it
  under autocast and does backward, gradient scaling, accumulation, clipping and the optimiser step; a loss
  that is not finite stops the run with :attr:`nonfinite_causes` in the message.
- ``after_optimizer_step(model)``: called after each optimiser step (e.g. a momentum-encoder update). Optional.
- ``validation_step(model, batch)`` -> the batch's loss (tensor or float) or ``None`` when it has none; runs
  without gradients, in eval mode, under autocast; the task accumulates its metrics. ``epoch_metrics()`` then
  returns them as a JSON-ready dict (reduced over DDP processes) and resets them; ``{}`` without metrics.
- ``monitor`` and ``mode``: the key of ``epoch_metrics()`` (or ``'train_loss'`` / ``'val_loss'``) that picks the
  best epoch, and whether higher (``'max'``) or lower (``'min'``) is better. When it has no value (no validation
  tiles) the lowest training loss picks it. ``history_metrics``: the keys kept in the per-epoch history.
- ``save_best(path, model, epoch, metrics, history)``: write what a user gets from the best epoch (rank 0 only),
  atomically: a model package, its metrics JSON, a backbone package…
- ``fingerprint()``: the JSON-ready values of every setting that defines the run (the data, the split, the
  model's shape). Checkpoints store it; a resume with a different fingerprint is refused, naming each setting
  with both values. ``fingerprint_of(stored_config, source)`` computes the fingerprint a checkpoint's stored
  config (``stored_config()`` of the run that wrote it) stands for, and refuses a config from a newer geofm.
  Both must work before ``prepare``, so a wrong resume fails before any data is read.
- ``freeze_backbone(model, frozen)``: the default calls ``model.freeze_backbone(frozen)``.
- ``parameter_groups(model)``: the model's parameters as (parameters, learning-rate scale) pairs; the default is
  one group at the full learning rate (a task may train a pretrained part more gently).
- ``name`` (stored in checkpoints: one task never resumes another's), ``summary`` (shown at the start, after
  ``prepare``), ``source`` (the file that messages about the data name), ``notes`` (things the user should know
  that arise outside ``prepare``, e.g. pretrained weights unreachable offline in ``build_model``: the loop yields
  them as WarningEvents once the model is built).
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any, Protocol

import torch
from torch import nn
from torch.utils.data import Dataset

from ..errors import ConfigError
from ..events import Event


class CancelFlag(Protocol):
    """Anything with ``is_set()``: a ``threading.Event``, or a QgsTask's ``isCanceled`` wrapped."""

    def is_set(self) -> bool: ...


class Task:
    """Base of the training tasks; see the module docstring for the contract. Subclasses override what they own."""

    name = "task"
    monitor = "train_loss"
    mode = "min"
    history_metrics: tuple[str, ...] = ()
    nonfinite_causes = "inputs with extreme values"
    summary = ""
    source: str | None = None

    # -- data ---------------------------------------------------------------------------------------------------
    def prepare(self, cancel: CancelFlag | None) -> Iterator[Event]:
        raise NotImplementedError

    def train_dataset(self) -> Dataset:
        raise NotImplementedError

    def val_dataset(self) -> Dataset | None:
        return None

    # -- model, loss, metrics -----------------------------------------------------------------------------------
    def build_model(self) -> nn.Module:
        raise NotImplementedError

    def training_step(self, model: nn.Module, batch: Any, rng: torch.Generator) -> torch.Tensor:
        raise NotImplementedError

    def after_optimizer_step(self, model: nn.Module) -> None:
        """Hook after each optimiser step; nothing by default."""

    def validation_step(self, model: nn.Module, batch: Any) -> torch.Tensor | float | None:
        return None

    def epoch_metrics(self) -> dict[str, Any]:
        return {}

    def parameter_groups(self, model: nn.Module) -> list[tuple[list[nn.Parameter], float]]:
        return [(list(model.parameters()), 1.0)]

    def freeze_backbone(self, model: nn.Module, frozen: bool) -> None:
        freeze = getattr(model, "freeze_backbone", None)
        if freeze is not None:
            freeze(frozen)
        elif frozen:
            raise ConfigError(f"the {self.name} task's model has no backbone to freeze",
                              fix="set the frozen-backbone epochs to 0")

    # -- outputs and identity -----------------------------------------------------------------------------------
    def save_best(self, path: str, model: nn.Module, epoch: int, metrics: dict[str, Any],
                  history: list[dict[str, Any]]) -> None:
        raise NotImplementedError

    def fingerprint(self) -> dict[str, Any]:
        raise NotImplementedError

    def stored_config(self) -> dict[str, Any]:
        """The settings a checkpoint records (with their schema version)."""
        return {}

    def fingerprint_of(self, stored_config: dict[str, Any], source: str) -> dict[str, Any]:
        """The fingerprint of the run whose :meth:`stored_config` this is; by default none is known."""
        return {}
