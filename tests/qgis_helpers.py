"""Helpers for the plugin tests: waiting on QgsTasks while the Qt event loop (and a watchdog timer) runs."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
import time
from pathlib import Path

from qgis.core import QgsApplication, QgsTask
from qgis.PyQt.QtCore import QCoreApplication, QTimer

DONE = (QgsTask.TaskStatus.Complete, QgsTask.TaskStatus.Terminated)


class Heartbeat:
    """A QTimer on the main thread; ``worst_late`` is how much later than due its longest-delayed tick came."""

    def __init__(self, interval_ms: int = 50) -> None:
        self.interval = interval_ms / 1000
        self.last = time.monotonic()
        self.worst_late = 0.0
        self.ticks = 0
        self.timer = QTimer()
        self.timer.setInterval(interval_ms)
        self.timer.timeout.connect(self._tick)
        self.timer.start()

    def _tick(self) -> None:
        now = time.monotonic()
        self.worst_late = max(self.worst_late, now - self.last - self.interval)
        self.last = now
        self.ticks += 1

    def stop(self) -> None:
        self.timer.stop()


def process_until(condition, timeout: float = 300.0) -> None:
    """Run the event loop until ``condition()`` holds; AssertionError after ``timeout`` seconds."""
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout} s")
        QCoreApplication.processEvents()
        time.sleep(0.01)


def run_task(task: QgsTask, timeout: float = 300.0, extra=None) -> None:
    """Add ``task`` to the task manager and wait until it has ended and its ``finished()`` has run."""
    ended = []
    if hasattr(task, "ended"):
        task.ended.connect(ended.append)
    else:
        task.taskCompleted.connect(lambda: ended.append(True))
        task.taskTerminated.connect(lambda: ended.append(False))
    QgsApplication.taskManager().addTask(task)
    process_until(lambda: bool(ended) and (extra is None or extra()), timeout)


def train_package(folder, size: int = 256, bands: int = 4):
    """A small real model package (1 epoch, resnet18, tile 64) trained by the engine on a separable scene."""
    from geofm.core.config import TrainConfig
    from geofm.core.train import train

    from rasters import separable_scene

    folder.mkdir(parents=True, exist_ok=True)
    img, lbl = separable_scene(folder, size=size, bands=bands)
    config = TrainConfig(images=[str(img)], labels=[str(lbl)], backbone="resnet18", weights="none", decoder="simple",
                         tile_size=64, overlap=50, batch_size=8, epochs=1, val_fraction=0.25, split_block=64,
                         output=str(folder / "model.geofm"))
    events = list(train(config))
    assert type(events[-1]).__name__ == "FinishedEvent", events[-1]
    return folder / "model.geofm", img


#: Starts QGIS in a fresh process with a stub ``iface`` (a real main window and toolbars), for code given after it.
_FRESH_QGIS = """
import sys
from unittest.mock import MagicMock
from qgis.core import QgsApplication
from qgis.PyQt.QtWidgets import QMainWindow, QToolBar
app = QgsApplication([], True)
app.initQgis()
window = QMainWindow()
iface = MagicMock()
iface.mainWindow.return_value = window
iface.addToolBar.side_effect = lambda name: QToolBar(name, window)
"""


def run_in_fresh_qgis(code: str, cwd: Path | None = None, timeout: float = 180,
                      **env: str) -> subprocess.CompletedProcess:
    """Run ``code`` (after QGIS is up and ``iface`` exists) in a new headless Python process; output captured."""
    script = _FRESH_QGIS + textwrap.dedent(code)
    return subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=timeout, cwd=cwd,
                          env={**os.environ, "QT_QPA_PLATFORM": "offscreen", **env})
