"""Both Processing algorithms through processing.run, as the Modeler, batch mode and qgis_process call them."""

from __future__ import annotations

import pytest
from qgis.core import QgsPalettedRasterRenderer, QgsProcessingContext, QgsProcessingFeedback, QgsProject

import geofm
from geofm.geofm_qgis.package_info import read_metadata

from qgis_helpers import train_package
from rasters import separable_scene


@pytest.fixture(scope="module")
def package(tmp_path_factory):
    return train_package(tmp_path_factory.mktemp("package"))


def test_train_algorithm_writes_a_package(provider, tmp_path):
    import processing

    img, lbl = separable_scene(tmp_path, size=256)
    result = processing.run("geofm:train", {
        "IMAGE": str(img), "LABELS": str(lbl), "BACKBONE": "resnet18", "DECODER": "fpn", "WEIGHTS": "none",
        "TILE_SIZE": 64, "OVERLAP": 50, "BATCH_SIZE": 8, "EPOCHS": 1, "VAL_FRACTION": 0.25, "DEVICE": "cpu",
        "OUTPUT": str(tmp_path / "model.geofm")}, feedback=QgsProcessingFeedback())
    assert result["OUTPUT"] == str(tmp_path / "model.geofm")
    assert read_metadata(result["OUTPUT"])["tile_size"] == 64
    assert 0.0 <= result["MEAN_IOU"] <= 1.0


def test_train_algorithm_reports_bad_input_plainly(provider, tmp_path, scene_image, scene_polygons):
    import processing
    from qgis.core import QgsProcessingException

    with pytest.raises(QgsProcessingException, match="class field"):
        processing.run("geofm:train", {"IMAGE": str(scene_image), "LABEL_POLYGONS": str(scene_polygons),
                                       "OUTPUT": str(tmp_path / "m.geofm")})


@pytest.mark.parametrize(("algorithm", "config"), [("geofm:train", "TrainConfig"), ("geofm:predict", "PredictConfig"),
                                                   ("geofm:pretrain", "PretrainConfig")])
def test_every_processing_setting_is_a_parameter_and_choices_are_names(provider, algorithm, config):
    """Derived from the schema: a setting marked for Processing is a parameter (or declared by hand), with the
    schema's default, range and help; choices are stored as names, so saved models survive a new entry."""
    from qgis.core import QgsApplication, QgsProcessingParameterEnum, QgsProcessingParameterNumber

    from geofm.core import config as config_module
    from geofm.core.schema import default_of, settings_of
    from geofm.geofm_qgis import predict_algorithm, pretrain_algorithm, train_algorithm

    cls = getattr(config_module, config)
    alg = QgsApplication.processingRegistry().algorithmById(algorithm)
    by_hand = {"geofm:train": train_algorithm, "geofm:predict": predict_algorithm,
               "geofm:pretrain": pretrain_algorithm}[algorithm].BY_HAND
    for s in settings_of(cls):
        parameter = alg.parameterDefinition(s.name.upper())
        if not s.exposed("processing") or s.name in by_hand:
            assert s.name in by_hand or parameter is None, s.name
            continue
        assert parameter is not None, s.name
        assert parameter.help() == s.describe()
        if isinstance(parameter, QgsProcessingParameterEnum):
            assert parameter.usesStaticStrings() and parameter.options() == list(s.registry.names())
            assert parameter.defaultValue() == default_of(cls, s.name)
        if isinstance(parameter, QgsProcessingParameterNumber) and s.minimum is not None:
            assert parameter.minimum() == s.minimum and parameter.defaultValue() == default_of(cls, s.name)


def test_train_dialog_opens_without_crash_with_a_raster_loaded(provider, scene_image):
    """QGIS 3.22 crashed when the class field's parent parameter could hold a raster and a raster was loaded."""
    from qgis.core import QgsApplication, QgsProcessingParameterVectorLayer, QgsRasterLayer

    QgsProject.instance().addMapLayer(QgsRasterLayer(str(scene_image), "scene"))
    alg = QgsApplication.processingRegistry().algorithmById("geofm:train")
    parent = alg.parameterDefinition(alg.parameterDefinition("LABEL_FIELD").parentLayerParameterName())
    assert isinstance(parent, QgsProcessingParameterVectorLayer)


def test_train_dialog_offers_the_image_not_the_labels_readable_and_unclipped(provider, scene_image, scene_labels):
    """The labels (one band) loaded first must not be offered as the image; numbers are not '50.000000';
    parameter names fit the dialog."""
    from qgis.core import QgsApplication, QgsRasterLayer

    project = QgsProject.instance()
    project.addMapLayer(QgsRasterLayer(str(scene_labels), "land cover"))
    image = project.addMapLayer(QgsRasterLayer(str(scene_image), "Landsat"))
    alg = QgsApplication.processingRegistry().algorithmById("geofm:train").create()  # as the toolbox opens it
    assert alg.parameterDefinition("IMAGE").defaultValue() == image.source()
    assert alg.parameterDefinition("LABELS").defaultValue() is None
    decimals = {name: alg.parameterDefinition(name).metadata()["widget_wrapper"]["decimals"]
                for name in ("OVERLAP", "LR", "WEIGHT_DECAY")}
    assert decimals == {"OVERLAP": 0, "LR": 6, "WEIGHT_DECAY": 4}
    assert max(len(p.description()) for p in alg.parameterDefinitions()) <= 50
    project.removeAllMapLayers()


