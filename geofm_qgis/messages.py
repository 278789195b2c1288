"""Telling the user about a problem: message bar (dialog's or main window's) and the QGIS log."""

from __future__ import annotations

import html

from qgis.core import Qgis, QgsMessageLog

LOG_TAG = "geofm"


class InputProblem(Exception):
    """Something in a dialog the user must fix first; the text says what, in plain words."""


def log(text: str, level: Qgis.MessageLevel = Qgis.MessageLevel.Info) -> None:
    """Write ``text`` to the 'geofm' tab of the log messages panel."""
    QgsMessageLog.logMessage(text, LOG_TAG, level)


def push(bar, title: str, text: str, level: Qgis.MessageLevel = Qgis.MessageLevel.Warning, duration: int = 0) -> None:
    """Show ``text`` in a message bar (no timeout by default: errors stay until read) and log it.

    The text is shown as written: a message bar reads rich text, so ``<urlopen error …>`` would vanish as a tag.
    A success clears the bar's older messages first, so an earlier failure does not sit above it.
    """
    if level == Qgis.MessageLevel.Success:
        bar.clearWidgets()
    bar.pushMessage(html.escape(title), html.escape(text).replace("\n", "<br>"), level=level, duration=duration)
    log(f"{title}: {text}", level)
