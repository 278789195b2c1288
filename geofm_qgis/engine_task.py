"""A QgsTask that runs one engine job (a generator of events) and re-emits its events as Qt signals.

Progress comes from core (``EventHandler.tracker``); warnings reach the user's message bar and the log."""

from __future__ import annotations

import importlib
import sys
import threading
import traceback
from collections.abc import Callable, Iterator
from typing import Any

from qgis.core import Qgis, QgsTask
from qgis.PyQt.QtCore import Qt, pyqtSignal
from qgis.PyQt.QtGui import QCursor, QGuiApplication

from ..core.events import EventHandler
from .messages import log, push

Job = Callable[[threading.Event], Iterator[Any]]


def block_triton() -> None:
    """Keep triton out (shipped with CUDA builds of torch, used only by torch.compile, which geofm does not use):
    its LLVM clashes with the LLVM that Mesa's OpenGL driver has already loaded into QGIS, and segfaults."""
    if "triton" not in sys.modules:
        sys.modules["triton"] = None  # torch then takes triton as not installed


def preload(module: str) -> None:
    """Import ``geofm.core.<module>`` (torch and its extensions) on the main thread, with a busy cursor.

    Loading torch's native extensions for the first time in a worker thread can crash the process, so dialogs
    and algorithms call this before they start a task; afterwards the worker's import is a dictionary lookup.
    Dialogs load it earlier, in steps after they have opened (``engine_status.EngineStatus``).
    """
    block_triton()
    QGuiApplication.setOverrideCursor(QCursor(Qt.CursorShape.WaitCursor))
    try:
        importlib.import_module(f"{__package__.rsplit('.', 1)[0]}.core.{module}")
    finally:
        QGuiApplication.restoreOverrideCursor()


class EngineTask(QgsTask, EventHandler):
    """Runs ``job(cancel)`` in a worker thread; ``run()`` touches no widget, layer or project.

    Signals (delivered to the main thread): ``engine_event(object)`` for every engine event, ``ended(bool)`` once
    the task is over (True when the job finished well). The task's progress is the core's fraction
    (``self.tracker``). Every WarningEvent is pushed to ``bar`` (a QgsMessageBar; none: the log only) and logged
    in the geofm tab, on the main thread, and kept in ``warnings``. After it ended: ``error`` holds the message for
    the user ('' when none), ``result`` the last event, ``cancelled`` whether the user's cancel stopped it.

    QGIS has no "cancelled" state: a task whose ``run()`` returns False is *Terminated*, which QGIS reports as
    "Task failed". A cancel that the job honoured is not a failure, so such a task completes, with "— cancelled"
    added to its description (what the task list and QGIS's notification show), and ``ended`` says False.
    """

    engine_event = pyqtSignal(object)
    ended = pyqtSignal(bool)

    def __init__(self, description: str, job: Job, bar=None) -> None:
        super().__init__(description, QgsTask.Flag.CanCancel)
        self._job = job
        self._cancel = threading.Event()
        self.bar = bar
        self.error = ""
        self.result: Any = None
        self.warnings: list[str] = []
        self.cancelled = False
        self.engine_event.connect(self._show, Qt.ConnectionType.QueuedConnection)

    def run(self) -> bool:
        """Worker thread: iterate the job, forward events, turn exceptions into a message."""
        try:
            from ..core.errors import GeoFMError
        except ImportError as err:  # the engine's dependencies went missing
            self.error = f"geofm's engine cannot load: {err}"
            return False
        try:
            from ..core.device import reserve_cpu_cores
        except ImportError:  # predict-only install (onnxruntime, no torch): onnxruntime sizes its own threads
            pass
        else:
            reserve_cpu_cores(1)  # QGIS's main thread keeps a core: the window stays responsive
        try:
            for event in self._job(self._cancel):
                self.result = event
                self.handle(event)
                self.setProgress(100.0 * self.tracker.fraction)
                self.engine_event.emit(event)
        except GeoFMError as err:
            if self._cancel.is_set():  # the cancel surfaced as an error (e.g. Cancelled): still the user's choice
                return self._stopped_by_user()
            self.error = str(err)
            return False
        except Exception as err:  # noqa: BLE001 - any failure becomes a message, never a crash of QGIS
            self.error = f"Unexpected error: {err}. Details are in the log (geofm tab)."
            log(traceback.format_exc(), Qgis.MessageLevel.Critical)
            return False
        if type(self.result).__name__ == "FinishedEvent":
            return True
        return self._stopped_by_user() if self._cancel.is_set() else False

    def _stopped_by_user(self) -> bool:
        """The job stopped at the user's cancel, keeping what it had finished: the task completes as cancelled."""
        self.cancelled = True
        self.setDescription(f"{self.description()} — cancelled")
        return True

    def _show(self, event: Any) -> None:
        """Main thread: what the user must see at once (a warning) goes to the message bar and the log."""
        if type(event).__name__ != "WarningEvent":
            return
        self.warnings.append(event.message)
        if self.bar is not None:
            push(self.bar, self.description(), event.message, Qgis.MessageLevel.Warning)
        else:
            log(f"{self.description()}: {event.message}", Qgis.MessageLevel.Warning)

    def cancel(self) -> None:
        """Ask the job to stop at its next check (between steps)."""
        self._cancel.set()
        super().cancel()

    def finished(self, result: bool) -> None:  # noqa: FBT001 - QgsTask API
        """Main thread, after run(): log any error and tell listeners."""
        if self.error:
            log(f"{self.description()}: {self.error}", Qgis.MessageLevel.Critical)
        if not result and self._cancel.is_set() and not self.error:  # cancelled before it started to run
            self.cancelled = True
        self.ended.emit(bool(result) and not self.cancelled)
