"""Evaluation: the same inference as prediction, counted into a confusion matrix as rows finish (no GeoTIFF), with
the labels read as the package was trained (ignore values, background) unless the caller says otherwise."""

from __future__ import annotations

import json

import numpy as np
import pytest
import rasterio

from geofm.core.classes import ClassMap
from geofm.core.cli import main
from geofm.core.config import PredictConfig, TrainConfig
from geofm.core.errors import LabelError
from geofm.core.evaluate import evaluate, trained_label_settings
from geofm.core.events import CancelledEvent, FinishedEvent
from geofm.core.metrics import ConfusionMatrix
from geofm.core.predict import predict
from geofm.core.train import train

from rasters import separable_scene

CLASSES = ClassMap.from_list([{"value": 10, "name": "a"}, {"value": 20, "name": "b"}, {"value": 30, "name": "c"}])


class BandRunner:
    """A torch-free runner: the class whose band-0 level (100, 160, 220: see ``separable_scene``) is nearest."""

    classes, tile_size, in_channels, normalisation, stats, crs, path, device = (
        CLASSES, 32, 4, "global", None, None, "", "numpy")

    def __init__(self, resolution=None):
        self.resolution = resolution
        self.metadata = {"train_config": {"ignore_values": [0]}}

    def probabilities(self, raw_tiles: np.ndarray, valid: np.ndarray) -> np.ndarray:
        levels = np.array([100.0, 160.0, 220.0], np.float32)[None, :, None, None]
        score = -((raw_tiles[:, :1] - levels) ** 2) / 200.0
        e = np.exp(score - score.max(axis=1, keepdims=True))
        return (e / e.sum(axis=1, keepdims=True)).astype(np.float32)


def labelled_scene(tmp_path):
    """``separable_scene`` whose label value 0 marks rows 20..29 as 'not labelled'."""
    image, labels = separable_scene(tmp_path, size=64)
    with rasterio.open(labels, "r+") as dst:
        data = dst.read(1)
        data[20:30] = 0
        dst.write(data, 1)
    return image, labels


def scored(events) -> dict:
    assert isinstance(events[-1], FinishedEvent)
    return events[-1].summary


def test_evaluate_uses_the_trained_ignore_values_and_the_flags_override_them(tmp_path):
    image, labels = labelled_scene(tmp_path)
    model = tmp_path / "m.geofm"
    cfg = TrainConfig(images=[str(image)], labels=[str(labels)], ignore_values=[0], backbone="resnet18",
                      weights="none", decoder="simple", tile_size=32, split_block=32, batch_size=8, epochs=1, device="cpu",
                      num_workers=0, output=str(model))
    list(train(cfg))
    # before the fix: LabelError, label value 0 is not one of the classes
    metrics = scored(list(evaluate(model, image, labels, config=PredictConfig(device="cpu"))))
    assert metrics["pixels"] == (64 - 4 - 10) * 64  # the nodata rows and the rows labelled 0 are not scored
    with pytest.raises(LabelError, match="0"):
        list(evaluate(model, image, labels, config=PredictConfig(device="cpu"), ignore_values=[]))
    out = tmp_path / "metrics.json"
    assert main(["evaluate", "--model", str(model), "--image", str(image), "--labels", str(labels), "--device", "cpu",
                 "--ignore-values", "0", "10", "--out", str(out)]) == 0
    counted = json.loads(out.read_text())
    assert counted["pixels"] == metrics["pixels"] - metrics["per_class"][0]["pixels"]
    assert counted["per_class"][0]["pixels"] == 0


def test_trained_label_settings_read_any_stored_config():
    assert trained_label_settings({}) == ([], False)
    assert trained_label_settings({"train_config": {"ignore_values": [0, 255.0], "background": True}}) == ([0, 255],
                                                                                                           True)
    stored = {"schema_version": 2, **TrainConfig(ignore_values=[3], background=False).to_dict()}
    assert trained_label_settings({"train_config": stored}) == ([3.0], False)
    assert trained_label_settings({"train_config": {"ignore_values": "0", "background": "yes"}}) == ([], False)


def test_evaluate_counts_what_predict_writes_without_writing_a_raster(tmp_path, monkeypatch):
    image, labels = labelled_scene(tmp_path)
    runner = BandRunner()
    list(predict(runner, image, tmp_path / "pred.tif", PredictConfig(overlap=25)))
    with rasterio.open(tmp_path / "pred.tif") as pred, rasterio.open(labels) as lbl:
        values, truth = pred.read(1), lbl.read(1)
    valid = values != 255
    expected = ConfusionMatrix(3)
    expected.update(CLASSES.encode(values, valid), CLASSES.encode(truth, valid & (truth != 255), ignore=(0,)))

    def no_writing(*args, **kwargs):
        raise AssertionError("evaluate wrote a raster")

    monkeypatch.setattr(rasterio.io.DatasetWriter, "write", no_writing)
    metrics = scored(list(evaluate(runner, image, labels, config=PredictConfig(overlap=25))))
    assert metrics["confusion_matrix"] == expected.matrix.tolist()
    assert metrics["overall_accuracy"] == 1.0


def test_evaluate_at_the_training_resolution_reads_labels_on_that_grid(tmp_path):
    image, labels = labelled_scene(tmp_path)  # 10 m pixels; the runner was trained at 20 m
    metrics = scored(list(evaluate(BandRunner(resolution=(20.0, 20.0)), image, labels,
                                   config=PredictConfig(resample_to_training=True))))
    assert 0 < metrics["pixels"] <= 32 * 32
    assert metrics["overall_accuracy"] > 0.9  # stripes line up: labels warped onto the prediction's grid


def test_evaluate_cancels_cleanly(tmp_path):
    image, labels = labelled_scene(tmp_path)

    class Now:
        def is_set(self) -> bool:
            return True

    out = tmp_path / "metrics.json"
    events = list(evaluate(BandRunner(), image, labels, output_json=out, cancel=Now()))
    assert isinstance(events[-1], CancelledEvent) and not out.exists()
