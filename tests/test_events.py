"""Events every front shows: data preparation reports progress and warnings and can be cancelled; the progress
fraction and ETA are computed once in core (Progress) and the fronts share one EventHandler base."""

from __future__ import annotations

import re
import threading
import warnings
from pathlib import Path

import numpy as np
import pytest

from geofm.core.cli import main
from geofm.core.config import TrainConfig
from geofm.core.errors import Cancelled
from geofm.core.events import (
    PREPARATION_PHASES,
    CancelledEvent,
    CheckpointEvent,
    EpochEvent,
    EventHandler,
    FinishedEvent,
    Progress,
    ProgressEvent,
    StartEvent,
    StepEvent,
    WarningEvent,
)
from geofm.core.train import train
from geofm.core.training_data import TrainingData, prepare_training_data

from rasters import retagged_scene, separable_scene

CORE = Path(__file__).resolve().parent.parent / "core"


def _config(folder: Path, img: Path, lbl: Path, **kw) -> TrainConfig:
    base = dict(images=[str(img)], labels=[str(lbl)], backbone="resnet18", weights="none", decoder="simple",
                tile_size=64, overlap=50, batch_size=8, epochs=2, val_fraction=0.25, split_block=64,
                output=str(folder / "m.geofm"))
    return TrainConfig(**{**base, **kw})


def _prepare(config, cancel=None):
    """(events, TrainingData) of prepare_training_data, driven as train() drives it."""
    events = []
    steps = prepare_training_data(config, cancel)
    while True:
        try:
            events.append(next(steps))
        except StopIteration as stop:
            return events, stop.value


@pytest.fixture(scope="module")
def retagged(tmp_path_factory):
    folder = tmp_path_factory.mktemp("retagged")
    return folder, *retagged_scene(folder)


@pytest.fixture(scope="module")
def run_events(retagged):
    """Every event of a 2-epoch training on the re-tagged scene."""
    folder, img, lbl = retagged
    return list(train(_config(folder, img, lbl, output=str(folder / "run.geofm"))))


# -- data preparation ---------------------------------------------------------------------------------------------
def test_preparation_yields_progress_per_phase_and_returns_the_data(retagged):
    folder, img, lbl = retagged
    events, data = _prepare(_config(folder, img, lbl))
    assert isinstance(data, TrainingData) and len(data.train) > 0
    progress = [e for e in events if isinstance(e, ProgressEvent)]
    assert [p for i, p in enumerate(e.phase for e in progress) if i == 0 or progress[i - 1].phase != p] == \
        list(PREPARATION_PHASES)
    for phase in PREPARATION_PHASES:
        counted = [e for e in progress if e.phase == phase and e.total]
        assert counted, phase
        assert counted[-1].done == counted[-1].total > 0 and counted[-1].message == phase
        assert [e.done for e in counted] == sorted(e.done for e in counted)
    assert progress[-1].total == len(data.train)  # the statistics count training tiles


def test_preparation_reports_a_tolerated_crs_difference_as_an_event_not_a_python_warning(retagged):
    folder, img, lbl = retagged
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # a Python warning would now fail the test
        events, _ = _prepare(_config(folder, img, lbl))
    notes = [e.message for e in events if isinstance(e, WarningEvent)]
    assert len(notes) == 1 and "EPSG:23033" in notes[0] and "EPSG:32633" in notes[0]


def test_cancel_during_preparation_ends_with_cancelled_and_writes_nothing(tmp_path):
    img, lbl = separable_scene(tmp_path, size=128)
    before = sorted(p.name for p in tmp_path.iterdir())
    cancel = threading.Event()
    events = []
    for event in train(_config(tmp_path, img, lbl), cancel):
        events.append(event)
        if isinstance(event, ProgressEvent) and event.phase == "tiling" and event.done:
            cancel.set()
    assert isinstance(events[-1], CancelledEvent) and events[-1].path == ""
    assert "preparing" in events[-1].message and "nothing was written" in events[-1].message
    assert not any(isinstance(e, (StartEvent, StepEvent)) for e in events)
    assert not any(isinstance(e, ProgressEvent) and e.phase == "band statistics" for e in events)
    assert sorted(p.name for p in tmp_path.iterdir()) == before

    cancel = threading.Event()
    cancel.set()
    with pytest.raises(Cancelled):
        _prepare(_config(tmp_path, img, lbl), cancel)


def test_training_passes_the_crs_warning_on_once(run_events):
    notes = [e for e in run_events if isinstance(e, WarningEvent)]
    assert len(notes) == 1 and "EPSG:23033" in notes[0].message
    assert isinstance(run_events[-1], FinishedEvent)


