"""The loop knows no task: a denoising autoencoder defined here, on random tensors, runs through it unchanged —
events, best-model saving, cancel, exact resume and the resume checks. And `make gpu-check` runs this loop."""

from __future__ import annotations

import importlib.util
import json
import sys
import threading
from pathlib import Path

import pytest
import torch
import torch.nn.functional as F
from torch import nn
from torch.utils.data import TensorDataset

from geofm.core.checkpoint import checkpoint_path
from geofm.core.errors import ConfigError
from geofm.core.events import CancelledEvent, CheckpointEvent, EpochEvent, FinishedEvent, StartEvent, StepEvent
from geofm.core.fileio import atomic_path
from geofm.core.loop import Loop, LoopSettings
from geofm.core.tasks import Task

REPO = Path(__file__).resolve().parent.parent


class DenoisingTask(Task):
    """Reconstruct 4-band 8×8 patches from noisy copies: no labels, a loss of its own, a file of weights saved.

    Like a self-supervised pretraining task: the batch is a 1-tuple of tensors, the noise is drawn from the loop's
    per-epoch generator, and without validation data the lowest training loss picks the best epoch.
    """

    name = "denoising"
    monitor, mode = "val_loss", "min"

    def __init__(self, samples: int = 40, validate: bool = True):
        self.samples, self.validate = samples, validate

    def prepare(self, cancel):
        gen = torch.Generator().manual_seed(1)
        self.x = 2 * torch.randn(self.samples, 4, 8, 8, generator=gen)
        self.summary = f"{self.samples} random patches"
        return iter(())

    def train_dataset(self):
        return TensorDataset(self.x[:32])

    def val_dataset(self):
        return TensorDataset(self.x[32:]) if self.validate else None

    def build_model(self) -> nn.Module:
        return nn.Sequential(nn.Conv2d(4, 8, 3, padding=1), nn.ReLU(), nn.Conv2d(8, 4, 3, padding=1))

    def training_step(self, model, batch, rng):
        (x,) = batch
        noise = 0.3 * torch.randn(x.shape, generator=rng).to(x.device)
        return F.mse_loss(model(x + noise), x)

    def validation_step(self, model, batch):
        (x,) = batch
        return F.mse_loss(model(x), x)

    def save_best(self, path, model, epoch, metrics, history):
        with atomic_path(path) as tmp:
            torch.save(model.state_dict(), tmp)
        Path(path).with_suffix(".json").write_text(json.dumps({"epoch": epoch, "history": history}))

    def fingerprint(self):
        return {"samples": self.samples}

    def stored_config(self):
        return {"samples": self.samples}

    def fingerprint_of(self, stored_config, source):
        return {"samples": stored_config.get("samples")}


def _settings(tmp_path, **kw) -> LoopSettings:
    return LoopSettings(**{"output": str(tmp_path / "ae.pt"), "epochs": 3, "batch_size": 8, "lr": 1e-2,
                           "device": "cpu", **kw})


def test_a_task_the_loop_does_not_know_trains_and_saves_its_best(tmp_path):
    events = list(Loop(DenoisingTask(), _settings(tmp_path, epochs=4)).run())
    assert isinstance(events[0], StartEvent) and events[0].train_tiles == 32 and events[0].val_tiles == 8
    assert events[0].steps_per_epoch == 4 and events[0].message == "40 random patches"
    assert sum(isinstance(e, StepEvent) for e in events) == 16
    epochs = [e for e in events if isinstance(e, EpochEvent)]
    assert epochs[-1].train_loss < epochs[0].train_loss and all(e.val_loss is not None for e in epochs)
    assert isinstance(events[-1], FinishedEvent) and events[-1].path == str(tmp_path / "ae.pt")
    best = min(epochs, key=lambda e: e.val_loss).epoch
    assert events[-1].summary["best_epoch"] == best
    assert json.loads((tmp_path / "ae.json").read_text())["epoch"] == best
    assert set(torch.load(tmp_path / "ae.pt", weights_only=True)) == {"0.weight", "0.bias", "2.weight", "2.bias"}


def test_without_validation_the_lowest_training_loss_picks_the_best(tmp_path):
    events = list(Loop(DenoisingTask(validate=False), _settings(tmp_path, epochs=2)).run())
    assert events[0].val_tiles == 0
    first = next(e for e in events if isinstance(e, EpochEvent))
    best = [e.epoch for e in events if isinstance(e, CheckpointEvent) and e.kind == "best"]
    assert first.train_loss > 1 and best[0] == 1, "the first epoch is saved whatever its loss"


def test_the_other_task_resumes_exactly(tmp_path):
    (tmp_path / "a").mkdir()
    (tmp_path / "b").mkdir()
    straight = [e.train_loss for e in Loop(DenoisingTask(), _settings(tmp_path / "a")).run()
                if isinstance(e, EpochEvent)]
    cancel = threading.Event()
    for event in Loop(DenoisingTask(), _settings(tmp_path / "b"), cancel).run():
        if isinstance(event, CheckpointEvent) and event.kind == "last":
            cancel.set()
    assert isinstance(event, CancelledEvent)
    ckpt = str(checkpoint_path(tmp_path / "b" / "ae.pt"))
    resumed = [e.train_loss for e in Loop(DenoisingTask(), _settings(tmp_path / "b", resume=ckpt)).run()
               if isinstance(e, EpochEvent)]
    assert resumed == pytest.approx(straight[1:], rel=1e-6)
    a = torch.load(checkpoint_path(tmp_path / "a" / "ae.pt"), weights_only=True)["model"]
    b = torch.load(ckpt, weights_only=True)["model"]
    assert all(torch.equal(a[k], b[k]) for k in a)


