"""Dialog widgets derived from the settings schema: range, unit, default, choices and tooltip come from core."""

from __future__ import annotations

from typing import Any

from qgis.gui import QgsCollapsibleGroupBox, QgsDoubleSpinBox, QgsFileWidget, QgsSpinBox
from qgis.PyQt.QtCore import Qt
from qgis.PyQt.QtWidgets import QCheckBox, QComboBox, QFormLayout, QLabel, QLineEdit, QWidget


def widget_for(setting, value: Any) -> QWidget:
    """An input widget for ``setting`` (a core.schema.Setting) showing ``value``; its tooltip is the help text."""
    kind = setting.kind
    if kind == "int":
        widget: QWidget = QgsSpinBox()
        widget.setRange(int(setting.minimum or 0), int(setting.maximum if setting.maximum is not None else 10**9))
        widget.setSingleStep(32 if setting.unit == "px" and (setting.minimum or 0) >= 32 else 1)
        if setting.zero_means and setting.minimum == 0:
            widget.setSpecialValueText(setting.zero_means.capitalize())
    elif kind == "float":
        widget = QgsDoubleSpinBox()
        scale = 100 if setting.percent else 1
        low, high = (setting.minimum or 0) * scale, (setting.maximum if setting.maximum is not None else 1e9) * scale
        decimals = 6 if 0 < (setting.minimum or 0) < 1e-3 else (0 if setting.percent or setting.unit == "%" else 4)
        if setting.unit == "min":  # a time budget: "10.0 min", not "10.0000 min"; a minute per click
            decimals = 1
        widget.setDecimals(decimals)
        widget.setRange(low, high)
        widget.setSingleStep(5 if decimals == 0 else 1 if setting.unit == "min" else 10 ** -min(decimals, 3))
        if setting.zero_means and setting.minimum == 0:
            widget.setSpecialValueText(setting.zero_means.capitalize())
    elif kind == "bool":
        widget = QCheckBox()
    elif kind == "choice":
        widget = QComboBox()
        for entry in setting.registry:
            widget.addItem(entry.label, entry.name)
            widget.setItemData(widget.count() - 1, entry.help, Qt.ItemDataRole.ToolTipRole)
    elif kind == "path":
        widget = QgsFileWidget()
    elif kind == "str":
        widget = QLineEdit()
    else:
        raise ValueError(f"no dialog widget for setting kind {kind!r} ({setting.name})")
    suffix = "%" if setting.percent else setting.unit
    if suffix and hasattr(widget, "setSuffix"):
        widget.setSuffix(f" {suffix}")
    widget.setToolTip(setting.describe())
    set_value(setting, widget, value)
    if hasattr(widget, "setClearValue"):
        widget.setClearValue(widget.value())
    return widget


def set_value(setting, widget: QWidget, value: Any) -> None:
    if setting.kind == "bool":
        widget.setChecked(bool(value))
    elif setting.kind == "choice":
        widget.setCurrentIndex(max(0, widget.findData(value)))
    elif setting.kind == "path":
        widget.setFilePath(value or "")
    elif setting.kind == "str":
        widget.setText(value or "")
    else:
        widget.setValue(value * 100 if setting.percent else value)


def value_of(setting, widget: QWidget) -> Any:
    """The setting's value as the config stores it (a share for a per-cent widget, a registry name for a choice)."""
    if setting.kind == "bool":
        return widget.isChecked()
    if setting.kind == "choice":
        return widget.currentData()
    if setting.kind == "path":
        return widget.filePath().strip()
    if setting.kind == "str":
        text = widget.text().strip()
        return text or (None if setting.nullable else text)
    if setting.kind == "int":
        return int(widget.value())
    return widget.value() / 100 if setting.percent else float(widget.value())


def advanced_section(settings: list, values: dict[str, Any], widgets: dict[str, QWidget]) -> QgsCollapsibleGroupBox:
    """A collapsed "Advanced" group with a labelled widget per setting; the widgets are added to ``widgets``."""
    box = QgsCollapsibleGroupBox("Advanced")
    box.setCollapsed(True)
    form = QFormLayout(box)
    for s in settings:
        widgets[s.name] = widget_for(s, values[s.name])
        label = QLabel(s.label)
        label.setToolTip(s.describe())
        form.addRow(label, widgets[s.name])
    return box
