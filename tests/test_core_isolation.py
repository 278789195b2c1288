"""The engine must load in a process that has no QGIS or Qt (CLI, torchrun, servers)."""

import pkgutil
import subprocess
import sys
from pathlib import Path

import geofm.core


def test_core_imports_no_qgis_or_qt():
    names = sorted(m.name for m in pkgutil.iter_modules([str(Path(geofm.core.__file__).parent)]))
    assert names, "no core modules found"
    code = (
        "import importlib, sys\n"
        f"for n in {names!r}:\n"
        "    importlib.import_module('geofm.core.' + n)\n"
        "bad = sorted(m for m in sys.modules if m.split('.')[0] in ('qgis', 'PyQt5', 'PyQt6', 'PySide2', 'PySide6'))\n"
        "print(','.join(bad))\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "", f"core loaded QGIS/Qt modules: {out.stdout}"
