"""The first opening of a dialog: it appears at once, and the engine (torch) loads afterwards with a status line."""

from __future__ import annotations

from pathlib import Path

import pytest

import geofm

from qgis_helpers import run_in_fresh_qgis

REPO = Path(geofm.__file__).resolve().parent

HEAVY = ("torch", "torchvision", "geofm.core.train", "geofm.core.model", "geofm.core.predict",
         "geofm.core.pretrain")


@pytest.mark.parametrize("module", ["train_dialog", "predict_dialog", "pretrain_dialog", "plugin"])
def test_dialog_modules_import_without_the_engine(module):
    out = run_in_fresh_qgis(f"""
        import geofm.geofm_qgis.{module}
        print("LOADED", sorted(m for m in {HEAVY!r} if m in sys.modules))
    """, timeout=120)
    assert out.returncode == 0, out.stderr
    assert "LOADED []" in out.stdout, out.stdout


@pytest.mark.parametrize(("dialog", "module"), [("train_dialog.TrainDialog", "train"),
                                                ("predict_dialog.PredictDialog", "predict"),
                                                ("pretrain_dialog.PretrainDialog", "pretrain")])
def test_dialog_paints_before_the_engine_loads_and_says_so(tmp_path, dialog, module):
    """The dialog is built and painted with torch not yet imported; a status line says the engine is loading; once
    loaded the line goes and the device is named."""
    module_name, cls = dialog.split(".")
    out = run_in_fresh_qgis(f"""
        import time
        from qgis.PyQt.QtCore import QCoreApplication, QEvent, QObject
        from geofm.geofm_qgis.{module_name} import {cls}

        class FirstPaint(QObject):
            torch_loaded = None
            def eventFilter(self, obj, event):
                if event.type() == QEvent.Type.Paint and self.torch_loaded is None:
                    self.torch_loaded = "torch" in sys.modules
                return False

        started = time.monotonic()
        dialog = {cls}(iface, window)
        built = time.monotonic() - started
        assert "torch" not in sys.modules, "the constructor imported torch"
        painted = FirstPaint()
        dialog.installEventFilter(painted)
        dialog.show()
        status = dialog.engine_status.text()
        deadline = time.monotonic() + 120
        while not dialog.engine_status.loaded and time.monotonic() < deadline:
            QCoreApplication.processEvents()
            time.sleep(0.01)
        print("BUILT", round(built, 2), "PAINTED_BEFORE_TORCH", painted.torch_loaded is False)
        print("STATUS", status)
        print("LOADED", "torch" in sys.modules, "geofm.core.{module}" in sys.modules,
              dialog.engine_status.isVisible())
        print("CHARTS", "matplotlib.backends.backend_qtagg" in sys.modules)
        print("DEVICE", dialog.device_label.text() if hasattr(dialog, "device_label") else "Runs on: CPU (none shown)")
    """, timeout=240)
    assert out.returncode == 0, out.stderr
    assert "PAINTED_BEFORE_TORCH True" in out.stdout, out.stdout
    assert "STATUS Loading the deep-learning engine…" in out.stdout, out.stdout
    assert "LOADED True True False" in out.stdout, out.stdout
    # the live panel's charts are loaded with the engine: the Train click does not wait for matplotlib
    assert f"CHARTS {module != 'predict'}" in out.stdout, out.stdout
    assert "DEVICE Runs on: CPU" in out.stdout or "DEVICE Runs on: NVIDIA" in out.stdout, out.stdout
