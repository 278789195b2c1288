#!/usr/bin/env python3
"""The analyst's day in real QGIS, under Xvfb: install geofm from its zip into a fresh profile and click through
train, cancel, resume, predict, Processing and the bad inputs, saving numbered screenshots and a JSON report.

    .venv/bin/python scripts/qgis_walkthrough.py        (or: make walkthrough)

The same file is both the launcher (outside QGIS) and the driver QGIS runs with ``--code`` (when the environment
variable GEOFM_WALK names the run's settings). The driver steps through the scenario from a QTimer, so QGIS's
event loop keeps running; each step is written to the report before it starts, so a crash names its step.
Exit status: 0 when QGIS did not crash and every step passed (a "not available" step is not a failure).
"""

from __future__ import annotations

import argparse
import html
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
import traceback
import zipfile
from pathlib import Path

REPO = Path(globals().get("__file__", ".")).resolve().parent.parent
SCENE = REPO / "data" / "nc_landsat7"
#: landclass96 classes of the NC scene (see data/nc_landsat7/ATTRIBUTION.md), styled with land-cover colours.
CLASSES = [(1, "developed", "#d7301f"), (2, "agriculture", "#f6e8a0"), (3, "herbaceous", "#b8e186"),
           (4, "shrubland", "#7fbc41"), (5, "forest", "#1b7837"), (6, "water", "#2c7fb8"), (7, "sediment", "#bf9b6f")]
MAX_PNG_BYTES = 300_000
SCREEN = "1600x1000x24"


# ================================================================================================================
# Launcher (outside QGIS)
# ================================================================================================================
def venv_site(venv: Path) -> str:
    """The venv's site-packages (torch and the engine's other dependencies come from there)."""
    found = sorted(venv.glob("lib/python3*/site-packages"))
    if not found:
        raise SystemExit(f"{venv}: no lib/python3*/site-packages; run `make setup` first")
    return str(found[0])


def fresh_profile(base: Path, plugin_zip: Path) -> Path:
    """A new QGIS profile 'walk' under ``base`` with geofm unzipped into it and enabled, first-run noise off."""
    profile = base / "profiles" / "walk"
    plugins = profile / "python" / "plugins"
    plugins.mkdir(parents=True)
    with zipfile.ZipFile(plugin_zip) as zf:
        zf.extractall(plugins)
    (profile / "QGIS").mkdir()
    (profile / "QGIS" / "QGIS3.ini").write_text(
        "[PythonPlugins]\ngeofm=true\nprocessing=true\n\n"
        "[qgis]\ncheckVersion=false\nshowTips=false\nshowTips322=false\n"
        "allowVersionCheck=false\n\n[app]\nprojections\\promptWhenMultipleTransformsExist=false\n\n[core]\nNewsFeed\\httpsfeedqgisorg\\disabled=true\n")
    return profile


