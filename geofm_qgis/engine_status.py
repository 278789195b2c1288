"""Loading the engine after a dialog has opened: a status line says what loads, the window repaints in between.

torch, torchvision and geofm.core.<module> take seconds to import (3–8 s on a laptop CPU, more on a busy one). A
dialog that imported them in its constructor stayed invisible that long behind a busy cursor; now it opens at
once and this line loads them, one part per timer tick, on the main thread (see ``engine_task.preload`` for why
the first import must not happen in a worker thread).
"""

from __future__ import annotations

import importlib
import importlib.util
import sys

from qgis.PyQt.QtCore import QTimer, pyqtSignal
from qgis.PyQt.QtWidgets import QLabel, QWidget

from .engine_task import block_triton

#: the heavy imports, loaded one per step before geofm's own module, with the words the status line shows
HEAVY = (("torch", "PyTorch"), ("torchvision", "torchvision's models"))
#: matplotlib's Qt canvas, which the live training panel draws on: loaded with the engine, the Train click does
#: not wait for it (0.5–2 s)
CHARTS = ("matplotlib.backends.backend_qtagg", "the live charts")
#: milliseconds between steps: enough for Qt to paint the dialog and the new text before the next import
PAUSE_MS = 40
#: when no paint comes after the dialog is shown (no screen, a hidden parent), start anyway after this long
UNPAINTED_MS = 500


class EngineStatus(QLabel):
    """Shown in a dialog, it loads ``geofm.core.<module>`` in steps, then the modules in ``also`` ((name, words)
    pairs); ``ready(str)`` follows: '' when all are loaded, else the reason the engine cannot load (also shown in
    the line). Hidden once loaded."""

    ready = pyqtSignal(str)

    def __init__(self, module: str, also: tuple[tuple[str, str], ...] = (), parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.module = f"{__package__.rsplit('.', 1)[0]}.core.{module}"
        self.also = also
        self.steps: list[tuple[str, str]] = []
        self.timer = QTimer(self)  # a child: a dialog deleted while loading takes its pending step with it
        self.timer.setSingleShot(True)
        self.timer.timeout.connect(self._step)
        self.setWordWrap(True)
        self.loaded = all(name in sys.modules for name in (self.module, *(n for n, _words in also)))
        self.started = self.loaded
        self.setText("" if self.loaded else "Loading the deep-learning engine…")
        self.setVisible(not self.loaded)

    def showEvent(self, event) -> None:  # noqa: N802 - Qt API
        """Shown: load after the first paint, or after UNPAINTED_MS when no paint comes (headless, hidden parent)."""
        super().showEvent(event)
        if not self.started and not self.timer.isActive():
            self._plan()
            self.timer.start(UNPAINTED_MS)

    def paintEvent(self, event) -> None:  # noqa: N802 - Qt API
        """Painted (with its dialog): start loading PAUSE_MS later, the window being on screen."""
        super().paintEvent(event)
        if not self.started:
            self.started = True
            self._plan()
            self.timer.start(PAUSE_MS)

    def _plan(self) -> None:
        if not self.steps:
            self.steps = [(name, f"Loading the deep-learning engine ({words})…") for name, words in HEAVY
                          if name not in sys.modules and importlib.util.find_spec(name) is not None]
            self.steps.append((self.module, "Loading the deep-learning engine (geofm)…"))
            self.steps += [(name, f"Loading {words}…") for name, words in self.also if name not in sys.modules]

    def _step(self) -> None:
        self.started = True
        name, words = self.steps.pop(0)
        self.setText(words)
        self.repaint()
        block_triton()
        try:
            importlib.import_module(name)
        except ImportError as err:
            self.setText(f"<span style='color:#c62828'>geofm's engine cannot load ({err}): reinstall geofm's "
                         "packages from the dialog shown when QGIS starts, or restart QGIS.</span>")
            self.ready.emit(str(err))
            return
        if self.steps:
            self.timer.start(PAUSE_MS)
            return
        self.loaded = True
        self.setVisible(False)
        self.ready.emit("")
