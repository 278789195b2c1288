"""Running pip with QGIS's own Python as a QgsTask: plain progress, pip's raw lines for the details, a real cancel."""

from __future__ import annotations

import shutil
import subprocess
import sys
import threading
from pathlib import Path

from qgis.core import QgsTask
from qgis.PyQt.QtCore import pyqtSignal

from .deps import move_into
from .pip_output import failure_text, progress_text


class PipTask(QgsTask):
    """Runs pip ``commands`` one after the other into ``staging``; only when all succeed are the packages moved
    into ``target``, so a cancel or a failure leaves nothing half-installed there.

    Signals: ``line(str)`` each raw output line, ``progress(str)`` a plain sentence (which package is downloading
    or installing), ``ended(bool)`` the outcome. Afterwards ``failure`` holds the reason in words ('' on success or
    cancel) and ``cancelled`` whether the user stopped it.
    """

    line = pyqtSignal(str)
    progress = pyqtSignal(str)
    ended = pyqtSignal(bool)

    def __init__(self, commands: list[list[str]], staging: Path, target: Path) -> None:
        super().__init__("geofm: installing dependencies", QgsTask.Flag.CanCancel)
        self.commands = commands
        self.staging = staging
        self.target = target
        self.failure = ""
        self.cancelled = False
        self._proc: subprocess.Popen | None = None
        self._lock = threading.Lock()

    def cancel(self) -> None:
        """Main thread: stop pip now (kill its process), not after its next output line."""
        super().cancel()
        with self._lock:
            if self._proc is not None and self._proc.poll() is None:
                self._proc.kill()

    def run(self) -> bool:
        """Worker thread: run each pip command, forward its output, move the packages into place at the end."""
        shutil.rmtree(self.staging, ignore_errors=True)
        self.staging.mkdir(parents=True, exist_ok=True)
        try:
            for command in self.commands:
                if not self._run_one(command):
                    return False
            if self.isCanceled():
                return False
            move_into(self.staging, self.target)
            return True
        finally:
            self.cancelled = self.isCanceled()
            shutil.rmtree(self.staging, ignore_errors=True)

    def _run_one(self, command: list[str]) -> bool:
        flags = getattr(subprocess, "CREATE_NO_WINDOW", 0) if sys.platform.startswith("win") else 0
        lines: list[str] = []
        with self._lock:
            if self.isCanceled():
                return False
            try:
                self._proc = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                                              bufsize=1, creationflags=flags)
            except OSError as err:
                self.failure = f"QGIS's Python ({command[0]}) could not be started: {err}."
                return False
        assert self._proc.stdout is not None
        for raw in self._proc.stdout:
            text = raw.rstrip()
            lines.append(text)
            self.line.emit(text)
            said = progress_text(text)
            if said:
                self.progress.emit(said)
        returncode = self._proc.wait()
        if self.isCanceled():
            return False
        if returncode != 0:
            self.failure = failure_text(lines, returncode)
        return returncode == 0

    def finished(self, result: bool) -> None:  # noqa: FBT001 - QgsTask API
        """Main thread: report the outcome."""
        self.ended.emit(bool(result))
