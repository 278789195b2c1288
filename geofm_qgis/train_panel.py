"""The live training panel: preparation progress, loss and mIoU curves, epoch, speed, ETA, the run's warnings
(kept in view), Cancel, and the final summary."""

from __future__ import annotations

import html
from pathlib import Path
from typing import Any

from matplotlib.backends.backend_qtagg import FigureCanvasQTAgg
from matplotlib.figure import Figure
from qgis.gui import QgsDockWidget
from qgis.PyQt.QtCore import Qt, QTimer
from qgis.PyQt.QtWidgets import QLabel, QProgressBar, QPushButton, QTextBrowser, QVBoxLayout, QWidget

from ..core.events import EventHandler
from .engine_task import EngineTask

REDRAW_MS = 400


class TrainPanel(QgsDockWidget, EventHandler):
    """Follows one training task; several panels follow several tasks independently.

    Events arrive through :meth:`on_event` (queued to the main thread) and are dispatched by
    :class:`~geofm.core.events.EventHandler` to ``on_<EventName>``; the bar and the ETA are the core's
    (``self.tracker``). Warnings stay listed under the status line until the panel is closed.
    """

    def __init__(self, task: EngineTask, output: str, parent: QWidget | None = None) -> None:
        super().__init__(f"geofm training — {Path(output).name}", parent)
        self.setObjectName(f"geofm-train-{id(task)}")
        self.task = task
        self.output = output
        self.steps: list[tuple[float, float]] = []  # (fractional epoch, loss)
        self.epochs: list[dict[str, Any]] = []
        self.steps_per_epoch = 1
        self.total_epochs = 1
        self.warnings: list[str] = []
        self.finished_event = None
        self.cancelled_event = None

        body = QWidget()
        layout = QVBoxLayout(body)
        self.status = QLabel("Preparing tiles…")
        self.status.setWordWrap(True)
        self.progress = QProgressBar()
        self.progress.setRange(0, 100)
        self.warnings_label = QLabel()
        self.warnings_label.setWordWrap(True)
        self.warnings_label.setTextFormat(Qt.TextFormat.RichText)
        self.warnings_label.setStyleSheet("color: #8a4b00;")
        self.warnings_label.setVisible(False)
        self.figure = Figure(figsize=(4.6, 3.4), dpi=90)
        self.figure.subplots_adjust(left=0.17, right=0.97, top=0.97, bottom=0.11, hspace=0.22)
        self.canvas = FigureCanvasQTAgg(self.figure)
        self.canvas.setMinimumHeight(260)
        self.loss_axes = self.figure.add_subplot(2, 1, 1)
        self.miou_axes = self.figure.add_subplot(2, 1, 2, sharex=self.loss_axes)
        self._lines = self._make_lines()
        self.summary = QTextBrowser()
        self.summary.setOpenExternalLinks(False)
        self.summary.setVisible(False)
        self.cancel_button = QPushButton("Cancel training")
        self.cancel_button.clicked.connect(self.cancel)
        for widget, stretch in ((self.status, 0), (self.progress, 0), (self.warnings_label, 0), (self.canvas, 2),
                                (self.summary, 1), (self.cancel_button, 0)):
            layout.addWidget(widget, stretch)
        self.setWidget(body)

        self._dirty = False
        self._timer = QTimer(self)
        self._timer.setInterval(REDRAW_MS)
        self._timer.timeout.connect(self._redraw_if_dirty)
        self._timer.start()
        self._draw()
        task.engine_event.connect(self.on_event, Qt.ConnectionType.QueuedConnection)
        task.ended.connect(self.on_ended)

    # -- events (main thread) --------------------------------------------------------------------------------
    def on_event(self, event: Any) -> None:
        """Take one engine event into the panel."""
        self.handle(event)
        self.progress.setValue(int(100 * self.tracker.fraction))

    def on_ProgressEvent(self, event) -> None:  # noqa: N802
        if not event.phase:
            return
        count = f" {event.done} of {event.total}" if event.total else ""
        self.status.setText(f"Preparing the data: {event.phase}{count}…")

    def on_StartEvent(self, event) -> None:  # noqa: N802
        self.steps_per_epoch = max(1, event.steps_per_epoch)
        self.total_epochs = max(1, event.total_epochs)
        self.status.setText(f"Training on {event.device}: {event.train_tiles} training tiles, "
                            f"{event.val_tiles} validation tiles.")

    def on_StepEvent(self, event) -> None:  # noqa: N802
        self.steps.append((event.epoch - 1 + event.step / self.steps_per_epoch, event.loss))
        eta = self.tracker.eta
        self.status.setText(f"Epoch {event.epoch} of {self.total_epochs} · step {event.step} of "
                            f"{self.steps_per_epoch} · loss {event.loss:.3f} · {event.tiles_per_s:.1f} tiles/s · "
                            f"ETA {_duration(eta) if eta is not None else '…'}")
        self._dirty = True

    def on_EpochEvent(self, event) -> None:  # noqa: N802
        self.epochs.append({"epoch": event.epoch, "train_loss": event.train_loss, "val_loss": event.val_loss,
                            "miou": event.metrics.get("mean_iou")})
        self._dirty = True

    def on_FinishedEvent(self, event) -> None:  # noqa: N802
        self.finished_event = event

    def on_CancelledEvent(self, event) -> None:  # noqa: N802
        self.cancelled_event = event

    def on_WarningEvent(self, event) -> None:  # noqa: N802
        """Listed under the status line, where later steps do not overwrite it (the task also pushes it to the
        message bar and the log)."""
        if event.message in self.warnings:
            return
        self.warnings.append(event.message)
        self.warnings_label.setText("<br>".join(f"⚠ {html.escape(w)}" for w in self.warnings))
        self.warnings_label.setVisible(True)

    def on_ended(self, ok: bool) -> None:  # noqa: FBT001
        """The task is over: show the summary, the cancellation note or the error."""
        self._timer.stop()
        self._draw()
        self.cancel_button.setEnabled(False)
        self.summary.setVisible(True)
        if ok and self.finished_event is not None:
            self.progress.setValue(100)
            self.status.setText("Training finished.")
            self.summary.setHtml(summary_html(self.finished_event.summary, self.finished_event.path))
        elif self.cancelled_event is not None or self.task.isCanceled():
            message = self.cancelled_event.message if self.cancelled_event else "Training cancelled."
            self.status.setText(message)
            self.summary.setHtml(f"<p>{html.escape(message)}</p>")
        else:
            self.status.setText("Training failed.")
            self.summary.setHtml(f"<p style='color:#c62828'>{html.escape(self.task.error)}</p>".replace("\n", "<br>"))

    def cancel(self) -> None:
        """Ask the task to stop after the current step."""
        self.cancel_button.setEnabled(False)
        self.status.setText("Cancelling after the current step…")
        self.task.cancel()

    # -- drawing -----------------------------------------------------------------------------------------------
    def _redraw_if_dirty(self) -> None:
        if self._dirty:
            self._draw()

    def _make_lines(self) -> dict[str, Any]:
        """Axes, labels and (empty) lines, made once; redraws only update the lines' data (cheap on the UI)."""
        loss, miou = self.loss_axes, self.miou_axes
        lines = {
            "step": loss.plot([], [], color="#9ecae1", linewidth=0.8, label="step loss")[0],
            "epoch": loss.plot([], [], "o-", color="#08519c", label="epoch loss")[0],
            "val": loss.plot([], [], "s--", color="#e6550d", label="validation loss")[0],
            "miou": miou.plot([], [], "o-", color="#31a354")[0],
        }
        loss.set_ylabel("loss")
        miou.set_ylabel("validation mIoU")
        miou.set_xlabel("epoch")
        miou.set_ylim(0, 1)
        loss.legend(loc="upper right", fontsize="small")
        for axes in (loss, miou):
            axes.grid(True, alpha=0.3)
            axes.tick_params(labelsize="small")
        return lines

    def _draw(self) -> None:
        self._dirty = False
        series = {
            "step": self.steps,
            "epoch": [(e["epoch"], e["train_loss"]) for e in self.epochs if e["train_loss"] is not None],
            "val": [(e["epoch"], e["val_loss"]) for e in self.epochs if e["val_loss"] is not None],
            "miou": [(e["epoch"], e["miou"]) for e in self.epochs if e["miou"] is not None],
        }
        for name, points in series.items():
            self._lines[name].set_data([p[0] for p in points], [p[1] for p in points])
        self.loss_axes.set_xlim(0, max(1, self.total_epochs))
        self.loss_axes.relim()
        self.loss_axes.autoscale_view(scalex=False)
        self.canvas.draw_idle()

