"""The dialog shown when torch, torchvision or rasterio cannot be used: install them, or copy the command."""

from __future__ import annotations

import sys
from pathlib import Path

from qgis.core import QgsApplication
from qgis.gui import QgsCollapsibleGroupBox
from qgis.PyQt.QtGui import QGuiApplication
from qgis.PyQt.QtWidgets import (
    QCheckBox,
    QDialog,
    QDialogButtonBox,
    QHBoxLayout,
    QLabel,
    QLineEdit,
    QPlainTextEdit,
    QProgressBar,
    QPushButton,
    QVBoxLayout,
    QWidget,
)

from . import deps
from .install_task import PipTask


class DependencyDialog(QDialog):
    """Says what is missing and how big it is, installs it into the QGIS profile with QGIS's own Python (plain
    progress, pip's output under Details, Cancel), and shows the command to copy."""

    def __init__(self, missing: list[deps.Missing], target: Path, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.setWindowTitle("geofm needs a few Python packages")
        self.setMinimumWidth(640)
        self.target = target
        self.task: PipTask | None = None
        self.python = deps.qgis_python()
        self.packages = deps.packages_for(missing)
        light = deps.missing_for_prediction()
        self.light_packages = deps.packages_for(light) if light else []

        items = "".join(f"<li><b>{m.module}</b>: {m.reason}</li>" for m in missing)
        intro = QLabel(
            f"<p>geofm trains and runs models with these packages, which QGIS's Python does not have yet:</p>"
            f"<ul>{items}</ul><p>The rest of QGIS works as before. <b>Install</b> puts them in a folder of your "
            f"QGIS profile.</p>")
        intro.setWordWrap(True)
        gpu_found = deps.has_nvidia_gpu()
        self.cuda_box = QCheckBox("Install the build for NVIDIA GPUs (CUDA)" + (
            ": an NVIDIA GPU was found" if gpu_found else ""))
        self.cuda_box.setToolTip("Trains many times faster on an NVIDIA GPU, but is a far bigger download. "
                                 + ("An NVIDIA GPU was found on this computer." if gpu_found else
                                    "No NVIDIA GPU was found on this computer: the CPU build is the right one."))
        self.cuda_box.setVisible(sys.platform != "darwin")  # macOS: PyPI's build, with Apple MPS where the Mac has it
        self.cuda_box.toggled.connect(self._describe)
        self.size_label = QLabel()
        self.size_label.setWordWrap(True)
        self.python_label = QLabel()
        self.python_label.setWordWrap(True)

        self.command_edit = QLineEdit()
        self.command_edit.setReadOnly(True)
        copy = QPushButton("Copy")
        copy.clicked.connect(lambda: QGuiApplication.clipboard().setText(self.command_edit.text()))
        row = QHBoxLayout()
        row.addWidget(self.command_edit)
        row.addWidget(copy)

        if self.light_packages:
            light_text = ("<p>Only predicting with <b>.onnx</b> models a colleague exported from geofm? Then "
                          f"onnxruntime ({deps.download_size(self.light_packages)}) is enough instead of torch: "
                          "<b>Install for prediction only</b>, or run:</p>")
        else:
            light_text = ("<p>geofm already predicts with <b>.onnx</b> models exported from geofm here "
                          "(onnxruntime is installed); training and .geofm packages need the packages above.</p>")
        light_label = QLabel(light_text)
        light_label.setWordWrap(True)
        self.light_edit = QLineEdit(deps.shell_text(deps.install_commands(target, self.light_packages, self.python))
                                    if self.light_packages else "")
        self.light_edit.setReadOnly(True)
        self.light_edit.setVisible(bool(self.light_packages))

        self.status = QLabel("")
        self.status.setWordWrap(True)
        self.busy = QProgressBar()
        self.busy.setRange(0, 0)  # pip gives no overall fraction: a moving bar says it is alive
        self.busy.setVisible(False)
        self.output = QPlainTextEdit()
        self.output.setReadOnly(True)
        self.output.setPlaceholderText("pip's output appears here while it installs.")
        self.details = QgsCollapsibleGroupBox("Details (pip's output)")
        self.details.setCollapsed(True)
        QVBoxLayout(self.details).addWidget(self.output)

        buttons = QDialogButtonBox(QDialogButtonBox.StandardButton.Close)
        self.install_button = buttons.addButton("Install", QDialogButtonBox.ButtonRole.ActionRole)
        self.install_button.clicked.connect(lambda: self.install())
        self.light_button = buttons.addButton("Install for prediction only", QDialogButtonBox.ButtonRole.ActionRole)
        self.light_button.clicked.connect(lambda: self.install(self.light_packages))
        self.cancel_button = buttons.addButton("Cancel installation", QDialogButtonBox.ButtonRole.ActionRole)
        self.light_button.setVisible(bool(self.light_packages))  # after the last addButton, which shows them all
        self.cancel_button.setVisible(False)
        self.cancel_button.clicked.connect(self.cancel)
        buttons.rejected.connect(self.reject)

        layout = QVBoxLayout(self)
        for widget in (intro, self.cuda_box, self.size_label, self.python_label):
            layout.addWidget(widget)
        yourself = QLabel("Or install them yourself with this command (OSGeo4W shell on Windows):")
        yourself.setWordWrap(True)
        layout.addWidget(yourself)
        layout.addLayout(row)
        layout.addWidget(light_label)
        layout.addWidget(self.light_edit)
        layout.addWidget(self.status)
        layout.addWidget(self.busy)
        layout.addWidget(self.details)
        layout.addWidget(buttons)
        self._describe()
        for label in (intro, light_label):  # rich wrapped text: Qt underestimates its height in a layout
            label.setMinimumHeight(label.heightForWidth(self.minimumWidth() - 30))
        self.adjustSize()

    def _describe(self) -> None:
        """Size, interpreter and command for the current CUDA choice."""
        cuda = self.cuda_box.isChecked() and not self.cuda_box.isHidden()
        self.size_label.setText(f"Size: {deps.download_size(self.packages, cuda)} (torch's "
                                f"{'CUDA' if cuda else 'CPU' if sys.platform != 'darwin' else 'macOS'} build).")
        self.command_edit.setText(deps.shell_text(deps.install_commands(self.target, self.packages, self.python,
                                                                        cuda)))
        version = f"{sys.version_info.major}.{sys.version_info.minor}"
        if self.python:
            self.python_label.setText(f"QGIS's Python {version}: {self.python}")
        else:
            self.python_label.setText(
                f"<b>geofm could not find QGIS's own Python {version} program</b> (QGIS runs Python inside "
                f"itself, and no python program of version {version} was found beside it), so it cannot install "
                f"here. Run the command below in the OSGeo4W shell (Windows) or a terminal, replacing “python3” "
                f"with the Python {version} that QGIS uses.")
        self.install_button.setEnabled(self.python is not None and self.task is None)
        self.light_button.setEnabled(self.python is not None and self.task is None)

    def install(self, packages: list[str] | None = None) -> PipTask:
        """Start pip (``packages``, by default the full install) as a background task; plain progress in the
        status line, pip's output under Details."""
        assert self.python is not None, "Install is disabled when QGIS's Python was not found"
        cuda = self.cuda_box.isChecked() and not self.cuda_box.isHidden()
        staging = deps.staging_dir(self.target)
        commands = deps.install_commands(staging, packages or self.packages, self.python, cuda)
        self.task = PipTask(commands, staging, self.target)
        self.task.line.connect(self.output.appendPlainText)
        self.task.progress.connect(self.status.setText)
        self.task.ended.connect(self._ended)
        self._running(True)
        self.status.setText("Starting pip…")
        QgsApplication.taskManager().addTask(self.task)
        return self.task

    def cancel(self) -> None:
        """Stop pip; what it had fetched is thrown away."""
        if self.task is not None:
            self.status.setText("Cancelling…")
            self.task.cancel()

    def _running(self, running: bool) -> None:  # noqa: FBT001
        self.install_button.setEnabled(not running)
        self.light_button.setEnabled(not running)
        self.cuda_box.setEnabled(not running)
        self.cancel_button.setVisible(running)
        self.busy.setVisible(running)

    def _ended(self, ok: bool) -> None:  # noqa: FBT001
        task, self.task = self.task, None
        self._running(False)
        if ok:
            deps.add_deps_dir(self.target)
            self.install_button.setEnabled(False)
            self.light_button.setEnabled(False)
            self.status.setText("Installed. Restart QGIS if geofm's tools do not open.")
        elif task is not None and task.cancelled:
            self.status.setText("Cancelled: nothing was installed. Press Install to start again.")
        else:
            self.status.setText(task.failure if task is not None and task.failure else
                                "The installation failed: see Details. You can retry, or run the command yourself.")
