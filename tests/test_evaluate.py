"""Evaluation reads the labels as the package was trained (ignore values, background) unless the caller says
otherwise."""

from __future__ import annotations

import json

import pytest
import rasterio

from geofm.core.cli import main
from geofm.core.config import PredictConfig, TrainConfig
from geofm.core.errors import LabelError
from geofm.core.evaluate import evaluate, trained_label_settings
from geofm.core.events import FinishedEvent
from geofm.core.train import train

from rasters import separable_scene


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
