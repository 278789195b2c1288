"""A model package's summary (classes, bands, tile size, metrics) and the Model info dialog."""

from __future__ import annotations

import html
import json
import zipfile
from pathlib import Path
from typing import Any

from qgis.gui import QgsFileWidget
from qgis.PyQt.QtWidgets import QDialog, QDialogButtonBox, QLabel, QTextBrowser, QVBoxLayout, QWidget

from .messages import InputProblem

PACKAGE_FILTER = "geofm model package (*.geofm)"


class PackageProblem(InputProblem):
    """The file is not a readable model package; the text says why and what to do."""


def read_metadata(path: str) -> dict[str, Any]:
    """The package's metadata.json, read without loading weights (and without torch)."""
    p = Path(path)
    if not p.is_file():
        raise PackageProblem(f"{path}: the model package does not exist. Check the path, or train a model first.")
    try:
        with zipfile.ZipFile(p) as zf:
            return json.loads(zf.read("metadata.json"))
    except (zipfile.BadZipFile, KeyError, ValueError, OSError) as err:
        raise PackageProblem(f"{path}: this is not a geofm model package ({err}). Pick a .geofm file written by "
                             "geofm.") from err


def summary_html(meta: dict[str, Any]) -> str:
    """Classes with their colours, bands, tile size, resolution and validation metrics, as HTML."""
    arch = meta.get("architecture", {})
    bands = meta.get("bands", {})
    names = bands.get("names")
    metrics = meta.get("metrics") or {}
    per_class = {c.get("name"): c for c in metrics.get("per_class", [])}
    rows = "".join(
        f"<tr><td><span style='background:{html.escape(c['colour'])}'>&nbsp;&nbsp;&nbsp;&nbsp;</span></td>"
        f"<td>{c['value']}</td><td>{html.escape(c['name'])}</td>"
        f"<td align='right'>{_pct(per_class.get(c['name'], {}).get('iou'))}</td></tr>"
        for c in meta.get("classes", [])
    )
    res = meta.get("resolution")
    lines = [
        f"<b>{arch.get('backbone', '?')}</b> with a {arch.get('decoder', '?')} decoder",
        f"Bands: {bands.get('count', '?')}" + (f" ({html.escape(', '.join(names))})" if names else ""),
        f"Tile size: {meta.get('tile_size', '?')} px" + (f" · trained at {res[0]:g} × {res[1]:g} per pixel"
                                                         if res else ""),
        f"Validation: mean IoU {_pct(metrics.get('mean_iou'))}, overall accuracy "
        f"{_pct(metrics.get('overall_accuracy'))}",
    ]
    table = (f"<table cellspacing='0' cellpadding='2'><tr><th></th><th>Value</th><th>Class</th><th>IoU</th></tr>"
             f"{rows}</table>")
    return "<br>".join(lines) + f"<p>{len(meta.get('classes', []))} classes:</p>" + table


def _pct(value: float | None) -> str:
    return "–" if value is None else f"{100 * value:.1f} %"


class ModelInfoDialog(QDialog):
    """Pick a package and read its summary."""

    def __init__(self, parent: QWidget | None = None, path: str = "") -> None:
        super().__init__(parent)
        self.setWindowTitle("geofm — Model info")
        self.file_widget = QgsFileWidget()
        self.file_widget.setFilter(PACKAGE_FILTER)
        self.browser = QTextBrowser()
        buttons = QDialogButtonBox(QDialogButtonBox.StandardButton.Close)
        buttons.rejected.connect(self.reject)
        layout = QVBoxLayout(self)
        layout.addWidget(QLabel("Model package"))
        layout.addWidget(self.file_widget)
        layout.addWidget(self.browser)
        layout.addWidget(buttons)
        self.file_widget.fileChanged.connect(self.show_package)
        self.resize(520, 460)
        if path:
            self.file_widget.setFilePath(path)
        self.show_package(path)

    def show_package(self, path: str) -> None:
        """Show the summary of the package at ``path`` (or why it cannot be read)."""
        if not path:
            self.browser.setHtml("<p>Choose a .geofm model package.</p>")
            return
        try:
            self.browser.setHtml(summary_html(read_metadata(path)))
        except PackageProblem as problem:
            self.browser.setHtml(f"<p style='color:#c62828'>{html.escape(str(problem))}</p>")
