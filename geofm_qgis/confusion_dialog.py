"""The validation confusion matrix of a run's best epoch as a heat map: counts in the cells, colour by row share."""

from __future__ import annotations

from typing import Any

import numpy as np
from matplotlib.backends.backend_qtagg import FigureCanvasQTAgg
from matplotlib.figure import Figure
from qgis.PyQt.QtWidgets import QDialog, QLabel, QVBoxLayout, QWidget


def confusion_figure(matrix: list[list[int]], names: list[str]) -> Figure:
    """Rows are the true classes, columns the predicted ones; a cell's colour is its share of the row (how the
    pixels of a true class were predicted), its text the pixel count."""
    counts = np.asarray(matrix, dtype=np.int64)
    k = len(names)
    rows = counts.sum(axis=1, keepdims=True)
    shares = np.divide(counts, rows, out=np.zeros(counts.shape, dtype=float), where=rows > 0)
    side = min(12.0, max(4.5, 0.7 * k + 2.5))
    figure = Figure(figsize=(side, side * 0.9), dpi=90, constrained_layout=True)
    axes = figure.add_subplot(1, 1, 1)
    image = axes.imshow(shares, cmap="Blues", vmin=0.0, vmax=1.0)
    small = "small" if k <= 10 else "x-small"
    for i in range(k):
        for j in range(k):
            axes.text(j, i, f"{counts[i, j]:,}", ha="center", va="center", fontsize=small,
                      color="white" if shares[i, j] > 0.6 else "black")
    axes.set_xticks(range(k))
    axes.set_yticks(range(k))
    axes.set_xticklabels(names, rotation=45, ha="right", rotation_mode="anchor", fontsize=small)
    axes.set_yticklabels(names, fontsize=small)
    axes.set_xlabel("predicted class")
    axes.set_ylabel("true class (validation pixels)")
    figure.colorbar(image, ax=axes, shrink=0.8, label="share of the true class")
    return figure


class ConfusionDialog(QDialog):
    """A non-modal window with the heat map of ``matrix`` (as ``ConfusionMatrix.compute`` gives it)."""

    def __init__(self, matrix: list[list[int]], names: list[str], title: str, parent: QWidget | None = None,
                 ) -> None:
        super().__init__(parent)
        self.setWindowTitle(f"Confusion matrix — {title}")
        self.names = list(names)
        layout = QVBoxLayout(self)
        note = QLabel("Validation pixels of the best epoch. Each row is a true class: its colour shows how its "
                      "pixels were predicted (the diagonal is right), the numbers are pixel counts.")
        note.setWordWrap(True)
        self.figure = confusion_figure(matrix, self.names)
        self.canvas = FigureCanvasQTAgg(self.figure)
        width, height = (int(v * self.figure.dpi) for v in self.figure.get_size_inches())
        layout.addWidget(note)
        layout.addWidget(self.canvas, 1)
        self.resize(min(width, 1000) + 24, min(height, 860) + note.heightForWidth(width) + 40)

    def tick_labels(self) -> dict[str, Any]:
        """The class names on the axes, as drawn (what a reader sees)."""
        axes = self.figure.axes[0]
        return {"x": [t.get_text() for t in axes.get_xticklabels()], "y": [t.get_text() for t in axes.get_yticklabels()]}
