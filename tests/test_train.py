"""The training loop on tiny real GeoTIFFs: it learns, cancels cleanly, resumes exactly and fails clearly."""

import json
import shutil
import threading

import pytest
import torch

from geofm.core.checkpoint import checkpoint_path
from geofm.core.config import TrainConfig
from geofm.core.errors import ConfigError, PackageError, TrainingError
from geofm.core.events import CancelledEvent, CheckpointEvent, EpochEvent, FinishedEvent, StartEvent, StepEvent
from geofm.core.package import load_package
from geofm.core.train import train

from rasters import separable_scene


@pytest.fixture
def scene(tmp_path):
    return separable_scene(tmp_path, size=128)


def _config(tmp_path, scene, **kw) -> TrainConfig:
    img, lbl = scene
    base = dict(images=[str(img)], labels=[str(lbl)], backbone="resnet18", weights="none", tile_size=64, overlap=50,
                batch_size=8, epochs=2, lr=1e-3, val_fraction=0.25, split_block=64, output=str(tmp_path / "m.geofm"))
    return TrainConfig(**{**base, **kw})


@pytest.mark.parametrize("jitter", [0.0, 0.1])
def test_separable_classes_are_learnt(tmp_path, scene, jitter):
    cfg = _config(tmp_path, scene, epochs=15, tile_size=32, overlap=50, band_jitter=jitter)
    events = list(train(cfg))
    start = next(e for e in events if isinstance(e, StartEvent))  # after the data preparation's progress
    assert start.train_tiles > 0 and start.val_tiles > 0
    assert isinstance(events[-1], FinishedEvent)
    epochs = [e for e in events if isinstance(e, EpochEvent)]
    assert len(epochs) == 15 and any(isinstance(e, StepEvent) for e in events)
    best = max(e.metrics["overall_accuracy"] for e in epochs)
    assert best > 0.9
    package = load_package(tmp_path / "m.geofm")
    assert package.classes.values == [10, 20, 30] and package.tile_size == 32
    assert package.metadata["train_config"]["band_jitter"] == jitter
    assert package.metadata["metrics"]["overall_accuracy"] == pytest.approx(best)
    assert package.stats is not None and len(package.stats.mean) == 4
    saved = json.loads((tmp_path / "m.metrics.json").read_text())
    assert saved["mean_iou"] == package.metadata["metrics"]["mean_iou"] and len(saved["per_class"]) == 3


def test_cancel_keeps_a_loadable_package_and_no_partial_file(tmp_path, scene):
    cancel = threading.Event()
    events = []
    for event in train(_config(tmp_path, scene, epochs=5), cancel):
        events.append(event)
        if isinstance(event, CheckpointEvent) and event.kind == "last":
            cancel.set()
    assert isinstance(events[-1], CancelledEvent)
    assert events[-1].path == str(tmp_path / "m.geofm")
    assert load_package(events[-1].path).tile_size == 64
    assert not [p for p in tmp_path.iterdir() if p.name.endswith(".part")]


def test_cancel_before_any_epoch_writes_nothing(tmp_path, scene):
    cancel = threading.Event()
    events = []
    for event in train(_config(tmp_path, scene), cancel):
        events.append(event)
        if isinstance(event, StepEvent):
            cancel.set()
    assert isinstance(events[-1], CancelledEvent) and events[-1].path == ""
    assert sorted(p.name for p in tmp_path.iterdir()) == ["image.tif", "labels.tif"]


def test_resumed_run_equals_uninterrupted_run(tmp_path, scene):
    (tmp_path / "a").mkdir()
    (tmp_path / "b").mkdir()
    straight = _config(tmp_path, scene, epochs=3, output=str(tmp_path / "a" / "m.geofm"), keep_checkpoint=True)
    losses_a = [e.train_loss for e in train(straight) if isinstance(e, EpochEvent)]

    cfg = _config(tmp_path, scene, epochs=3, output=str(tmp_path / "b" / "m.geofm"), keep_checkpoint=True)
    cancel = threading.Event()
    for event in train(cfg, cancel):
        if isinstance(event, CheckpointEvent) and event.kind == "last":
            cancel.set()
    cfg.resume = str(checkpoint_path(cfg.output))
    losses_b = [e.train_loss for e in train(cfg) if isinstance(e, EpochEvent)]
    assert losses_b == pytest.approx(losses_a[1:], rel=1e-6)
    a = torch.load(checkpoint_path(straight.output), weights_only=True)["model"]
    b = torch.load(checkpoint_path(cfg.output), weights_only=True)["model"]
    assert all(torch.allclose(a[k].float(), b[k].float(), atol=1e-6) for k in a)


