"""One training or pretraining run as the training dock shows it: preparation progress, loss and mIoU curves,
epoch, validation, speed, ETA, the run's warnings (kept in view), Cancel, and an end card with what to do next."""

from __future__ import annotations

import dataclasses
import html
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from matplotlib.backends.backend_qtagg import FigureCanvasQTAgg
from matplotlib.figure import Figure
from qgis.PyQt.QtCore import Qt, QTimer, pyqtSignal
from qgis.PyQt.QtWidgets import (
    QFrame,
    QHBoxLayout,
    QLabel,
    QProgressBar,
    QPushButton,
    QSpinBox,
    QVBoxLayout,
    QWidget,
)

from ..core.config import continued
from ..core.events import EventHandler
from .engine_task import EngineTask
from .package_info import percent

REDRAW_MS = 400
RUNNING, FINISHED, CANCELLED, FAILED = "running", "finished", "cancelled", "failed"
#: The bar's colour once a run has ended, by its state (light, so its dark text stays readable).
BAR_COLOURS = {FINISHED: "#81c784", CANCELLED: "#cfcfcf", FAILED: "#ef9a9a"}
BAR_STYLE = ("QProgressBar {{ border: 1px solid #9e9e9e; border-radius: 3px; text-align: center; }} "
             "QProgressBar::chunk {{ background-color: {colour}; }}")
NO_CHECKPOINT = ("The checkpoint was removed when this run finished. To continue a run later, tick “Keep the "
                 "checkpoint” (Advanced settings) before training.")

Predict = Callable[[str], Any]
Restart = Callable[[str, Any], Any]  # (kind, config) → a new run in the dock