def test_predict_dialog_offers_the_image_not_the_labels(provider, scene_image, scene_labels):
    """With the labels loaded first, Predict's raster is the image (the one-band class raster is not what a model
    predicts on)."""
    from qgis.core import QgsApplication, QgsRasterLayer

    project = QgsProject.instance()
    project.addMapLayer(QgsRasterLayer(str(scene_labels), "land cover"))
    image = project.addMapLayer(QgsRasterLayer(str(scene_image), "Landsat"))
    alg = QgsApplication.processingRegistry().algorithmById("geofm:predict").create()
    assert alg.parameterDefinition("INPUT").defaultValue() == image.source()
    project.removeAllMapLayers()


def test_predict_algorithm_styles_its_output(provider, package, tmp_path):
    import processing

    model, image = package
    context = QgsProcessingContext()
    context.setProject(QgsProject.instance())
    output = str(tmp_path / "classes.tif")
    result = processing.runAndLoadResults("geofm:predict", {
        "MODEL": str(model), "INPUT": str(image), "DEVICE": "cpu", "CONFIDENCE": True, "OUTPUT": output},
        context=context, feedback=QgsProcessingFeedback())
    assert result["OUTPUT"] == output and result["CONFIDENCE_OUTPUT"].endswith("classes_confidence.tif")
    layers = [lyr for lyr in QgsProject.instance().mapLayers().values() if lyr.source() == output]
    assert layers and isinstance(layers[0].renderer(), QgsPalettedRasterRenderer)
    assert layers[0].name() == f"{image.stem} — {model.stem}", "named after raster and model, not 'Classes'"
    names = [c.label for c in layers[0].renderer().classes()]
    assert names == [c["name"] for c in read_metadata(str(model))["classes"]]


def test_predict_algorithm_band_mismatch(provider, package, tmp_path):
    import numpy as np
    import processing
    from qgis.core import QgsProcessingException

    from rasters import write_raster

    model, _ = package
    three = write_raster(tmp_path / "three.tif", np.zeros((3, 64, 64), dtype=np.float32))
    with pytest.raises(QgsProcessingException, match="4 bands"):
        processing.run("geofm:predict", {"MODEL": str(model), "INPUT": str(three), "OUTPUT": str(tmp_path / "o.tif")})


def test_qgis_process_runs_predict_from_a_profile(package, tmp_path):
    import json
    import os
    import shutil
    import subprocess
    import sys
    from pathlib import Path

    # Debian's qgis_process wrapper passes --noversioncheck, which the 3.22 binary rejects: call the binary itself.
    binary = shutil.which("qgis_process.bin") or shutil.which("qgis_process")
    if binary is None:
        pytest.skip("qgis_process is not installed")
    plugins = tmp_path / "profiles" / "default" / "python" / "plugins"
    plugins.mkdir(parents=True)
    (plugins / "geofm").symlink_to(Path(geofm.__file__).resolve().parent)
    (tmp_path / "profiles" / "default" / "QGIS").mkdir()
    (tmp_path / "profiles" / "default" / "QGIS" / "QGIS3.ini").write_text("[PythonPlugins]\ngeofm=true\n")
    site = [p for p in sys.path if p.endswith("site-packages")]
    env = {**os.environ, "QT_QPA_PLATFORM": "offscreen", "QGIS_CUSTOM_CONFIG_PATH": str(tmp_path),
           "PYTHONPATH": os.pathsep.join(site)}
    model, image = package
    output = tmp_path / "qp_classes.tif"
    result = subprocess.run([binary, "--json", "run", "geofm:predict", "--", f"MODEL={model}", f"INPUT={image}",
                             "DEVICE=cpu", f"OUTPUT={output}"], capture_output=True, text=True, timeout=300, env=env,
                            cwd=tmp_path)
    assert result.returncode == 0, result.stdout[-2000:] + result.stderr[-2000:]
    assert json.loads(result.stdout[result.stdout.index("{"):])["results"]["OUTPUT"] == str(output)
    assert output.is_file()