def scene_copy(work: Path) -> dict[str, str]:
    """The scene's files copied to ``work`` (a bad-input step may overwrite them), plus the polygons as a
    GeoPackage (whose ``fid`` column is the id-field trap)."""
    data = work / "data"
    data.mkdir()
    for name in ("landsat_multiband.tif", "strata.tif"):
        shutil.copy2(SCENE / name, data / name)
    gpkg = data / "polygons.gpkg"
    subprocess.run(["ogr2ogr", "-f", "GPKG", str(gpkg), str(SCENE / "landsat96_polygons.shp")], check=True)
    fake = data / "not_a_model.geofm"
    fake.write_text("This is a text file renamed to .geofm, not a model package.\n")
    return {"image": str(data / "landsat_multiband.tif"), "labels": str(data / "strata.tif"),
            "polygons": str(gpkg), "fake_model": str(fake)}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--shots", type=Path, default=REPO / "docs" / "screenshots" / "walkthrough",
                        help="where the numbered screenshots go (emptied first)")
    parser.add_argument("--venv", type=Path, default=None, help="the venv with torch (default: the repo's .venv, "
                        "else the one running this script)")
    parser.add_argument("--timeout", type=int, default=1800, help="seconds before QGIS is killed")
    parser.add_argument("--keep", action="store_true", help="keep the temporary profile and outputs")
    args = parser.parse_args()
    venv = args.venv or (REPO / ".venv" if (REPO / ".venv").is_dir() else Path(sys.prefix))
    sys.path.insert(0, str(REPO / "scripts"))
    from package_plugin import build

    work = Path(tempfile.mkdtemp(prefix="geofm-walk-"))
    plugin_zip = build(REPO / "dist" / "geofm.zip")
    fresh_profile(work, plugin_zip)
    if args.shots.exists():
        shutil.rmtree(args.shots)
    args.shots.mkdir(parents=True)
    report = work / "report.json"
    settings = {"work": str(work), "shots": str(args.shots), "report": str(report), **scene_copy(work)}
    (work / "walk.json").write_text(json.dumps(settings, indent=1))

    env = {k: v for k, v in os.environ.items() if k not in ("QT_QPA_PLATFORM", "PYTHONPATH", "PYTHONHOME")}
    env.update(PYTHONPATH=venv_site(venv), GEOFM_WALK=str(work / "walk.json"), PYTHONUNBUFFERED="1")
    command = ["xvfb-run", "-a", "-s", f"-screen 0 {SCREEN}", "nice", "-n", "15", "qgis",
               "--profiles-path", str(work), "--profile", "walk", "--nologo", "--noversioncheck",
               "--code", str(Path(__file__).resolve())]
    print(f"plugin zip: {plugin_zip}\nprofile and outputs: {work}\nrunning QGIS under Xvfb…", flush=True)
    log = work / "qgis.log"
    start = time.monotonic()
    with open(log, "w") as out:
        try:
            rc = subprocess.run(command, env=env, stdout=out, stderr=subprocess.STDOUT, timeout=args.timeout,
                                start_new_session=True).returncode
        except subprocess.TimeoutExpired:
            rc = "timeout"
    took = time.monotonic() - start
    steps = json.loads(report.read_text()) if report.is_file() else {"steps": [], "finished": False}
    failed = summarise(steps, rc, took, log)
    if not args.keep and not failed:
        shutil.rmtree(work, ignore_errors=True)
    return 1 if failed else 0


def summarise(report: dict, rc, took: float, log: Path) -> bool:
    """Print one line per step and the verdict; True when QGIS crashed or a step failed."""
    print(f"\nQGIS exit status {rc} after {took:.0f} s")
    for step in report["steps"]:
        print(f"  {step['status']:>13}  {step['name']}: {step.get('message', '')}".rstrip(": "))
        for note in step.get("notes", []):
            print(f"                 · {note}")
        for shot in step.get("screenshots", []):
            print(f"                 [{Path(shot).name}]")
    bad = [s["name"] for s in report["steps"] if s["status"] not in ("ok", "not available")]
    crashed = not report.get("finished") or rc != (1 if bad else 0)  # the driver exits 1 itself when a step failed
    if crashed:
        print(f"QGIS crashed or did not finish (see {log}); its last lines:")
        print("".join(log.read_text(errors="replace").splitlines(True)[-25:]))
    print(f"{'FAILED' if bad or crashed else 'OK'}: {len(report['steps']) - len(bad)} of {len(report['steps'])} "
          f"steps passed{'; failed: ' + ', '.join(bad) if bad else ''}")
    return bool(bad) or crashed


# ================================================================================================================
# Driver (inside QGIS, run by --code)
# ================================================================================================================
class Finding(Exception):
    """The plugin did something a user should not meet (the message says what); not a bug in this driver."""


