"""Running pip with QGIS's own Python as a QgsTask, streaming its output."""

from __future__ import annotations

import subprocess
import sys

from qgis.core import QgsTask
from qgis.PyQt.QtCore import pyqtSignal


class PipTask(QgsTask):
    """Runs one pip command; ``line(str)`` carries each output line, ``ended(bool)`` the outcome."""

    line = pyqtSignal(str)
    ended = pyqtSignal(bool)

    def __init__(self, command: list[str]) -> None:
        super().__init__("geofm: installing dependencies", QgsTask.Flag.CanCancel)
        self.command = command
        self.returncode: int | None = None

    def run(self) -> bool:
        """Worker thread: start pip and forward its output until it exits or the task is cancelled."""
        flags = getattr(subprocess, "CREATE_NO_WINDOW", 0) if sys.platform.startswith("win") else 0
        try:
            proc = subprocess.Popen(self.command, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                                    bufsize=1, creationflags=flags)
        except OSError as err:
            self.line.emit(f"Could not start {self.command[0]}: {err}")
            return False
        assert proc.stdout is not None
        for text in proc.stdout:
            self.line.emit(text.rstrip())
            if self.isCanceled():
                proc.terminate()
                break
        self.returncode = proc.wait()
        return self.returncode == 0 and not self.isCanceled()

    def finished(self, result: bool) -> None:  # noqa: FBT001 - QgsTask API
        """Main thread: report the outcome."""
        self.ended.emit(bool(result))