def test_predict_algorithm_passes_warnings_and_core_progress_to_the_feedback(provider, package, tmp_path):
    import numpy as np
    import processing

    from rasters import write_raster

    class Feedback(QgsProcessingFeedback):
        def __init__(self):
            super().__init__()
            self.warnings, self.fractions = [], []
            self.progressChanged.connect(self.fractions.append)

        def pushWarning(self, text):  # noqa: N802
            self.warnings.append(text)
            super().pushWarning(text)

    model, _ = package  # trained on 10 m pixels
    coarse = write_raster(tmp_path / "coarse.tif", np.random.default_rng(0).normal(100, 5, (4, 64, 64))
                          .astype(np.float32), res=20.0)
    feedback = Feedback()
    processing.run("geofm:predict", {"MODEL": str(model), "INPUT": str(coarse), "DEVICE": "cpu",
                                     "OUTPUT": str(tmp_path / "o.tif")}, feedback=feedback)
    assert len([w for w in feedback.warnings if "trained on 10" in w]) == 1, feedback.warnings
    assert feedback.fractions == sorted(feedback.fractions) and feedback.fractions[-1] == 100.0


class _Log(QgsProcessingFeedback):
    """A feedback that keeps every line an algorithm writes to its log."""

    def __init__(self):
        super().__init__()
        self.lines = []

    def reportError(self, text, fatalError=False):  # noqa: N802, N803
        self.lines.append(text)
        super().reportError(text, fatalError)

    def pushInfo(self, text):  # noqa: N802
        self.lines.append(text)
        super().pushInfo(text)

    def pushWarning(self, text):  # noqa: N802
        self.lines.append(text)
        super().pushWarning(text)


def _run_plainly(algorithm: str, parameters: dict) -> str:
    """Run ``algorithm`` expecting a plain-word QgsProcessingException; its message, checked for traceback text."""
    import processing
    from qgis.core import QgsApplication, QgsProcessingException

    logged = []
    QgsApplication.messageLog().messageReceived.connect(lambda text, *_: logged.append(text))
    feedback = _Log()
    with pytest.raises(QgsProcessingException) as caught:
        processing.run(algorithm, parameters, feedback=feedback)
    for text in [str(caught.value), *feedback.lines, *logged]:
        assert "Traceback" not in text and 'File "' not in text, text
    return str(caught.value)


def _outputs_of(algorithm: str, package, tmp_path, output: str) -> dict:
    model, image = package
    return {
        "geofm:train": {"IMAGE": str(image), "LABELS": str(image.parent / "labels.tif"), "WEIGHTS": "none",
                        "TILE_SIZE": 64, "EPOCHS": 1, "DEVICE": "cpu", "OUTPUT": output + ".geofm"},
        "geofm:predict": {"MODEL": str(model), "INPUT": str(image), "DEVICE": "cpu", "OUTPUT": output + ".tif"},
        "geofm:pretrain": {"IMAGES": [str(image)], "EPOCHS": 1, "STEPS_PER_EPOCH": 1, "CROP_SIZE": 32,
                           "BATCH_SIZE": 2, "DEVICE": "cpu", "OUTPUT": output + ".geofm"},
        "geofm:export": {"MODEL": str(model), "OUTPUT": output + ".onnx"},
    }[algorithm]


ALGORITHMS = ["geofm:train", "geofm:predict", "geofm:pretrain", "geofm:export"]


@pytest.mark.parametrize("algorithm", ALGORITHMS)
def test_missing_output_folder_is_a_plain_message(provider, package, tmp_path, algorithm):
    missing = tmp_path / "not made yet"
    message = _run_plainly(algorithm, _outputs_of(algorithm, package, tmp_path, str(missing / "out")))
    assert str(missing) in message and "does not exist" in message and "Fix:" in message


@pytest.mark.parametrize("algorithm", ALGORITHMS)
def test_output_folder_that_is_a_file_is_a_plain_message(provider, package, tmp_path, algorithm):
    blocker = tmp_path / "results"
    blocker.write_text("a file where the output folder should be")
    message = _run_plainly(algorithm, _outputs_of(algorithm, package, tmp_path, str(blocker / "out")))
    assert str(blocker) in message and "Fix:" in message


@pytest.mark.parametrize("algorithm", ["geofm:predict", "geofm:export"])
def test_a_file_that_is_no_model_is_a_plain_message(provider, package, tmp_path, algorithm):
    fake = tmp_path / "notes.geofm"
    fake.write_text("not a model")
    parameters = {**_outputs_of(algorithm, package, tmp_path, str(tmp_path / "out")), "MODEL": str(fake)}
    message = _run_plainly(algorithm, parameters)
    assert fake.name in message and "not a geofm model package" in message


def test_labels_without_the_class_field_is_a_plain_message(provider, tmp_path, scene_image, scene_polygons):
    message = _run_plainly("geofm:train", {"IMAGE": str(scene_image), "LABEL_POLYGONS": str(scene_polygons),
                                           "LABEL_FIELD": "no_such_field", "OUTPUT": str(tmp_path / "m.geofm")})
    assert "class field" in message