class RunView(QWidget, EventHandler):
    """Follows one task; the dock holds one per run of the session.

    Events arrive through :meth:`on_event` (queued to the main thread) and are dispatched by
    :class:`~geofm.core.events.EventHandler` to ``on_<EventName>``; the bar and the ETA are the core's
    (``self.tracker``). ``state`` is running, finished, cancelled or failed; ``state_changed`` tells the dock.
    ``predict(path)`` opens the Predict dialog with a model; ``restart(kind, config)`` starts a new run.
    """

    state_changed = pyqtSignal()

    def __init__(self, task: EngineTask, config: Any, kind: str, predict: Predict, restart: Restart,
                 parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.task, self.config, self.kind = task, config, kind
        self.output = config.output
        self._predict, self._restart = predict, restart
        self.started = time.localtime()
        self.state = RUNNING
        self.steps: list[tuple[float, float]] = []  # (fractional epoch, loss)
        self.epochs: list[dict[str, Any]] = []
        self.steps_per_epoch = 1
        self.total_epochs = 1
        self.val_tiles = 0
        self.epoch = 0  # the epoch in progress (its last step)
        self.checkpoint = ""  # the last checkpoint this run wrote
        self.warnings: list[str] = []
        self.finished_event = None
        self.cancelled_event = None

        layout = QVBoxLayout(self)
        layout.setContentsMargins(0, 0, 0, 0)
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
        self.canvas = FigureCanvasQTAgg(self.figure)
        self._relayout = True  # margins fitted to the labels at the canvas's size: at first, on resize, per epoch
        self.canvas.mpl_connect("resize_event", self._layout_later)
        self.canvas.setMinimumHeight(280)
        self.loss_axes = self.figure.add_subplot(2, 1, 1)
        self.miou_axes = self.figure.add_subplot(2, 1, 2, sharex=self.loss_axes)
        self._lines = self._make_lines()
        self.summary = QLabel()  # sized to its content: the per-class table is read whole, not in a scroll box
        self.summary.setWordWrap(True)
        self.summary.setTextFormat(Qt.TextFormat.RichText)
        self.summary.setTextInteractionFlags(Qt.TextInteractionFlag.TextSelectableByMouse)
        self.summary.setVisible(False)
        self.cancel_button = QPushButton(f"Cancel {kind}")  # "Cancel training", "Cancel pretraining"
        self.cancel_button.clicked.connect(self.cancel)
        self.end_card = self._make_end_card()
        for widget in (self.status, self.progress, self.warnings_label, self.canvas, self.summary, self.end_card,
                       self.cancel_button):
            layout.addWidget(widget)
        layout.addStretch(1)

        self._dirty = False
        self._timer = QTimer(self)
        self._timer.setInterval(REDRAW_MS)
        self._timer.timeout.connect(self._redraw_if_dirty)
        self._timer.start()
        self._draw()
        task.engine_event.connect(self.on_event, Qt.ConnectionType.QueuedConnection)
        task.ended.connect(self.on_ended)

    @property
    def title(self) -> str:
        """What the dock's run list shows: the file, the state (with the score) and the start time."""
        state = self.state
        if state == FINISHED:
            miou = ((self.finished_event.summary or {}).get("metrics") or {}).get("mean_iou")
            state = f"finished, mIoU {percent(miou)}" if miou is not None else "finished"
        return f"{time.strftime('%H:%M', self.started)}  {Path(self.output).name} — {state}"

    # -- events (main thread) --------------------------------------------------------------------------------
    def on_event(self, event: Any) -> None:
        """Take one engine event into the view."""
        self.handle(event)
        if self.state == RUNNING:
            self.progress.setValue(int(100 * self.tracker.fraction))

    def on_ProgressEvent(self, event) -> None:  # noqa: N802
        if not event.phase:
            return
        count = f" {event.done} of {event.total}" if event.total else ""
        self.status.setText(f"Preparing the data: {event.phase}{count}…")

    def on_StartEvent(self, event) -> None:  # noqa: N802
        self.steps_per_epoch = max(1, event.steps_per_epoch)
        self.total_epochs = max(1, event.total_epochs)
        self.val_tiles = event.val_tiles
        if self.kind == "training":
            self.status.setText(f"Training on {event.device}: {event.train_tiles:,} training tiles, "
                                f"{event.val_tiles:,} validation tiles.")
        else:
            self.status.setText(f"{self.kind.capitalize()} on {event.device}: {event.train_tiles:,} windows to crop "
                                "from.")
        if not event.val_tiles:  # no mIoU plot to stay empty: the loss takes the whole chart and says why
            why = ("no labels held out: no validation score" if self.kind == "training"
                   else "self-supervised (no labels): no validation score")
            self.miou_axes.set_visible(False)
            self.loss_axes.set_subplotspec(self.figure.add_gridspec(1, 1)[0])
            self.loss_axes.set_xlabel("epoch")
            self.loss_axes.set_title(why, fontsize="small", color="#666666")
            self._lines["val"].set_label("_nolegend_")  # no validation loss either
            self.loss_axes.legend(loc="upper right", fontsize="small")
            self._layout_later()

    def on_StepEvent(self, event) -> None:  # noqa: N802
        """A step done; after an epoch's last step the loop validates, with no event until it is over."""
        self.epoch = event.epoch
        self.steps.append((event.epoch - 1 + event.step / self.steps_per_epoch, event.loss))
        eta = self.tracker.eta
        where = f"Epoch {event.epoch} of {self.total_epochs}"
        if event.step >= self.steps_per_epoch and self.val_tiles:
            now = f"validating on {self.val_tiles} tiles…"
        else:
            now = f"step {event.step} of {self.steps_per_epoch} · loss {event.loss:.3f} · {event.tiles_per_s:.1f} tiles/s"
        self.status.setText(f"{where} · {now} · ETA {_duration(eta) if eta is not None else '…'}")
        self._dirty = True

    def on_EpochEvent(self, event) -> None:  # noqa: N802
        miou = event.metrics.get("mean_iou")
        self.epochs.append({"epoch": event.epoch, "train_loss": event.train_loss, "val_loss": event.val_loss,
                            "miou": miou})
        score = f" · validation mIoU {percent(miou)}" if miou is not None else ""
        self.status.setText(f"Epoch {event.epoch} of {self.total_epochs} done{score} · saving…")
        self._layout_later()

    def on_CheckpointEvent(self, event) -> None:  # noqa: N802
        if event.kind == "last":
            self.checkpoint = event.path

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
        """The task is over: its final state on the bar, the summary, the cancellation note or the error, and the
        end card."""
        self._timer.stop()
        self._draw()
        self.cancel_button.setVisible(False)
        self.summary.setVisible(True)
        if ok and self.finished_event is not None:
            self.state = FINISHED
            self.progress.setValue(100)
            self.progress.setFormat("Finished")
            self.status.setText(f"{self.kind.capitalize()} finished.")
            self.summary.setText(summary_html(self.finished_event.summary, self.finished_event.path, self.kind))
        elif self.task.cancelled:
            self.state = CANCELLED
            where = (f"Cancelled at epoch {self.epoch} of {self.total_epochs}" if self.epoch
                     else "Cancelled while preparing the data")
            self.progress.setFormat(where)
            message = self.cancelled_event.message if self.cancelled_event else f"{self.kind.capitalize()} cancelled."
            self.status.setText(f"{where}.")
            self.summary.setText(f"<p>{html.escape(message)}</p>")
        else:
            self.state = FAILED
            self.progress.setFormat("Failed")
            self.status.setText(f"{self.kind.capitalize()} failed.")
            error = html.escape(self.task.error or "The task stopped without a message; see the geofm log tab.")
            self.summary.setText(f"<p style='color:#c62828'>{error}</p>".replace("\n", "<br>"))
        # a cancel or a failure leaves the bar where the run stopped, grey or red, saying so
        self.progress.setStyleSheet(BAR_STYLE.format(colour=BAR_COLOURS[self.state]))
        self._fill_end_card()
        self.state_changed.emit()

    def cancel(self) -> None:
        """Ask the task to stop after the current step."""
        self.cancel_button.setEnabled(False)
        self.status.setText("Cancelling after the current step…")
        self.task.cancel()

    # -- the end card --------------------------------------------------------------------------------------------
    def _make_end_card(self) -> QFrame:
        card = QFrame()
        card.setFrameShape(QFrame.Shape.StyledPanel)
        layout = QVBoxLayout(card)
        self.predict_button = QPushButton("Predict with this model…")
        self.predict_button.clicked.connect(lambda: self._predict(self.output))
        self.matrix_button = QPushButton("Show the confusion matrix…")
        self.matrix_button.clicked.connect(self.show_confusion_matrix)
        row = QHBoxLayout()
        self.continue_button = QPushButton("Continue")
        self.continue_button.clicked.connect(self.continue_training)
        self.more_epochs = QSpinBox()
        self.more_epochs.setRange(1, 10000)
        self.more_epochs.setValue(5)
        self.more_epochs.setSuffix(" more epoch(s)")
        row.addWidget(self.continue_button)
        row.addWidget(self.more_epochs, 1)
        self.continue_row = QWidget()
        self.continue_row.setLayout(row)
        row.setContentsMargins(0, 0, 0, 0)
        self.resume_button = QPushButton("Resume from the last finished epoch")
        self.resume_button.clicked.connect(self.resume)
        for widget in (self.predict_button, self.matrix_button, self.continue_row, self.resume_button):
            layout.addWidget(widget)
        card.setVisible(False)
        return card

    def _fill_end_card(self) -> None:
        """Only what applies: predicting and the matrix for a segmentation model; continuing a finished run;
        resuming a cancelled or failed one that had finished an epoch."""
        metrics = (self.finished_event.summary or {}).get("metrics") or {} if self.finished_event else {}
        kept = self.state == FINISHED or bool(self.cancelled_event and self.cancelled_event.path)
        checkpoint = bool(self.checkpoint) and Path(self.checkpoint).is_file()
        self.predict_button.setVisible(self.kind == "training" and kept and Path(self.output).is_file())
        self.matrix_button.setVisible(bool(metrics.get("confusion_matrix")))
        self.continue_row.setVisible(self.state == FINISHED)
        self.continue_button.setEnabled(checkpoint)
        self.more_epochs.setEnabled(checkpoint)
        self.continue_row.setToolTip("" if checkpoint else NO_CHECKPOINT)
        self.continue_button.setToolTip("" if checkpoint else NO_CHECKPOINT)
        self.resume_button.setVisible(self.state in (CANCELLED, FAILED) and checkpoint)
        buttons = (self.predict_button, self.matrix_button, self.continue_row, self.resume_button)
        self.end_card.setVisible(any(not b.isHidden() for b in buttons))

    def continue_training(self) -> Any:
        """A new run in the dock, resuming this one's checkpoint for N more epochs than it ran."""
        done = int((self.finished_event.summary or {}).get("epochs_run") or 0)
        return self._restart(self.kind, continued(self.config, self.checkpoint, done, self.more_epochs.value()))

    def resume(self) -> Any:
        """A new run in the dock, going on from this one's last finished epoch to the epochs it was given."""
        return self._restart(self.kind, dataclasses.replace(self.config, resume=self.checkpoint))

    def show_confusion_matrix(self):
        """The best epoch's validation confusion matrix as a heat map, in a dialog."""
        from .confusion_dialog import ConfusionDialog

        metrics = self.finished_event.summary["metrics"]
        names = [c.get("name", str(c.get("index"))) for c in metrics.get("per_class", [])]
        self.matrix_dialog = ConfusionDialog(metrics["confusion_matrix"], names, Path(self.output).name, self)
        self.matrix_dialog.show()
        return self.matrix_dialog

    # -- drawing -----------------------------------------------------------------------------------------------
    def _redraw_if_dirty(self) -> None:
        if self._dirty:
            self._draw()

    def _layout_later(self, _event: Any = None) -> None:
        self._relayout = self._dirty = True

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
        if self._relayout:  # fitting the margins costs several draws: not at every step (a layout engine would)
            self._relayout = False
            self.figure.tight_layout(pad=0.5, h_pad=0.8)
        self.canvas.draw_idle()


def summary_html(summary: dict[str, Any], path: str, kind: str = "training") -> str:
    """The end-of-training summary: mean IoU, per-class IoU table and where the package is (for a run without
    metrics — pretraining, or training with no labels held out — its epochs and last loss, and for training how to
    get a held-out score)."""
    metrics = summary.get("metrics") or {}
    if "mean_iou" not in metrics:
        history = summary.get("history") or [{}]
        loss = history[-1].get("train_loss")
        unscored = ("<p>No labels were held out for validation (validation share 0 %, the default: every label "
                    "trains), so this run has no held-out score. For one, compare the prediction with labels the "
                    "model never saw, or train again with a validation share (e.g. 20 %) under Advanced.</p>"
                    if kind == "training" else "")
        return (f"<p><b>{summary.get('epochs_run', '?')} epoch(s) done</b>, last training loss "
                f"{'–' if loss is None else f'{loss:.4f}'}.</p>{unscored}<p>Saved to <b>{html.escape(path)}</b></p>")
    rows = "".join(
        f"<tr><td>{html.escape(str(c.get('name', '')))}</td><td align='right'>{percent(c.get('iou'))}</td>"
        f"<td align='right'>{percent(c.get('f1'))}</td></tr>"
        for c in metrics.get("per_class", [])
    )
    head = (f"<p><b>Mean IoU {percent(metrics.get('mean_iou'))}</b>, overall accuracy "
            f"{percent(metrics.get('overall_accuracy'))} (best epoch {summary.get('best_epoch', '?')} of "
            f"{summary.get('epochs_run', '?')}).</p>")
    table = (f"<table cellspacing='0' cellpadding='3'><tr><th align='left'>Class</th><th>IoU</th><th>F1</th></tr>"
             f"{rows}</table>")
    return f"{head}{table if rows else ''}<p>Model saved to <b>{html.escape(path)}</b></p>"


def _duration(seconds: float) -> str:
    seconds = int(round(seconds))
    if seconds < 60:
        return f"{seconds} s"
    if seconds < 3600:
        return f"{seconds // 60} min {seconds % 60:02d} s"
    return f"{seconds // 3600} h {seconds % 3600 // 60:02d} min"
