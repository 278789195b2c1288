"""Telling the user about a problem: message bar (dialog's or main window's) and the QGIS log."""

from __future__ import annotations

import html
import weakref

from qgis.core import Qgis, QgsMessageLog
from qgis.PyQt.QtWidgets import QDialog, QTextBrowser, QWidget

LOG_TAG = "geofm"

#: How long a failure stays on the main window's bar (seconds): long enough to be read, not for ever.
MAIN_WINDOW_FAILURE_SECONDS = 300
#: Most lines a message shows before it scrolls (a bar item shows about 1.5 lines by itself).
MAX_LINES = 12

#: The items geofm pushed, per bar, so that a success removes geofm's earlier messages and no one else's.
_PUSHED: weakref.WeakKeyDictionary = weakref.WeakKeyDictionary()


class InputProblem(Exception):
    """Something in a dialog the user must fix first; the text says what, in plain words."""


def log(text: str, level: Qgis.MessageLevel = Qgis.MessageLevel.Info) -> None:
    """Write ``text`` to the 'geofm' tab of the log messages panel."""
    QgsMessageLog.logMessage(text, LOG_TAG, level)


def push(bar, title: str, text: str, level: Qgis.MessageLevel = Qgis.MessageLevel.Warning,
         duration: int | None = None) -> None:
    """Show ``text`` in a message bar, whole (the item grows to fit it), and log it.

    The text is shown as written: a message bar reads rich text, so ``<urlopen error …>`` would vanish as a tag.
    A success first removes geofm's earlier messages from that bar, so an old failure does not sit above it.
    ``duration`` (seconds, 0 = until closed) defaults to: successes and notes 0 unless given, failures and warnings
    until closed in a dialog, :data:`MAIN_WINDOW_FAILURE_SECONDS` on the main window.
    """
    if duration is None:
        duration = 0 if isinstance(bar.window(), QDialog) or level in (
            Qgis.MessageLevel.Info, Qgis.MessageLevel.Success) else MAIN_WINDOW_FAILURE_SECONDS
    ours = _PUSHED.setdefault(bar, [])
    if level == Qgis.MessageLevel.Success:
        for item in [i for i in ours if i in bar.items()]:
            bar.popWidget(item)
        ours.clear()
    bar.pushMessage(html.escape(title, quote=False), html.escape(text, quote=False).replace("\n", "<br>"),
                    level=level, duration=duration)
    item = bar.currentItem()
    if item is not None:
        ours.append(item)
        show_whole(item)
    log(f"{title}: {text}", level)


def show_whole(item) -> None:
    """Let a bar item's text take the lines it needs (up to :data:`MAX_LINES`, then it scrolls)."""
    browser = item.findChild(QTextBrowser) if isinstance(item, QWidget) else None
    if browser is None:  # a bar without QGIS's item widgets (a stand-in bar in a script)
        return
    document = browser.document()
    document.setTextWidth(max(browser.viewport().width(), item.width() - 120, 300))
    margins = browser.contentsMargins()
    height = int(document.size().height()) + margins.top() + margins.bottom() + 4
    height = min(height, MAX_LINES * browser.fontMetrics().lineSpacing())
    browser.setMinimumHeight(height)
    browser.setMaximumHeight(height)