class Walk:
    """Runs the scenario generator from a QTimer: each ``yield`` hands back a wait (condition, deadline, what) and returns to the event loop."""

    def __init__(self, settings: dict) -> None:
        from qgis.PyQt.QtCore import QTimer
        from qgis.utils import iface

        self.iface = iface
        self.s = settings
        self.shots = Path(settings["shots"])
        self.report = {"steps": [], "finished": False}
        self.step: dict | None = None
        self.count = 0
        self.model = str(Path(settings["work"]) / "landcover.geofm")
        self.backbone = str(Path(settings["work"]) / "my_backbone.geofm")
        self.busy = False
        self.waiting = None
        self.gen = self.scenario()
        self.timer = QTimer()
        self.timer.setInterval(100)
        self.timer.timeout.connect(self.tick)
        self.watchdog = QTimer()
        self.watchdog.setInterval(500)
        self.watchdog.timeout.connect(self.close_unexpected_modal)

    def start(self) -> None:
        self.timer.start()
        self.watchdog.start()

    # -- the loop -------------------------------------------------------------------------------------------
    def tick(self) -> None:
        if self.busy:  # a step opened a nested event loop: let it run
            return
        throw = None
        if self.waiting is not None:
            condition, deadline, what = self.waiting
            try:
                ready = condition()
            except Exception as err:  # noqa: BLE001 - the condition looks at widgets that may be gone
                ready, throw = True, err
            if not ready:
                if time.monotonic() < deadline:
                    return
                throw = TimeoutError(f"waited too long for {what}")
        self.busy = True
        try:
            self.waiting = self.gen.throw(throw) if throw else next(self.gen)
        except StopIteration:
            self.finish()
        except Exception:  # noqa: BLE001 - a bug in the driver itself: record and stop
            self.note(traceback.format_exc())
            self.finish()
        finally:
            self.busy = False

    def finish(self) -> None:
        from qgis.core import QgsApplication, QgsProject

        self.timer.stop()
        self.watchdog.stop()
        self.report["finished"] = True
        self.save()
        QgsProject.instance().setDirty(False)
        failed = any(s["status"] not in ("ok", "not available") for s in self.report["steps"])
        QgsApplication.exit(1 if failed else 0)

    def close_unexpected_modal(self) -> None:
        """A modal window nobody asked for (a first-run dialog, an error box): screenshot it, note it, close it."""
        from qgis.PyQt.QtWidgets import QApplication, QMessageBox

        modal = QApplication.activeModalWidget()
        if modal is None:
            return
        text = modal.text() if isinstance(modal, QMessageBox) else ""
        self.note(f"unexpected modal window “{modal.windowTitle()}” {text}".strip())
        self.shot("unexpected_modal", modal)
        modal.reject() if hasattr(modal, "reject") else modal.close()

    # -- report and screenshots -----------------------------------------------------------------------------
    def save(self) -> None:
        Path(self.s["report"]).write_text(json.dumps(self.report, indent=1))

    def note(self, text: str) -> None:
        target = self.step if self.step is not None else self.report
        target.setdefault("notes", []).append(text)
        self.save()

    def shot(self, name: str, widget=None) -> str:
        """Save ``widget`` (default: the whole main window) as NN_name.png, within MAX_PNG_BYTES."""
        from qgis.PyQt.QtCore import Qt
        from qgis.PyQt.QtGui import QImage

        self.count += 1
        path = self.shots / f"{self.count:02d}_{name}.png"
        image = (widget or self.iface.mainWindow()).grab().toImage()
        if widget is None and image.height() > int(SCREEN.split("x")[1]):
            self.note(f"{path.name}: the main window is {image.width()} × {image.height()} px, taller than the "
                      f"{SCREEN.rsplit('x', 1)[0]} screen")
        image.save(str(path))
        if path.stat().st_size > MAX_PNG_BYTES:
            image = image.convertToFormat(QImage.Format.Format_Indexed8, Qt.ImageConversionFlag.AutoColor)
            image.save(str(path))
        while path.stat().st_size > MAX_PNG_BYTES:
            image = image.scaledToWidth(int(image.width() * 0.85), Qt.TransformationMode.SmoothTransformation)
            image.convertToFormat(QImage.Format.Format_Indexed8).save(str(path))
        if self.step is not None:
            self.step.setdefault("screenshots", []).append(str(path))
            self.save()
        return str(path)

    # -- waiting --------------------------------------------------------------------------------------------
    @staticmethod
    def until(condition, what: str, timeout: float = 60.0):
        return condition, time.monotonic() + timeout, what

    def pause(self, seconds: float):
        end = time.monotonic() + seconds
        return self.until(lambda: time.monotonic() >= end, "a pause", seconds + 5)

    def drawn(self):
        """Wait for the map canvas to start and finish drawing."""
        canvas = self.iface.mapCanvas()
        yield self.pause(1)
        yield self.until(lambda: not canvas.isDrawing(), "the map to draw", 120)
        yield self.pause(0.5)

    @staticmethod
    def idle() -> bool:
        from qgis.core import QgsApplication

        return QgsApplication.taskManager().countActiveTasks() == 0

    # -- finding the real widgets ---------------------------------------------------------------------------
    @staticmethod
    def dialog(title_part: str):
        from qgis.PyQt.QtWidgets import QApplication, QDialog

        found = [w for w in QApplication.topLevelWidgets()
                 if isinstance(w, QDialog) and w.isVisible() and title_part.lower() in w.windowTitle().lower()]
        return found[-1] if found else None

    @staticmethod
    def button(parent, *texts: str):
        """The visible button of ``parent`` whose text (without '&') starts with one of ``texts``."""
        from qgis.PyQt.QtWidgets import QAbstractButton

        for widget in parent.findChildren(QAbstractButton):
            label = widget.text().replace("&", "").strip().lower()
            if widget.isVisible() and any(label.startswith(t.lower()) for t in texts):
                return widget
        return None

    def action(self, name: str):
        from qgis.PyQt.QtWidgets import QToolBar

        toolbar = self.iface.mainWindow().findChild(QToolBar, "geofmToolbar")
        if toolbar is None:
            raise RuntimeError("no geofm toolbar in the main window")
        for act in toolbar.actions():
            if act.objectName().rstrip("…") == name:  # "geofmPredict…": the name keeps the ellipsis
                return act
        raise RuntimeError(f"no toolbar action {name} (has: {[a.objectName() for a in toolbar.actions()]})")

    def docks(self) -> list:
        from qgis.PyQt.QtWidgets import QDockWidget

        return [d for d in self.iface.mainWindow().findChildren(QDockWidget)
                if d.objectName().startswith("geofm") and d.isVisible()]

    def runs(self) -> list:
        """The runs listed in geofm's one training dock (a view each), oldest first."""
        from qgis.PyQt.QtWidgets import QDockWidget

        dock = self.iface.mainWindow().findChild(QDockWidget, "geofmTraining")
        return list(getattr(dock, "views", [])) if dock is not None else []

    @staticmethod
    def bar_text(dialog) -> str:
        from qgis.gui import QgsMessageBar

        texts = []
        for bar in dialog.findChildren(QgsMessageBar):
            for item in bar.items():
                texts.append(f"{item.title()}: {item.text()}")
        return " | ".join(texts)

    def main_bar_text(self) -> str:
        """The newest message of the main window's message bar."""
        newest = self.iface.messageBar().currentItem()
        if newest is None:
            return "(nothing)"
        return html.unescape(f"{newest.title()}: {newest.text()}".replace("<br>", " "))

    def close_docks(self) -> None:
        """Close the training dock (as a user would); the next run shows it again, with its own view selected."""
        for dock in self.docks():
            dock.close()

    # -- the scenario ---------------------------------------------------------------------------------------
    def scenario(self):
        yield self.until(lambda: "geofm" in __import__("qgis.utils").utils.plugins, "the geofm plugin to load", 120)
        steps = [("load layers", self.load_layers), ("open Train", self.open_train),
                 ("train 2 epochs", self.train), ("second training, cancelled", self.cancelled),
                 ("resume the cancelled training", self.resume), ("predict", self.predict),
                 ("Processing: Train dialog with rasters loaded, and a run", self.processing_train),
                 ("Processing: Predict dialog and run", self.processing_predict),
                 ("bad input: output folder missing", self.bad_missing_folder),
                 ("bad input: labels = the image", self.bad_labels_image),
                 ("bad input: class field fid", self.bad_fid),
                 ("bad input: not a model package", self.bad_package),
                 ("bad input: output overwrites the input", self.bad_overwrite),
                 ("pretrain a backbone (dialog, time budget)", self.pretrain),
                 ("train from My pretrained backbone", self.train_from_backbone),
                 ("Processing: Pretrain dialog and a run", self.processing_pretrain)]
        for name, run in steps:
            self.step = {"name": name, "status": "started", "started_s": round(time.monotonic(), 1)}
            self.report["steps"].append(self.step)
            self.save()
            try:
                message = yield from run()
                if self.step["status"] == "started":
                    self.step["status"] = "ok"
                self.step["message"] = message or self.step.get("message", "")
            except Exception as err:  # noqa: BLE001 - the step failed; the walk goes on
                self.step["status"] = "failed"
                self.step["message"] = str(err) if isinstance(err, Finding) else f"{type(err).__name__}: {err}"
                if not isinstance(err, Finding):
                    self.note(traceback.format_exc(limit=4))
                for title in ("geofm", "Train segmentation", "Predict with segmentation"):
                    for _ in range(5):
                        dialog = self.dialog(title)
                        if dialog is not None:
                            dialog.reject()
                yield self.until(self.idle, "running tasks to end after a failure", 300)
            self.step["seconds"] = round(time.monotonic() - self.step.pop("started_s"), 1)
            self.save()
        self.step = None

    def load_layers(self):
        from qgis.core import QgsPalettedRasterRenderer, QgsProject, QgsRasterLayer, QgsVectorLayer
        from qgis.PyQt.QtGui import QColor

        mw = self.iface.mainWindow()
        mw.setGeometry(0, 0, 1600, 1000)
        project = QgsProject.instance()
        self.image = QgsRasterLayer(self.s["image"], "Landsat 7 (2000)")
        self.labels = QgsRasterLayer(self.s["labels"], "land cover (landclass96)")
        self.polygons = QgsVectorLayer(self.s["polygons"], "training polygons (GeoPackage)", "ogr")
        for layer in (self.image, self.labels, self.polygons):
            if not layer.isValid():
                raise RuntimeError(f"{layer.source()} did not load")
        self.labels.setRenderer(QgsPalettedRasterRenderer(self.labels.dataProvider(), 1, [
            QgsPalettedRasterRenderer.Class(v, QColor(c), n) for v, n, c in CLASSES]))
        project.addMapLayers([self.labels, self.image])
        self.iface.mapCanvas().setExtent(self.image.extent())
        self.iface.mapCanvas().refreshAllLayers()
        yield from self.drawn()
        self.shot("layers_loaded")
        return f"{len(project.mapLayers())} layers"

    def open_train(self):
        self.action("geofmTrain").trigger()
        yield self.until(lambda: self.dialog("Train") is not None, "the train dialog", 120)
        yield self.pause(1.5)
        dialog = self.dialog("Train")
        self.shot("train_dialog_first_state", dialog)
        image, labels = dialog.image_combo.currentLayer(), dialog.label_combo.currentLayer()
        self.note(f"first state: image “{image.name() if image else None}”, labels "
                  f"“{labels.name() if labels else None}”, class field “{dialog.field_combo.currentField()}”, "
                  f"{len(dialog.class_table.classes())} classes; grid check: {dialog.grid_label.text()[:200]}")
        dialog.reject()
        return ""

    def quick_config(self, dialog, output: str, epochs: int = 2) -> None:
        """Image, styled labels, no pretrained weights (offline), tile 64, ``epochs`` epochs, output."""
        dialog.image_combo.setLayer(self.image)
        dialog.label_combo.setLayer(self.labels)
        dialog.weights_combo.setCurrentIndex(dialog.weights_combo.findData("none"))
        widgets = dialog.widgets
        widgets["tile_size"].setValue(64)
        widgets["epochs"].setValue(epochs)
        widgets["batch_size"].setValue(8)
        if "backbone" in widgets:
            widgets["backbone"].setCurrentIndex(widgets["backbone"].findData("resnet18"))
        dialog.output_widget.setFilePath(output)

    def open_dialog(self, action: str, title: str):
        self.action(action).trigger()
        yield self.until(lambda: self.dialog(title) is not None, f"the {title} dialog", 120)
        yield self.pause(1)
        return self.dialog(title)

    def click_train(self, dialog, expect_start: bool = True):
        """Click the dialog's Train button; with ``expect_start``, return the new run's view in the training dock."""
        before = len(self.runs())
        button = self.button(dialog, "Train")
        if button is None:
            raise RuntimeError("the train dialog has no Train button")
        button.click()
        if not expect_start:
            yield self.pause(1.5)
            return None
        yield self.until(lambda: len(self.runs()) > before, "a new run in the training dock", 60)
        return self.runs()[-1]

    def train(self):
        dialog = yield from self.open_dialog("geofmTrain", "Train")
        self.quick_config(dialog, self.model)
        yield self.pause(1)
        self.shot("train_dialog_quick_config", dialog)
        panel = yield from self.click_train(dialog)
        if self.dialog("Train") is not None:
            raise Finding(f"the dialog stayed open: {self.bar_text(dialog)}")
        yield self.until(lambda: len(getattr(panel, "epochs", [])) >= 1 or self.idle(), "the first epoch", 600)
        yield self.pause(1)
        self.shot("training_running")
        yield self.until(self.idle, "training to finish", 600)
        yield self.pause(1)
        self.shot("training_finished")
        self.shot("training_panel_finished", panel)
        if not Path(self.model).is_file():
            raise RuntimeError(f"no model at {self.model}: {getattr(panel, 'status', None) and panel.status.text()}")
        return f"model written ({Path(self.model).stat().st_size // 1024} KiB)"

    def cancelled(self):
        dialog = yield from self.open_dialog("geofmTrain", "Train")
        self.quick_config(dialog, str(Path(self.s["work"]) / "cancelled.geofm"), epochs=4)
        panel = yield from self.click_train(dialog)
        self.cancelled_panel = panel
        # after the first epoch, so that its checkpoint is there to resume from
        yield self.until(lambda: len(getattr(panel, "epochs", [])) >= 1 or self.idle(), "the first epoch", 600)
        cancel = self.button(panel, "Cancel")
        if cancel is None:
            raise RuntimeError("no Cancel button in the training dock")
        cancel.click()
        yield self.until(self.idle, "the cancelled training to stop", 300)
        yield self.pause(1)
        self.shot("training_cancelled")
        status = panel.status.text() if hasattr(panel, "status") else ""
        return f"dock says: {status}"

    def resume(self):
        panel = getattr(self, "cancelled_panel", None)
        found = None
        for dock in ([panel] if panel else []) + self.docks():
            found = found or self.button(dock, "Resume", "Continue")
        if found is None:
            self.step["status"] = "not available"
            return "no Resume/Continue button in the training dock"
        before = len(self.runs())
        found.click()
        yield self.pause(2)
        dialog = self.dialog("Train")
        if dialog is not None:  # the button opened the dialog pre-filled: start from there
            self.shot("resume_dialog", dialog)
            yield from self.click_train(dialog)
        yield self.until(lambda: not self.idle() or len(self.runs()) > before, "the resumed training to start", 60)
        yield self.until(self.idle, "the resumed training to finish", 600)
        yield self.pause(1)
        self.shot("training_resumed")
        return f"clicked “{found.text()}”"

    def predict(self):
        from qgis.core import QgsProject

        dialog = yield from self.open_dialog("geofmPredict", "Predict")
        if not dialog.package_widget.filePath():
            self.note("Predict was not pre-filled with the model just trained")
            dialog.package_widget.setFilePath(self.model)
        dialog.raster_combo.setLayer(self.image)
        dialog.output_widget.setFilePath(str(Path(self.s["work"]) / "landcover_predicted.tif"))
        yield self.pause(1)
        self.shot("predict_dialog", dialog)
        before = set(QgsProject.instance().mapLayers())
        self.button(dialog, "Predict").click()
        yield self.pause(0.5)
        if self.dialog("Predict") is not None:
            raise Finding(f"the dialog stayed open: {self.bar_text(dialog)}")
        yield self.until(lambda: self.idle() and set(QgsProject.instance().mapLayers()) - before,
                         "the prediction layers", 600)
        new = [QgsProject.instance().mapLayer(i) for i in set(QgsProject.instance().mapLayers()) - before]
        root = QgsProject.instance().layerTreeRoot()
        for layer in QgsProject.instance().mapLayers().values():
            node = root.findLayer(layer.id())
            node.setItemVisibilityChecked(layer in new and "confidence" not in layer.name().lower())
        for dock in self.docks():
            dock.hide()
        self.iface.layerTreeView().expandAll()
        self.iface.mapCanvas().refreshAllLayers()
        yield from self.drawn()
        self.shot("prediction_styled")
        for dock in self.docks():
            dock.show()
        return f"new layers: {', '.join(layer.name() for layer in new)}"

    def processing_dialog(self, alg: str, name: str):
        import processing

        dialog = processing.createAlgorithmDialog(alg)
        if dialog is None:
            raise RuntimeError(f"Processing has no algorithm {alg}")
        dialog.show()
        yield self.pause(2)
        self.shot(name, dialog)
        return dialog

    def processing_train(self):
        import processing

        dialog = yield from self.processing_dialog("geofm:train", "processing_train_dialog")
        dialog.close()
        yield self.pause(0.5)
        output = str(Path(self.s["work"]) / "processing_trained.geofm")
        processing.run("geofm:train", {"IMAGE": self.image, "LABELS": self.labels, "WEIGHTS": "none",
                                       "TILE_SIZE": 64, "EPOCHS": 1, "OUTPUT": output})
        if not Path(output).is_file():
            raise RuntimeError(f"processing.run wrote no {output}")
        return f"opened and closed without a crash; a 1-epoch run wrote {Path(output).name}"

    def processing_predict(self):
        import processing
        from qgis.core import QgsProject

        dialog = yield from self.processing_dialog("geofm:predict", "processing_predict_dialog")
        dialog.close()
        output = str(Path(self.s["work"]) / "processing_predicted.tif")
        before = set(QgsProject.instance().mapLayers())
        processing.runAndLoadResults("geofm:predict", {"MODEL": self.model, "INPUT": self.image, "OUTPUT": output})
        yield self.pause(1)
        if not Path(output).is_file():
            raise RuntimeError(f"processing.run wrote no {output}")
        root = QgsProject.instance().layerTreeRoot()
        new = set(QgsProject.instance().mapLayers()) - before
        for layer_id in QgsProject.instance().mapLayers():
            root.findLayer(layer_id).setItemVisibilityChecked(layer_id in new)
        self.iface.mapCanvas().refreshAllLayers()
        yield from self.drawn()
        self.shot("processing_prediction_loaded")
        return f"{output} written and loaded"

    def bad_train_input(self, name: str, setup):
        """Open Train, quick config, apply ``setup``, click Train: the dialog must stay open with a message."""
        self.close_docks()
        dialog = yield from self.open_dialog("geofmTrain", "Train")
        self.quick_config(dialog, str(Path(self.s["work"]) / "bad.geofm"))
        setup(dialog)
        yield self.pause(1)
        before = len(self.runs())
        yield from self.click_train(dialog, expect_start=False)
        if self.dialog("Train") is None:
            for view in self.runs()[before:]:
                button = self.button(view, "Cancel")
                if button is not None:
                    button.click()
            yield from self.accepted(name, "Train", "a training")
        self.shot(name, dialog)
        text = self.bar_text(dialog) or "(no message bar text)"
        grid = dialog.grid_label.text()
        dialog.reject()
        return f"{text} — grid check: {grid[:300]}"

    def accepted(self, name: str, dialog: str, job: str):
        """A bad input the dialog let through: wait for the job to end, screenshot, and report what the user saw."""
        yield self.until(self.idle, f"the accepted {job.split()[-1]} to end", 300)
        yield self.pause(1)
        self.shot(name)
        raise Finding(f"{dialog} accepted it: the dialog closed and {job} started; then the user sees: "
                      f"{self.main_bar_text()}")

    def bad_missing_folder(self):
        missing = Path(self.s["work"]) / "no such folder" / "model.geofm"

        def setup(dialog):
            dialog.output_widget.setFilePath(str(missing))
        message = yield from self.bad_train_input("bad_output_folder_missing", setup)
        return message

    def bad_labels_image(self):
        message = yield from self.bad_train_input("bad_labels_are_the_image",
                                                  lambda d: d.label_combo.setLayer(self.image))
        return message

    def bad_fid(self):
        from qgis.core import QgsProject

        QgsProject.instance().addMapLayer(self.polygons)

        def setup(dialog):
            dialog.label_combo.setLayer(self.polygons)
            self.note(f"class field guessed for the GeoPackage: “{dialog.field_combo.currentField()}”")
            dialog.field_combo.setField("fid")
            self.note(f"class field chosen: “{dialog.field_combo.currentField()}”")
        message = yield from self.bad_train_input("bad_class_field_fid", setup)
        return message

    def bad_predict_input(self, name: str, package: str, output: str):
        self.close_docks()
        dialog = yield from self.open_dialog("geofmPredict", "Predict")
        dialog.package_widget.setFilePath(package)
        dialog.raster_combo.setLayer(self.image)
        dialog.output_widget.setFilePath(output)
        yield self.pause(1)
        self.button(dialog, "Predict").click()
        yield self.pause(1.5)
        if self.dialog("Predict") is None:
            yield from self.accepted(name, "Predict", "a prediction")
        self.shot(name, dialog)
        text = self.bar_text(dialog) or "(no message bar text)"
        dialog.reject()
        return text

    def bad_package(self):
        message = yield from self.bad_predict_input("bad_not_a_model_package", self.s["fake_model"],
                                                    str(Path(self.s["work"]) / "never.tif"))
        return message

    def bad_overwrite(self):
        message = yield from self.bad_predict_input("bad_output_overwrites_input", self.model, self.s["image"])
        return message

    # -- pretraining ---------------------------------------------------------------------------------------------
    def pretrain(self):
        """Pretrain on the image layer for half a minute from the dialog, with the estimate asked for first, inside
        the map view (zoomed to the image's north-west quarter, taken with the extent widget's own menu entry)."""
        from qgis.core import QgsCoordinateTransform, QgsProject, QgsRectangle
        from qgis.PyQt.QtCore import Qt
        from qgis.PyQt.QtWidgets import QToolButton

        self.close_docks()
        dialog = yield from self.open_dialog("geofmPretrain", "Pretrain a backbone")
        items = [dialog.layer_list.item(i) for i in range(dialog.layer_list.count())]
        ticked = [it.data(Qt.ItemDataRole.UserRole) for it in items if it.checkState() == Qt.CheckState.Checked]
        if ticked != [self.image.id()]:
            raise AssertionError(f"the dialog opened with {ticked} ticked, not the image layer alone")
        dialog.widgets["minutes"].setValue(0.5)
        dialog.output_widget.setFilePath(self.backbone)
        canvas = self.iface.mapCanvas()
        e = QgsCoordinateTransform(self.image.crs(), canvas.mapSettings().destinationCrs(),
                                   QgsProject.instance()).transformBoundingBox(self.image.extent())
        canvas.setExtent(QgsRectangle(e.xMinimum(), e.center().y(), e.center().x(), e.yMaximum()))  # north-west
        canvas.refresh()
        yield self.pause(1)
        menu = dialog.extent_widget.findChild(QToolButton).menu()
        [use_view] = [a for a in menu.actions() if "canvas extent" in a.text().lower().replace("&", "")]
        use_view.trigger()
        if not dialog.extent_widget.isValid():
            raise Finding("the extent widget's 'map canvas extent' entry left it on 'Whole images'")
        self.button(dialog, "Estimate").click()
        yield self.until(lambda: "per step" in dialog.estimate_label.text() or self.bar_text(dialog),
                         "the estimate", 120)
        estimate = dialog.estimate_label.text()
        self.shot("pretrain_dialog", dialog)
        before = len(self.runs())
        self.button(dialog, "Pretrain").click()
        yield self.pause(1)
        if self.dialog("Pretrain a backbone") is not None:
            raise Finding(f"the dialog stayed open: {self.bar_text(dialog)}")
        yield self.until(lambda: len(self.runs()) > before, "the pretraining in the training dock", 60)
        yield self.until(self.idle, "pretraining to finish", 600)
        yield self.pause(1)
        self.shot("pretraining_finished")
        if not Path(self.backbone).is_file():
            raise RuntimeError(f"no backbone at {self.backbone}: {self.main_bar_text()}")
        from geofm.geofm_qgis.package_info import read_metadata  # the plugin's own torch-free reader

        window = read_metadata(self.backbone)["trained_on"]["files"][0]["window"]
        if not window[2] * window[3] < 0.5 * self.image.width() * self.image.height():
            raise Finding(f"pretrained on window {window} of {self.image.width()} × {self.image.height()} px: not "
                          "the map view's quarter")
        canvas.setExtent(e)
        return (f"estimate: {estimate} — backbone written ({Path(self.backbone).stat().st_size // 1024} KiB), "
                f"inside the map view: window {window}")

    def train_from_backbone(self):
        self.close_docks()
        dialog = yield from self.open_dialog("geofmTrain", "Train a segmentation")
        output = str(Path(self.s["work"]) / "from_backbone.geofm")
        self.quick_config(dialog, output, epochs=1)
        dialog.weights_combo.setCurrentIndex(dialog.weights_combo.findData("backbone"))
        dialog.weights_file.setFilePath(self.backbone)
        yield self.pause(1)
        self.shot("train_from_my_backbone", dialog)
        yield from self.click_train(dialog)
        if self.dialog("Train a segmentation") is not None:
            raise Finding(f"the dialog stayed open: {self.bar_text(dialog)}")
        yield self.until(self.idle, "training from the backbone to finish", 600)
        yield self.pause(1)
        self.shot("trained_from_my_backbone")
        if not Path(output).is_file():
            raise RuntimeError(f"no model at {output}: {self.main_bar_text()}")
        return f"model written from the backbone ({Path(output).stat().st_size // 1024} KiB)"

    def processing_pretrain(self):
        import processing

        dialog = yield from self.processing_dialog("geofm:pretrain", "processing_pretrain_dialog")
        dialog.close()
        yield self.pause(0.5)
        output = str(Path(self.s["work"]) / "processing_backbone.geofm")
        processing.run("geofm:pretrain", {"IMAGES": [self.image], "EPOCHS": 1, "STEPS_PER_EPOCH": 2,
                                          "OUTPUT": output})
        if not Path(output).is_file():
            raise RuntimeError(f"processing.run wrote no {output}")
        return f"opened and closed without a crash; a 1-epoch run wrote {Path(output).name}"


def drive() -> None:
    """Inside QGIS: start the walk once the main window is up."""
    from qgis.PyQt.QtCore import QTimer

    settings = json.loads(Path(os.environ["GEOFM_WALK"]).read_text())
    walk = Walk(settings)
    globals()["_geofm_walk"] = walk  # keep it (and its timers) alive
    QTimer.singleShot(3000, walk.start)


if __name__ == "__main__":
    if os.environ.get("GEOFM_WALK") and "qgis.utils" in sys.modules:
        drive()
    else:
        sys.exit(main())