def summary_html(summary: dict[str, Any], path: str) -> str:
    """The end-of-training summary: mean IoU, per-class IoU table and where the package is (for a run without
    metrics, e.g. pretraining: its epochs and last loss)."""
    metrics = summary.get("metrics") or {}
    if "mean_iou" not in metrics:
        history = summary.get("history") or [{}]
        loss = history[-1].get("train_loss")
        return (f"<p><b>{summary.get('epochs_run', '?')} epoch(s) done</b>, last training loss "
                f"{'–' if loss is None else f'{loss:.4f}'}.</p><p>Saved to <b>{html.escape(path)}</b></p>")
    rows = "".join(
        f"<tr><td>{html.escape(str(c.get('name', '')))}</td><td align='right'>{_pct(c.get('iou'))}</td>"
        f"<td align='right'>{_pct(c.get('f1'))}</td></tr>"
        for c in metrics.get("per_class", [])
    )
    head = (f"<p><b>Mean IoU {_pct(metrics.get('mean_iou'))}</b>, overall accuracy "
            f"{_pct(metrics.get('overall_accuracy'))} (best epoch {summary.get('best_epoch', '?')} of "
            f"{summary.get('epochs_run', '?')}).</p>")
    table = f"<table cellspacing='0' cellpadding='2'><tr><th>Class</th><th>IoU</th><th>F1</th></tr>{rows}</table>"
    return f"{head}{table if rows else ''}<p>Model saved to <b>{html.escape(path)}</b></p>"


def _pct(value: float | None) -> str:
    return "–" if value is None else f"{100 * value:.1f} %"


def _duration(seconds: float) -> str:
    seconds = int(round(seconds))
    if seconds < 60:
        return f"{seconds} s"
    if seconds < 3600:
        return f"{seconds // 60} min {seconds % 60:02d} s"
    return f"{seconds // 3600} h {seconds % 3600 // 60:02d} min"