def test_a_finished_run_removes_its_checkpoint_unless_asked_to_keep_it(tmp_path, scene):
    events = list(train(_config(tmp_path, scene, epochs=1)))
    assert isinstance(events[-1], FinishedEvent)
    assert (tmp_path / "m.geofm").is_file() and not checkpoint_path(tmp_path / "m.geofm").exists()
    assert any(isinstance(e, CheckpointEvent) and e.kind == "last" for e in events)  # written while it trained
    list(train(_config(tmp_path, scene, epochs=1, keep_checkpoint=True)))
    assert checkpoint_path(tmp_path / "m.geofm").is_file()


def test_a_cancelled_run_keeps_its_checkpoint_to_resume(tmp_path, scene):
    cancel = threading.Event()
    for event in train(_config(tmp_path, scene, epochs=3), cancel):
        if isinstance(event, CheckpointEvent) and event.kind == "last":
            cancel.set()
    assert checkpoint_path(tmp_path / "m.geofm").is_file()


def test_resume_with_other_settings_is_refused(tmp_path, scene):
    cfg = _config(tmp_path, scene, epochs=1, keep_checkpoint=True)
    list(train(cfg))
    other = _config(tmp_path, scene, epochs=2, decoder="simple", resume=str(checkpoint_path(cfg.output)))
    with pytest.raises(ConfigError, match="decoder"):
        list(train(other))


def test_nan_loss_stops_with_likely_causes_and_keeps_last_good_package(tmp_path, scene, monkeypatch):
    cfg = _config(tmp_path, scene, epochs=3)
    calls = {"n": 0}
    real = torch.nn.CrossEntropyLoss.forward

    def poisoned(self, logits, target):
        calls["n"] += 1
        loss = real(self, logits, target)
        return loss * float("nan") if calls["n"] > 2 else loss

    monkeypatch.setattr(torch.nn.CrossEntropyLoss, "forward", poisoned)
    with pytest.raises(TrainingError, match="nodata") as err:
        list(train(cfg))
    assert "last good checkpoint" in str(err.value)
    assert load_package(tmp_path / "m.geofm").tile_size == 64


def test_out_of_memory_suggests_a_smaller_batch(tmp_path, scene, monkeypatch):
    def oom(*_args, **_kw):
        raise torch.cuda.OutOfMemoryError("CUDA out of memory. Tried to allocate 2.00 GiB")

    monkeypatch.setattr(torch.nn.CrossEntropyLoss, "forward", oom)
    with pytest.raises(TrainingError, match="smaller batch size") as err:
        list(train(_config(tmp_path, scene, batch_size=8)))
    assert "e.g. 4" in str(err.value)


def test_tile_not_divisible_by_32_trains(tmp_path, scene):
    events = list(train(_config(tmp_path, scene, tile_size=50, overlap=50, split_block=50, epochs=1, decoder="simple")))
    assert isinstance(events[-1], FinishedEvent)


def test_unknown_backbone_is_refused_before_any_work(tmp_path, scene):
    with pytest.raises(ConfigError, match="resnet50"):
        list(train(_config(tmp_path, scene, backbone="vgg16")))
    assert not (tmp_path / "m.geofm").exists()


def test_vector_labels_without_the_class_field_are_refused(tmp_path, scene_image, scene_polygons):
    cfg = TrainConfig(images=[str(scene_image)], labels=[str(scene_polygons)], label_field="landcover",
                      weights="none", tile_size=64, output=str(tmp_path / "m.geofm"))
    with pytest.raises(Exception, match="landcover") as err:
        list(train(cfg))
    assert "label" in str(err.value)


def test_folder_of_image_tiles_pairs_with_folder_of_label_tiles(tmp_path):
    import numpy as np

    from rasters import write_raster

    (tmp_path / "img").mkdir()
    (tmp_path / "lbl").mkdir()
    rng = np.random.default_rng(0)
    for k in range(6):
        labels = rng.integers(1, 3, (32, 32)).astype(np.uint8)
        image = rng.normal(0, 1, (3, 32, 32)).astype(np.float32) + labels * 3
        origin = (500_000.0 + k * 320, 6_000_000.0)
        write_raster(tmp_path / "img" / f"tile_{k}.tif", image, origin=origin)
        write_raster(tmp_path / "lbl" / f"tile_{k}.tif", labels, origin=origin)
    cfg = TrainConfig(images=[str(tmp_path / "img")], labels=[str(tmp_path / "lbl")], backbone="resnet18",
                      weights="none", tile_size=32, batch_size=2, epochs=1, val_fraction=0.34,
                      output=str(tmp_path / "m.geofm"))
    events = list(train(cfg))
    start = next(e for e in events if isinstance(e, StartEvent))
    assert start.train_tiles == 4 and start.val_tiles == 2
    assert isinstance(events[-1], FinishedEvent)


