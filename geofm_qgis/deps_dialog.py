"""The dialog shown when torch, torchvision or rasterio cannot be used: install them, or copy the command."""

from __future__ import annotations

import sys
from pathlib import Path

from qgis.core import QgsApplication
from qgis.PyQt.QtGui import QGuiApplication
from qgis.PyQt.QtWidgets import (
    QDialog,
    QDialogButtonBox,
    QHBoxLayout,
    QLabel,
    QLineEdit,
    QPlainTextEdit,
    QPushButton,
    QVBoxLayout,
    QWidget,
)

from . import deps
from .install_task import PipTask


class DependencyDialog(QDialog):
    """Says what is missing, offers to install it into the QGIS profile, and shows the command to copy."""

    def __init__(self, missing: list[deps.Missing], target: Path, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.setWindowTitle("geofm needs a few Python packages")
        self.setMinimumWidth(640)
        self.target = target
        self.task: PipTask | None = None
        self.command = deps.install_command(target, deps.packages_for(missing))
        light = deps.missing_for_prediction()
        self.light_command = deps.install_command(target, deps.packages_for(light)) if light else None
        if sys.platform == "darwin":
            gpu = "torch's macOS build, which runs on Apple MPS where the Mac has it"
        elif deps.has_nvidia_gpu():
            gpu = "an NVIDIA GPU was found, so the CUDA build of torch is used"
        else:
            gpu = "no NVIDIA GPU was found, so the CPU build of torch is used"

        items = "".join(f"<li><b>{m.module}</b>: {m.reason}</li>" for m in missing)
        intro = QLabel(
            f"<p>geofm trains and runs models with these packages, which QGIS's Python does not have yet:</p>"
            f"<ul>{items}</ul><p>The rest of QGIS works as before. <b>Install</b> puts them in a folder of your "
            f"QGIS profile ({gpu}); a download of about 1–3 GB.</p>")
        intro.setWordWrap(True)

        self.command_edit = QLineEdit(deps.shell_text(self.command))
        self.command_edit.setReadOnly(True)
        copy = QPushButton("Copy")
        copy.clicked.connect(lambda: QGuiApplication.clipboard().setText(self.command_edit.text()))
        row = QHBoxLayout()
        row.addWidget(self.command_edit)
        row.addWidget(copy)

        self.output = QPlainTextEdit()
        self.output.setReadOnly(True)
        self.output.setPlaceholderText("pip's output appears here while it installs.")
        self.status = QLabel("")
        self.status.setWordWrap(True)

        if self.light_command:
            light_text = ("<p>Only predicting with <b>.onnx</b> models a colleague exported from geofm? Then "
                          "onnxruntime (about 20 MB) is enough instead of torch: <b>Install for prediction "
                          "only</b>, or run:</p>")
        else:
            light_text = ("<p>geofm already predicts with <b>.onnx</b> models exported from geofm here "
                          "(onnxruntime is installed); training and .geofm packages need the packages above.</p>")
        light_label = QLabel(light_text)
        light_label.setWordWrap(True)
        self.light_edit = QLineEdit(deps.shell_text(self.light_command) if self.light_command else "")
        self.light_edit.setReadOnly(True)
        self.light_edit.setVisible(bool(self.light_command))

        buttons = QDialogButtonBox(QDialogButtonBox.StandardButton.Close)
        self.install_button = buttons.addButton("Install", QDialogButtonBox.ButtonRole.ActionRole)
        self.install_button.clicked.connect(lambda: self.install())
        self.light_button = buttons.addButton("Install for prediction only", QDialogButtonBox.ButtonRole.ActionRole)
        self.light_button.setVisible(bool(self.light_command))
        self.light_button.clicked.connect(lambda: self.install(self.light_command))
        buttons.rejected.connect(self.reject)

        layout = QVBoxLayout(self)
        layout.addWidget(intro)
        layout.addWidget(QLabel("Or install them yourself with this command (OSGeo4W shell on Windows):"))
        layout.addLayout(row)
        layout.addWidget(light_label)
        layout.addWidget(self.light_edit)
        layout.addWidget(self.output)
        layout.addWidget(self.status)
        layout.addWidget(buttons)

    def install(self, command: list[str] | None = None) -> PipTask:
        """Start pip (``command``, by default the full install) as a background task; its output streams into the
        dialog."""
        self.target.mkdir(parents=True, exist_ok=True)
        self.install_button.setEnabled(False)
        self.light_button.setEnabled(False)
        self.status.setText("Installing…")
        self.task = PipTask(command or self.command)
        self.task.line.connect(self.output.appendPlainText)
        self.task.ended.connect(self._ended)
        QgsApplication.taskManager().addTask(self.task)
        return self.task

    def _ended(self, ok: bool) -> None:  # noqa: FBT001
        self.install_button.setEnabled(not ok)
        self.light_button.setEnabled(not ok)
        if ok:
            deps.add_deps_dir(self.target)
            self.status.setText("Installed. Restart QGIS if geofm's tools do not open.")
        else:
            self.status.setText("The installation failed: see pip's output above. You can retry, or run the "
                                "command yourself.")