def test_cli_prints_the_crs_warning_once_on_stderr(tmp_path, capsys):
    img, lbl = retagged_scene(tmp_path)
    code = main(["train", "--image", str(img), "--labels", str(lbl), "--backbone", "resnet18", "--weights", "none",
                 "--decoder", "simple", "--tile", "64", "--batch", "8", "--epochs", "1", "--split-block", "64",
                 "--val-share", "0.25", "--out", str(tmp_path / "m.geofm")])
    out, err = capsys.readouterr()
    assert code == 0, err
    assert len(re.findall(r"Warning: [^\n]*EPSG:23033", err)) == 1, err  # (after a progress bar's \r)
    assert "EPSG:23033" not in out and "Training on" in out and "epoch 1:" in out
    last = out.strip().splitlines()[-1]  # the run ends by saying where the model is and how to use it
    assert last.startswith(f"Model written to {tmp_path / 'm.geofm'} (") and "geofm predict --model" in last


def test_no_process_wide_warning_bridge_in_core():
    assert "catch_warnings" not in (CORE / "train.py").read_text()
    offenders = [p.name for p in CORE.rglob("*.py") if "catch_warnings" in p.read_text()]
    assert offenders == []


# -- the progress fraction, computed once -------------------------------------------------------------------------
def _training_script() -> list[tuple[float, object]]:
    """(time, event) of a 2-epoch run: preparation, 4 steps of 1 s, 6 s of validation and 2 s of saving per epoch."""
    timeline, t = [], 0.0
    for phase in PREPARATION_PHASES:
        for done in range(0, 5):
            timeline.append((t, ProgressEvent(done, 4, phase, phase)))
            t += 0.1
    timeline.append((t, StartEvent(2, 4, 32, 16, "cpu")))
    for epoch in (1, 2):
        for step in range(1, 5):
            t += 1.0
            timeline.append((t, StepEvent(epoch, step, 0.5, 1e-3, 8.0)))
        t += 6.0
        timeline.append((t, EpochEvent(epoch, 0.5, 0.6, {"mean_iou": 0.5}, 10.0)))
        t += 2.0
        timeline.append((t, CheckpointEvent("m.geofm", "best", epoch)))
        timeline.append((t, CheckpointEvent("m.last.ckpt", "last", epoch)))
    timeline.append((t, FinishedEvent("m.geofm")))
    return timeline


def test_progress_is_monotonic_and_reaches_one_only_at_the_end():
    progress, seen = Progress(), []
    for now, event in _training_script():
        progress.update(event, now)
        seen.append(progress.fraction)
    assert all(b >= a for a, b in zip(seen, seen[1:]))
    assert all(0.0 <= f < 1.0 for f in seen[:-1]) and seen[-1] == 1.0
    assert seen[19] < 0.1 < seen[-3]  # preparation is a small first share


def test_eta_counts_validation_and_saving_not_only_steps():
    progress = Progress()
    for now, event in _training_script():
        progress.update(event, now)
        if isinstance(event, StepEvent) and (event.epoch, event.step) == (2, 1):
            break
    # epoch 1 took 4 s of steps + 6 s of validation + 2 s of saving; 1 step of epoch 2 is done: 11 s are left
    assert progress.eta == pytest.approx(11.0)
    assert 0.5 < progress.fraction < 0.6  # one epoch and a twelfth of the training, after 5 % of preparation


def test_progress_of_a_real_run_is_monotonic_and_ends_at_one(run_events):
    progress, seen = Progress(), []
    for event in run_events:
        progress.update(event)
        seen.append(progress.fraction)
    assert all(b >= a for a, b in zip(seen, seen[1:]))
    assert max(seen[:-1]) < 1.0 and seen[-1] == 1.0 and progress.eta == 0.0


def test_progress_of_a_job_without_epochs_counts_units():
    progress = Progress()
    progress.update(ProgressEvent(0, 10, "predicting 10 windows"), 0.0)
    progress.update(ProgressEvent(4, 10, "windows"), 2.0)
    assert progress.fraction == pytest.approx(0.4) and progress.eta == pytest.approx(3.0)
    progress.update(ProgressEvent(10, 10, "windows"), 5.0)
    assert progress.fraction < 1.0  # written and flushed only at the FinishedEvent
    progress.update(FinishedEvent("out.tif"), 5.5)
    assert progress.fraction == 1.0


def test_event_handler_dispatches_by_event_name_after_the_progress_moved():
    class Front(EventHandler):
        def __init__(self):
            self.seen = []

        def on_WarningEvent(self, event):  # noqa: N802
            self.seen.append(("warning", event.message, self.tracker.fraction))

        def on_FinishedEvent(self, event):  # noqa: N802
            self.seen.append(("finished", event.path, self.tracker.fraction))

    front = Front()
    for event in (WarningEvent("careful"), StepEvent(1, 1, 0.1, 1e-3, 1.0), FinishedEvent("m.geofm")):
        front.handle(event)
    assert front.seen == [("warning", "careful", 0.0), ("finished", "m.geofm", 1.0)]
    assert np.isclose(front.tracker.fraction, 1.0)