# -- resume: what a checkpoint must match, and files that are not checkpoints ------------------------------------
@pytest.fixture
def finished(tmp_path, scene):
    """A finished 1-epoch run that kept its checkpoint: its config and its checkpoint."""
    cfg = _config(tmp_path, scene, epochs=1, keep_checkpoint=True)
    list(train(cfg))
    return cfg, checkpoint_path(cfg.output)


def test_resume_with_changed_classes_names_the_setting_and_both_values(tmp_path, scene, finished):
    cfg, ckpt = finished
    classes = [{"value": v} for v in (10, 20, 30, 40)]
    other = _config(tmp_path, scene, epochs=2, classes=classes, resume=str(ckpt))
    with pytest.raises(ConfigError) as err:
        list(train(other))
    text = str(err.value)
    assert str(ckpt) in text and "classes" in text and "40" in text and "not set" in text


def test_resume_whose_model_does_not_fit_is_a_clear_error_naming_the_checkpoint(tmp_path, scene, finished):
    import rasterio

    cfg, ckpt = finished
    img, lbl = scene
    with rasterio.open(lbl, "r+") as dst:  # same file, same settings: only the classes read from it change
        labels = dst.read(1)
        labels[labels == 30] = 20
        dst.write(labels, 1)
    with pytest.raises((ConfigError, PackageError)) as err:
        list(train(_config(tmp_path, scene, epochs=2, resume=str(ckpt))))
    assert str(ckpt) in str(err.value) and "classes" in str(err.value)


@pytest.mark.parametrize("kind", ["state_dict", "package", "tensor"])
def test_resume_from_a_file_that_is_not_a_checkpoint_names_it(tmp_path, scene, finished, resnet18_weights, kind):
    cfg, _ = finished
    path = {"state_dict": resnet18_weights, "package": tmp_path / "other.geofm", "tensor": tmp_path / "t.pt"}[kind]
    if kind == "tensor":
        torch.save(torch.zeros(3), path)
    if kind == "package":  # another run's package (this run's own would be refused as an output over an input)
        shutil.copy(tmp_path / "m.geofm", path)
    with pytest.raises((ConfigError, PackageError)) as err:
        list(train(_config(tmp_path, scene, epochs=2, resume=str(path))))
    text = str(err.value)
    assert str(path) in text and "not a geofm checkpoint" in text and ".last.ckpt" in text


def test_resume_of_a_complete_run_says_so(tmp_path, scene, finished):
    cfg, ckpt = finished  # it ran its 1 epoch: resuming with epochs=1 has nothing left to do
    with pytest.raises(ConfigError, match="already complete") as err:
        list(train(_config(tmp_path, scene, epochs=1, resume=str(ckpt))))
    assert "epoch 1" in str(err.value) and "set the epochs above 1" in str(err.value)


def test_resume_of_a_checkpoint_from_a_newer_geofm_is_refused(tmp_path, scene, finished):
    cfg, ckpt = finished
    payload = torch.load(ckpt, weights_only=True)
    payload["config"]["schema_version"] = 99
    torch.save(payload, ckpt)
    with pytest.raises(ConfigError, match="newer geofm") as err:
        list(train(_config(tmp_path, scene, epochs=2, resume=str(ckpt))))
    assert "99" in str(err.value) and str(ckpt) in str(err.value)


def test_resume_of_a_geofm_0_1_checkpoint_upgrades_its_config(tmp_path, scene, finished):
    cfg, ckpt = finished
    payload = torch.load(ckpt, weights_only=True)
    old = payload["config"]
    old.pop("schema_version")
    del old["overlap"]
    old["stride"] = old["tile_size"] // 2  # geofm 0.1 stored a stride in pixels (here: 50 % overlap)
    payload.pop("fingerprint", None)
    payload.pop("task", None)
    torch.save(payload, ckpt)
    events = list(train(_config(tmp_path, scene, epochs=2, resume=str(ckpt))))
    assert [e.epoch for e in events if isinstance(e, EpochEvent)] == [2]


@pytest.mark.parametrize(("how", "expected"), [("none", None), ("sqrt", [3 / 13, 6 / 13, 0.0, 30 / 13]),
                                               ("inverse", [1 / 35, 4 / 35, 0.0, 100 / 35])])
def test_class_weights_favour_rare_classes_by_the_chosen_power(how, expected):
    """Counts 400, 100, 0, 4: a class 100 times rarer counts 10 times more (sqrt) or 100 times (inverse);
    weights average 1 over present classes, an absent class gets 0, none means plain cross-entropy."""
    import numpy as np

    from geofm.core.training_data import class_weights

    weights = class_weights(np.array([400, 100, 0, 4]), how)
    if expected is None:
        assert weights is None
    else:
        assert weights.tolist() == pytest.approx(expected, rel=1e-5)
