"""A model's summary (classes, bands, tile size, metrics) and the Model info dialog, which also exports to ONNX.

Both .geofm packages and .onnx files exported by geofm are read without torch (and without onnxruntime).
"""

from __future__ import annotations

import html
import importlib.util
import json
import zipfile
from pathlib import Path
from typing import Any

from qgis.core import Qgis, QgsApplication
from qgis.gui import QgsFileWidget, QgsMessageBar
from qgis.PyQt.QtWidgets import (
    QDialog,
    QDialogButtonBox,
    QFileDialog,
    QLabel,
    QPushButton,
    QTextBrowser,
    QVBoxLayout,
    QWidget,
)

from . import deps
from .messages import InputProblem, push

PACKAGE_FILTER = ("geofm model (*.geofm *.onnx);;geofm model package (*.geofm);;"
                  "ONNX model exported by geofm (*.onnx)")


class PackageProblem(InputProblem):
    """The file is not a readable model package; the text says why and what to do."""


def read_metadata(path: str) -> dict[str, Any]:
    """The package's metadata.json, read without loading weights (and without torch); for a .onnx exported by
    geofm, the metadata it was exported with (an extra key ``onnx`` describes the export)."""
    p = Path(path)
    if p.suffix.lower() == ".onnx":
        from ..core.errors import GeoFMError
        from ..core.onnx_model import read_geofm_metadata

        try:
            return read_geofm_metadata(p)
        except GeoFMError as err:
            raise PackageProblem(str(err)) from err
    if not p.is_file():
        raise PackageProblem(f"{path}: the model package does not exist. Check the path, or train a model first.")
    try:
        with zipfile.ZipFile(p) as zf:
            return json.loads(zf.read("metadata.json"))
    except (zipfile.BadZipFile, KeyError, ValueError, OSError) as err:
        from ..core.package import CHOOSE_A_MODEL, NOT_A_MODEL

        raise PackageProblem(f"{p.name} is {NOT_A_MODEL}: {CHOOSE_A_MODEL}.") from err


def fit_height(browser: QTextBrowser, most: int = 420) -> None:
    """Make ``browser`` as tall as its text, up to ``most`` pixels (then it scrolls): no cut row, no empty box."""
    document = browser.document()
    document.setTextWidth(max(browser.viewport().width(), 440))
    margin = 2 * (browser.frameWidth() + int(document.documentMargin()))
    browser.setFixedHeight(min(int(document.size().height()) + margin, most))


def summary_html(meta: dict[str, Any]) -> str:
    """Classes with their colours, bands, tile size, resolution and validation metrics, as HTML (for a pretrained
    backbone: what it is, its bands, what it was trained on and its licence)."""
    if meta.get("kind") == "backbone":
        return backbone_html(meta)
    arch = meta.get("architecture", {})
    bands = meta.get("bands", {})
    names = bands.get("names")
    metrics = meta.get("metrics") or {}
    per_class = {c.get("name"): c for c in metrics.get("per_class", [])}
    rows = "".join(
        f"<tr><td><span style='background:{html.escape(c['colour'])}'>&nbsp;&nbsp;&nbsp;&nbsp;</span></td>"
        f"<td>{c['value']}</td><td>{html.escape(c['name'])}</td>"
        f"<td align='right'>{percent(per_class.get(c['name'], {}).get('iou'))}</td></tr>"
        for c in meta.get("classes", [])
    )
    res = meta.get("resolution")
    validation = ("Validation: none (no labels were held out; every label trained)" if metrics.get("mean_iou") is None
                  else f"Validation: mean IoU {percent(metrics['mean_iou'])}, overall accuracy "
                       f"{percent(metrics.get('overall_accuracy'))}")
    lines = [
        f"<b>{arch.get('backbone', '?')}</b> with a {arch.get('decoder', '?')} decoder",
        f"Bands: {bands.get('count', '?')}" + (f" ({html.escape(', '.join(names))})" if names else ""),
        f"Tile size: {meta.get('tile_size', '?')} px" + (f" · trained at {res[0]:g} × {res[1]:g} per pixel"
                                                         if res else ""),
        validation,
    ]
    if meta.get("onnx"):
        lines.append(f"ONNX model exported by geofm {html.escape(str(meta['onnx'].get('geofm_version')))}: "
                     "runs with onnxruntime, torch is not needed")
    table = (f"<table cellspacing='0' cellpadding='2'><tr><th></th><th>Value</th><th>Class</th><th>IoU</th></tr>"
             f"{rows}</table>")
    return "<br>".join(lines) + f"<p>{len(meta.get('classes', []))} classes:</p>" + table


