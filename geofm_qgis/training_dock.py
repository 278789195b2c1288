"""The one "geofm training" dock: the runs of this QGIS session in a list, the selected one's view below."""

from __future__ import annotations

from typing import Any

from qgis.gui import QgsDockWidget
from qgis.PyQt.QtWidgets import QComboBox, QFrame, QScrollArea, QStackedWidget, QVBoxLayout, QWidget

from .engine_task import EngineTask
from .run_view import Predict, Restart, RunView


class TrainingDock(QgsDockWidget):
    """Holds a :class:`RunView` per run, newest selected; finished, cancelled and failed runs stay listed.

    The view scrolls inside the dock, so a long summary never pushes QGIS's window past the screen.
    """

    def __init__(self, predict: Predict, restart: Restart, parent: QWidget | None = None) -> None:
        super().__init__("geofm training", parent)
        self.setObjectName("geofmTraining")
        self._predict, self._restart = predict, restart
        self.views: list[RunView] = []
        body = QWidget()
        layout = QVBoxLayout(body)
        self.runs = QComboBox()
        self.runs.setToolTip("The training and pretraining runs of this QGIS session")
        self.stack = QStackedWidget()
        scroll = QScrollArea()
        scroll.setWidgetResizable(True)
        scroll.setFrameShape(QFrame.Shape.NoFrame)
        scroll.setWidget(self.stack)
        layout.addWidget(self.runs)
        layout.addWidget(scroll, 1)
        self.setWidget(body)
        self.runs.currentIndexChanged.connect(self.stack.setCurrentIndex)

    def add_run(self, task: EngineTask, config: Any, kind: str) -> RunView:
        """A view following ``task`` (``kind``: 'training' or 'pretraining'), listed and selected; the dock is
        shown again if the user had closed it."""
        view = RunView(task, config, kind, self._predict, self._restart)
        self.views.append(view)
        self.stack.addWidget(view)
        self.runs.addItem(view.title)
        view.state_changed.connect(lambda v=view: self.runs.setItemText(self.views.index(v), v.title))
        self.runs.setCurrentIndex(len(self.views) - 1)
        self.setUserVisible(True)
        self.raise_()
        return view

    def current_view(self) -> RunView | None:
        """The run shown now."""
        return self.stack.currentWidget()

    def titles(self) -> list[str]:
        """The run list as the user reads it."""
        return [self.runs.itemText(i) for i in range(self.runs.count())]
