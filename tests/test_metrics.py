"""Confusion matrix: counts, ignored pixels, scores, merging across ranks, JSON."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch
import torch.distributed as dist

from geofm.core.errors import LabelError
from geofm.core.metrics import ConfusionMatrix

TARGET = np.array([[0, 0, 1, 1], [2, 2, -1, -1]])
PRED = np.array([[0, 1, 1, 1], [2, 0, 2, 0]])


def test_scores_by_hand() -> None:
    cm = ConfusionMatrix(3, names=["water", "forest", "urban"])
    cm.update(torch.as_tensor(PRED), torch.as_tensor(TARGET))
    assert cm.matrix.tolist() == [[1, 1, 0], [0, 2, 0], [1, 0, 1]]  # the two -1 pixels are ignored
    out = cm.compute()
    assert out["pixels"] == 6 and out["overall_accuracy"] == pytest.approx(4 / 6)
    water, forest, urban = out["per_class"]
    assert water == {"index": 0, "name": "water", "iou": 1 / 3, "f1": 0.5, "precision": 0.5, "recall": 0.5, "pixels": 2}
    assert forest["iou"] == pytest.approx(2 / 3) and forest["f1"] == pytest.approx(0.8)
    assert forest["precision"] == pytest.approx(2 / 3) and forest["recall"] == 1.0
    assert urban["iou"] == pytest.approx(0.5) and urban["precision"] == 1.0 and urban["recall"] == 0.5
    assert out["mean_iou"] == pytest.approx((1 / 3 + 2 / 3 + 1 / 2) / 3)


def test_numpy_and_logits_inputs_agree() -> None:
    a, b = ConfusionMatrix(3), ConfusionMatrix(3)
    a.update(PRED, TARGET)
    logits = torch.nn.functional.one_hot(torch.as_tensor(PRED)[None], 3).permute(0, 3, 1, 2).float()
    b.update(logits, torch.as_tensor(TARGET)[None])
    assert torch.equal(a.matrix, b.matrix)
    assert a.names == ["0", "1", "2"]


def test_absent_class_is_left_out_of_the_mean() -> None:
    cm = ConfusionMatrix(3)
    cm.update(np.array([0, 0, 1]), np.array([0, 0, 1]))
    out = cm.compute()
    assert out["per_class"][2]["iou"] is None and out["per_class"][2]["pixels"] == 0
    assert out["mean_iou"] == 1.0 and out["overall_accuracy"] == 1.0


def test_empty_matrix_has_no_scores() -> None:
    out = ConfusionMatrix(2).compute()
    assert out["overall_accuracy"] is None and out["mean_iou"] is None


def test_out_of_range_index_is_an_error() -> None:
    cm = ConfusionMatrix(2)
    with pytest.raises(LabelError, match="0..1"):
        cm.update(np.array([0, 1]), np.array([0, 5]))
    with pytest.raises(ValueError, match="shape"):
        cm.update(np.zeros((2, 2)), np.zeros((2, 3)))


def test_merge_and_all_reduce(tmp_path) -> None:
    a, b = ConfusionMatrix(3), ConfusionMatrix(3)
    a.update(PRED, TARGET)
    b.update(PRED, TARGET)
    assert a.merge(b).matrix.sum() == 12
    assert a.all_reduce().matrix.sum() == 12  # not distributed: unchanged
    dist.init_process_group("gloo", init_method=f"file://{tmp_path / 'store'}", rank=0, world_size=1)
    try:
        assert a.all_reduce().matrix.sum() == 12
    finally:
        dist.destroy_process_group()


def test_write_json(tmp_path) -> None:
    cm = ConfusionMatrix(3, names=["a", "b", "c"])
    cm.update(PRED, TARGET)
    path = tmp_path / "metrics.json"
    cm.write_json(path)
    saved = json.loads(path.read_text())
    assert saved["per_class"][1]["name"] == "b" and saved["confusion_matrix"][0] == [1, 1, 0]
    assert [p.name for p in tmp_path.iterdir()] == ["metrics.json"]