def test_resume_checks_use_the_task_fingerprint_and_name(tmp_path):
    list(Loop(DenoisingTask(), _settings(tmp_path, epochs=1)).run())
    ckpt = str(checkpoint_path(tmp_path / "ae.pt"))
    with pytest.raises(ConfigError, match="samples: 40 in the checkpoint, 48 now"):
        list(Loop(DenoisingTask(samples=48), _settings(tmp_path, resume=ckpt)).run())

    class Other(DenoisingTask):
        name = "other"

    with pytest.raises(ConfigError, match="'denoising' task") as err:
        list(Loop(Other(), _settings(tmp_path, resume=ckpt)).run())
    assert ckpt in str(err.value)


def test_gpu_check_runs_the_shipping_code(tmp_path, monkeypatch):
    """`make gpu-check` measures geofm's own Loop (training and pretraining) and predict(); here on the CPU at toy
    size, so the script cannot rot."""
    spec = importlib.util.spec_from_file_location("gpu_check", REPO / "benchmarks" / "gpu_check.py")
    gpu_check = importlib.util.module_from_spec(spec)
    monkeypatch.setitem(sys.modules, "gpu_check", gpu_check)  # its dataclasses look their module up
    spec.loader.exec_module(gpu_check)
    setup = gpu_check.Setup(size=96, tile=32, batch=8, backbone="resnet18", decoder="simple", epochs=2,
                            pretrain_size=128, pretrain_steps=2, pretrain_runs=(("resnet18", 4),), predict_size=160,
                            predict_batches=(4,), device="cpu")
    training = gpu_check.measure_training(setup, tmp_path)
    assert training.tiles == training.steps_per_epoch * 8 and training.peak_gib is None
    assert 0 <= training.data_wait_s <= training.seconds
    (pretraining,) = gpu_check.measure_pretraining(setup, tmp_path)
    assert pretraining.tiles == 2 * 2 * 4 and pretraining.steps_per_epoch == 2  # 2 measured epochs of 2 steps
    (prediction,) = gpu_check.measure_prediction(setup, tmp_path, tmp_path / "check.geofm")
    assert prediction["batch"] == 4 and prediction["windows"] > 0 and prediction["seconds"] > 0
    text = gpu_check.report(setup, training, [pretraining], [prediction])
    assert "core/loop.Loop" in text and "Masked reconstruction" in text and "| 4 |" in text


def test_automatic_epochs_fit_a_cpu_budget():
    """epochs = 0: many short epochs for a few tiles, a few long ones for many; always within 5..100."""
    from geofm.core.loop import auto_epochs

    assert auto_epochs(16) == 100 and auto_epochs(48) == 50 and auto_epochs(374) == 6 and auto_epochs(100_000) == 5


def test_a_time_budget_ends_the_run_as_finished_after_the_last_epoch_that_fits(tmp_path):
    events = list(Loop(DenoisingTask(), _settings(tmp_path, epochs=50, time_limit_s=1e-6)).run())
    assert [e.epoch for e in events if isinstance(e, EpochEvent)] == [1]
    assert isinstance(events[-1], FinishedEvent) and events[-1].summary["epochs_run"] == 1


def test_a_cosine_schedule_decays_to_a_hundredth_and_resumes_on_the_same_curve(tmp_path):
    """The learning rate each step reports: the set one in the first epoch, a hundredth of it in the last; a run
    cancelled after epoch 1 and resumed reports the same rates and losses as one run straight through."""
    (tmp_path / "a").mkdir()
    (tmp_path / "b").mkdir()
    straight = list(Loop(DenoisingTask(), _settings(tmp_path / "a", lr_schedule="cosine")).run())
    rates = {e.epoch: e.lr for e in straight if isinstance(e, StepEvent)}
    assert rates == pytest.approx({1: 1e-2, 2: 1e-2 * (0.01 + 0.99 * 0.5), 3: 1e-4})
    cancel = threading.Event()
    for event in Loop(DenoisingTask(), _settings(tmp_path / "b", lr_schedule="cosine"), cancel).run():
        if isinstance(event, CheckpointEvent) and event.kind == "last":
            cancel.set()
    ckpt = str(checkpoint_path(tmp_path / "b" / "ae.pt"))
    resumed = list(Loop(DenoisingTask(), _settings(tmp_path / "b", lr_schedule="cosine", resume=ckpt)).run())
    assert {e.epoch: e.lr for e in resumed if isinstance(e, StepEvent)} == pytest.approx({2: rates[2], 3: rates[3]})
    assert [e.train_loss for e in resumed if isinstance(e, EpochEvent)] == pytest.approx(
        [e.train_loss for e in straight if isinstance(e, EpochEvent)][1:], rel=1e-6)
