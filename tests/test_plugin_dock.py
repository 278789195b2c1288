"""The one training dock, as an analyst uses it: the session's runs in a list, a cancel that is not a failure, and
the end card's Predict, Continue, Resume and confusion matrix, on tiny real rasters (tile 32, 1–3 epochs)."""

from __future__ import annotations

from pathlib import Path

from qgis.core import Qgis, QgsTask
from qgis.gui import QgsDockWidget
from qgis.PyQt import sip
from qgis.PyQt.QtCore import QCoreApplication, QEvent

from geofm.core.checkpoint import checkpoint_path
from geofm.core.config import TrainConfig

from qgis_helpers import process_until
from rasters import separable_scene


def _config(tmp_path, name: str, **kw) -> TrainConfig:
    folder = tmp_path / name
    folder.mkdir()
    img, lbl = separable_scene(folder, size=96)
    base = dict(images=[str(img)], labels=[str(lbl)], backbone="resnet18", weights="none", decoder="simple",
                tile_size=32, overlap=0, batch_size=4, epochs=1, val_fraction=0.25, split_block=48, device="cpu",
                output=str(folder / "model.geofm"))
    return TrainConfig(**{**base, **kw})


def _run(plugin, config, on_event=None):
    """Start a training run from the plugin and wait for its end; its task, its view in the dock and its outcome."""
    task = plugin.start_training(config)
    view = plugin.dock.views[-1]
    if on_event is not None:
        task.engine_event.connect(on_event)
    done = []
    task.ended.connect(done.append)
    process_until(lambda: bool(done), timeout=300)
    return task, view, done[0]


def _wait_for_new_run(plugin, before: int):
    process_until(lambda: len(plugin.dock.views) > before, timeout=10)
    view = plugin.dock.views[-1]
    process_until(lambda: view.state != "running", timeout=300)
    return view


def test_one_dock_keeps_the_runs_of_the_session_and_comes_back_when_closed(plugin, tmp_path, qgis_iface):
    task, first, ok = _run(plugin, _config(tmp_path, "good"))
    assert ok, task.error
    bad = _config(tmp_path, "bad")
    bad.labels = [str(tmp_path / "bad" / "missing.tif")]
    _, failed, ok = _run(plugin, bad)
    assert not ok
    docks = [d for d in qgis_iface.mainWindow().findChildren(QgsDockWidget) if d.windowTitle() == "geofm training"]
    assert docks == [plugin.dock]
    titles = plugin.dock.titles()
    assert len(titles) == 2 and "finished, mIoU" in titles[0] and "failed" in titles[1]
    assert plugin.dock.current_view() is failed  # the newest run is the one shown
    assert "missing.tif" in failed.summary.text() and failed.progress.format() == "Failed"
    assert first.progress.value() == 100 and first.progress.format() == "Finished"
    assert "Mean IoU" in first.summary.text() and first.summary.sizeHint().height() > 80  # the table, not 2 lines
    # a finished run removed its checkpoint: Continue says how to keep one next time
    assert not checkpoint_path(first.output).exists() and Path(first.output).is_file()
    assert not first.continue_button.isEnabled() and "Keep the checkpoint" in first.continue_button.toolTip()

    plugin.dock.close()
    assert plugin.dock.isHidden()
    _run(plugin, bad)
    assert not plugin.dock.isHidden() and len(plugin.dock.views) == 3

    dock = plugin.dock
    plugin.unload()  # as when QGIS unloads the plugin: the dock goes with it
    QCoreApplication.sendPostedEvents(None, QEvent.Type.DeferredDelete)
    assert plugin.dock is None and sip.isdeleted(dock)


def test_cancel_is_not_a_failure_and_resume_goes_on(plugin, tmp_path, qgis_iface):
    config = _config(tmp_path, "cancel", epochs=5)

    def cancel_after_the_first_epoch(event):
        if type(event).__name__ == "CheckpointEvent" and event.kind == "last":
            plugin.dock.views[-1].cancel()

    task, view, ok = _run(plugin, config, cancel_after_the_first_epoch)
    assert not ok and task.cancelled and not task.error
    assert task.status() == QgsTask.TaskStatus.Complete and task.description().endswith("cancelled")
    assert view.state == "cancelled" and "cancelled" in plugin.dock.titles()[-1]
    # the cancel reaches the worker a little after the first epoch's checkpoint (through the main thread)
    assert view.progress.format() == f"Cancelled at epoch {view.epoch} of 5" and 1 <= view.epoch < 5
    assert "kept the best model so far" in view.summary.text()
    bar = qgis_iface.messageBar()
    assert not bar.get_messages(Qgis.MessageLevel.Critical)
    assert any("cancelled" in m.lower() for m in bar.get_messages(Qgis.MessageLevel.Info))
    assert checkpoint_path(config.output).is_file()  # a cancelled run keeps it, for Resume

    assert not view.resume_button.isHidden()
    view.resume_button.click()
    resumed = _wait_for_new_run(plugin, 1)
    assert resumed.state == "finished", resumed.task.error
    assert [e["epoch"] for e in resumed.epochs] == list(range(len(view.epochs) + 1, 6))


def test_end_card_predicts_continues_and_shows_the_confusion_matrix(plugin, tmp_path):
    config = _config(tmp_path, "card", keep_checkpoint=True)
    task, view, ok = _run(plugin, config)
    assert ok, task.error

    view.predict_button.click()
    assert type(plugin.dialog).__name__ == "PredictDialog"
    assert plugin.dialog.package_widget.filePath() == config.output
    plugin.dialog.close()

    view.matrix_button.click()
    names = [c["name"] for c in view.finished_event.summary["metrics"]["per_class"]]
    assert len(names) == 3
    assert view.matrix_dialog.tick_labels() == {"x": names, "y": names}
    view.matrix_dialog.close()

    assert view.continue_button.isEnabled()
    view.more_epochs.setValue(2)
    view.continue_button.click()
    more = _wait_for_new_run(plugin, 1)
    assert more.state == "finished", more.task.error
    assert [e["epoch"] for e in more.epochs] == [2, 3]
    assert more.finished_event.summary["epochs_run"] == 3
    assert checkpoint_path(config.output).is_file()  # kept, as asked


def test_a_run_with_no_labels_held_out_says_it_has_no_validation_score_and_how_to_get_one(plugin, tmp_path):
    """The default validation share is 0: no empty mIoU plot; the loss chart, the legend and the end card say why."""
    task, view, ok = _run(plugin, _config(tmp_path, "noval", val_fraction=0.0))
    assert ok, task.error
    assert not view.miou_axes.get_visible() and view.figure.get_axes()[0].get_position().height > 0.6
    assert "no validation score" in view.loss_axes.get_title()
    assert "validation loss" not in [t.get_text() for t in view.loss_axes.get_legend().get_texts()]
    text = view.summary.text()
    assert "No labels were held out" in text and "validation share" in text and "Mean IoU" not in text
    assert plugin.dock.titles()[-1].endswith("finished")