def backbone_html(meta: dict[str, Any]) -> str:
    from ..core.pretrained_files import image_part

    bands, trained = meta.get("bands", {}), meta.get("trained_on") or {}
    names = bands.get("names")
    files = ", ".join(f"{html.escape(str(f.get('name')))} ({image_part(f)})" for f in trained.get("files", []))
    return "<br>".join([
        f"<b>Pretrained backbone</b> ({html.escape(str(meta.get('backbone', '?')))}), not a segmentation model: "
        "choose it as “My pretrained backbone…” in Train model to fine-tune from it",
        f"Bands: {bands.get('count', '?')}" + (f" ({html.escape(', '.join(names))})" if names else ""),
        f"{html.escape(str(trained.get('method', '?')))}, {trained.get('steps', '?')} steps on: {files or '?'}",
        f"Licence: {html.escape(meta.get('licence') or 'not given')}",
    ])


def percent(value: float | None) -> str:
    """A share (0–1) as '12.3 %'; '–' when there is none."""
    return "–" if value is None else f"{100 * value:.1f} %"


class ModelInfoDialog(QDialog):
    """Pick a package and read its summary; export a .geofm package to ONNX."""

    def __init__(self, parent: QWidget | None = None, path: str = "") -> None:
        super().__init__(parent)
        self.setWindowTitle("geofm — Model info")
        self.task = None
        self.bar = QgsMessageBar(self)
        self.file_widget = QgsFileWidget()
        self.file_widget.setFilter(PACKAGE_FILTER)
        self.browser = QTextBrowser()
        buttons = QDialogButtonBox(QDialogButtonBox.StandardButton.Close)
        self.export_button = QPushButton("Export to ONNX…")
        self.export_button.setToolTip("Write an .onnx file that predicts without torch (geofm, Deepness, "
                                      "onnxruntime): normalisation and softmax are inside it")
        buttons.addButton(self.export_button, QDialogButtonBox.ButtonRole.ActionRole)
        self.export_button.clicked.connect(self.choose_export)
        buttons.rejected.connect(self.reject)
        layout = QVBoxLayout(self)
        layout.addWidget(self.bar)
        layout.addWidget(QLabel("Model package"))
        layout.addWidget(self.file_widget)
        layout.addWidget(self.browser)
        layout.addWidget(buttons)
        self.file_widget.fileChanged.connect(self.show_package)
        self.resize(520, 0)
        if path:
            self.file_widget.setFilePath(path)
        self.show_package(path)

    def show_package(self, path: str) -> None:
        """Show the summary of the package at ``path`` (or why it cannot be read)."""
        self.export_button.setEnabled(False)
        if not path:
            self.browser.setHtml("<p>Choose a .geofm model package (or an .onnx exported by geofm).</p>")
            fit_height(self.browser)
            return
        try:
            self.browser.setHtml(summary_html(read_metadata(path)))
        except PackageProblem as problem:
            self.browser.setHtml(f"<p style='color:#c62828'>{html.escape(str(problem))}</p>")
            return
        finally:
            fit_height(self.browser)
        self.export_button.setEnabled(Path(path).suffix.lower() == ".geofm" and "Pretrained backbone" not in
                                      self.browser.toPlainText())

    def choose_export(self) -> None:
        """Ask where to write the .onnx, then export there."""
        package = Path(self.file_widget.filePath())
        out, _ = QFileDialog.getSaveFileName(self, "Export to ONNX", str(package.with_suffix(".onnx")),
                                             "ONNX model (*.onnx)")
        if out:
            self.export_to(out if out.lower().endswith(".onnx") else f"{out}.onnx")

    def export_to(self, out: str):
        """Export the shown package to ``out`` in a background task; the message bar tells how it went."""
        missing = [m.module for m in deps.missing_dependencies()]
        missing += [] if importlib.util.find_spec("onnx") else ["onnx"]
        if missing:
            push(self.bar, "Cannot export yet", f"exporting needs {', '.join(missing)}: install them with pip into "
                 "QGIS's Python (pip install onnx onnxruntime; torch as Train model… offers).")
            return None
        from .engine_task import EngineTask, preload

        preload("onnx_export")
        package = self.file_widget.filePath()

        def job(cancel):
            from ..core.onnx_export import export_job

            return export_job(package, out)

        task = EngineTask(f"geofm: exporting {Path(package).name} to ONNX", job)
        task.ended.connect(lambda ok: self._exported(task, ok))
        self.export_button.setEnabled(False)
        self.task = task
        QgsApplication.taskManager().addTask(task)
        return task

    def _exported(self, task, ok: bool) -> None:  # noqa: FBT001
        self.export_button.setEnabled(True)
        if ok:
            push(self.bar, "geofm", f"Exported to {task.result.path}: predict with it without torch, or load it "
                 "in Deepness.", Qgis.MessageLevel.Success, 10)
        else:
            push(self.bar, "Export failed", task.error or "the export stopped", Qgis.MessageLevel.Critical)
