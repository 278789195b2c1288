"""Self-supervised pretraining: a task the unchanged loop runs, a backbone package, fine-tuning from it."""

from __future__ import annotations

import threading

import numpy as np
import pytest
import torch

from geofm.core.checkpoint import checkpoint_path
from geofm.core.cli import main
from geofm.core.config import PretrainConfig
from geofm.core.errors import ConfigError, PackageError
from geofm.core.events import CancelledEvent, CheckpointEvent, EpochEvent, FinishedEvent, StartEvent, StepEvent
from geofm.core.package import load_backbone_package, load_package
from geofm.core.pretrain import plan, pretrain
from geofm.core.registries import PRETRAIN_METHODS
from geofm.core.selfsup.simsiam import augment_view

from rasters import separable_scene, write_raster


def _image(path, bands=4, size=96, nodata_rows=0, seed=0, names=None):
    rng = np.random.default_rng(seed)
    data = rng.normal(1000, 200, (bands, size, size)).astype(np.uint16)
    data[:, :nodata_rows] = 0
    write_raster(path, data, nodata=0)
    if names:
        import rasterio

        with rasterio.open(path, "r+") as dst:
            for b, name in enumerate(names, 1):
                dst.set_band_description(b, name)
    return path


def _config(tmp_path, images, **kw) -> PretrainConfig:
    return PretrainConfig(**{"images": [str(p) for p in images], "epochs": 2, "steps_per_epoch": 2,
                             "batch_size": 4, "device": "cpu", "num_workers": 0,
                             "output": str(tmp_path / "backbone.geofm"), **kw})


@pytest.fixture(scope="module", params=PRETRAIN_METHODS.names())
def pretrained(tmp_path_factory, request):
    """A backbone pretrained with each registered method."""
    tmp = tmp_path_factory.mktemp("pre")
    image = _image(tmp / "scene.tif", nodata_rows=40, names=["blue", "green", "red", "nir"])
    cfg = _config(tmp, [image], licence="CC-BY-4.0", method=request.param)
    events = list(pretrain(cfg))
    return cfg, events


def test_pretraining_runs_through_the_loop_and_writes_a_backbone_package(pretrained):
    cfg, events = pretrained
    start = events[[isinstance(e, StartEvent) for e in events].index(True)]
    assert start.total_epochs == 2 and start.steps_per_epoch == 2 and start.val_tiles == 0
    assert PRETRAIN_METHODS.get(cfg.method).label in start.message and "blue, green, red, nir" in start.message
    assert sum(isinstance(e, StepEvent) for e in events) == 4
    assert all(np.isfinite(e.train_loss) for e in events if isinstance(e, EpochEvent))
    assert isinstance(events[-1], FinishedEvent)
    backbone = load_backbone_package(cfg.output)
    assert backbone.metadata["kind"] == "backbone" and backbone.backbone == "resnet18"
    assert backbone.in_channels == 4 and backbone.band_names == ["blue", "green", "red", "nir"]
    assert backbone.state["conv1.weight"].shape == (64, 4, 7, 7) and not any(k.startswith("fc.") for k in
                                                                               backbone.state)
    assert backbone.stats.mean[0] == pytest.approx(1000, rel=0.02), "nodata (0) is left out of the statistics"
    trained = backbone.metadata["trained_on"]
    assert trained["method"] == cfg.method and trained["steps"] == 4 and trained["files"][0]["width"] == 96
    assert backbone.licence == "CC-BY-4.0"


def test_a_backbone_package_is_not_a_model(pretrained):
    with pytest.raises(PackageError, match="pretrained backbone, not a segmentation model"):
        load_package(pretrained[0].output)


def test_info_says_it_is_a_backbone(pretrained, capsys):
    assert main(["info", "--model", pretrained[0].output]) == 0
    out = capsys.readouterr().out
    assert "Pretrained backbone" in out and "4 band(s) (blue, green, red, nir)" in out and "CC-BY-4.0" in out


def test_mostly_nodata_crops_are_skipped(tmp_path):
    image = _image(tmp_path / "holes.tif", size=128, nodata_rows=80)
    cfg = _config(tmp_path, [image], epochs=1)
    from geofm.core.tasks.pretrain import PretrainTask

    task = PretrainTask(cfg)
    list(task.prepare(None))
    side = task.context
    assert all((row + side - 80) / side >= 0.5 for _, _, _, row, _ in task.items)


@pytest.mark.parametrize("method", PRETRAIN_METHODS.names())
def test_pretraining_resumes_exactly(tmp_path, method):
    image = _image(tmp_path / "scene.tif")
    (tmp_path / "a").mkdir()
    (tmp_path / "b").mkdir()
    straight = [e.train_loss for e in pretrain(_config(tmp_path / "a", [image], method=method))
                if isinstance(e, EpochEvent)]
    cancel = threading.Event()
    for event in pretrain(_config(tmp_path / "b", [image], method=method), cancel):
        if isinstance(event, CheckpointEvent) and event.kind == "last":
            cancel.set()
    assert isinstance(event, CancelledEvent)
    ckpt = str(checkpoint_path(tmp_path / "b" / "backbone.geofm"))
    resumed = [e.train_loss for e in pretrain(_config(tmp_path / "b", [image], resume=ckpt, method=method))
               if isinstance(e, EpochEvent)]
    assert resumed == pytest.approx(straight[1:], rel=1e-5)


def test_two_dates_as_positive_pairs_need_a_second_image_on_the_grid(tmp_path):
    with pytest.raises(ConfigError, match="at least two images"):
        list(pretrain(_config(tmp_path, [_image(tmp_path / "a.tif")], temporal_pairs=True, method="simsiam")))
    a, b = _image(tmp_path / "a.tif"), _image(tmp_path / "b.tif", seed=1)
    events = list(pretrain(_config(tmp_path, [a, b], temporal_pairs=True, epochs=1, method="simsiam")))
    assert isinstance(events[-1], FinishedEvent) and "two dates" in next(
        e for e in events if isinstance(e, StartEvent)).message


def test_two_dates_as_the_pair_ask_for_simsiam(tmp_path):
    a, b = _image(tmp_path / "a.tif"), _image(tmp_path / "b.tif", seed=1)
    with pytest.raises(ConfigError, match="SimSiam setting") as err:
        list(pretrain(_config(tmp_path, [a, b], temporal_pairs=True, method="masked")))
    assert "--method simsiam" in err.value.fix


def test_settings_stored_before_methods_existed_resume_as_simsiam():
    stored = {**_config_dict(), "schema_version": 1}
    del stored["method"]
    assert PretrainConfig.from_dict(stored).method == "simsiam"


def _config_dict():
    return {k: v for k, v in PretrainConfig(images=["a.tif"]).to_stored().items() if k != "schema_version"}


def test_images_with_different_bands_are_refused(tmp_path):
    a, b = _image(tmp_path / "a.tif", bands=4), _image(tmp_path / "b.tif", bands=3)
    with pytest.raises(ConfigError, match="different bands"):
        list(pretrain(_config(tmp_path, [a, b])))


def test_a_time_budget_becomes_the_epochs_that_fit(tmp_path):
    cfg = _config(tmp_path, [_image(tmp_path / "a.tif")], minutes=1.0, steps_per_epoch=10)
    settings = plan(cfg, seconds_per_step=0.5)
    assert settings.epochs == 12 and settings.time_limit_s == 60


def test_views_keep_nodata_at_zero_and_have_the_crop_size():
    x = torch.randn(3, 5, 96, 96)
    valid = torch.ones(3, 96, 96)
    valid[:, :, :48] = 0
    x = x * valid[:, None]
    view = augment_view(x, valid, 64, torch.Generator().manual_seed(0))
    assert view.shape == (3, 5, 64, 64)
    assert (view == 0).float().mean() > 0.2, "invalid pixels stay 0 through the jitter"
    again = augment_view(x, valid, 64, torch.Generator().manual_seed(0))
    assert torch.equal(view, again)


def test_cli_pretrain_flags_derive_from_the_schema(tmp_path, capsys):
    image = _image(tmp_path / "a.tif")
    out = tmp_path / "b.geofm"
    code = main(["pretrain", "--image", str(image), "--out", str(out), "--epochs", "1", "--steps-per-epoch", "1",
                 "--batch", "2", "--crop", "32", "--device", "cpu", "--workers", "0"])
    assert code == 0 and out.is_file()
    assert "Backbone written to" in capsys.readouterr().out


def test_finetuning_starts_from_the_backbone_first_conv(tmp_path, pretrained):
    """Pretrain on a generated raster, fine-tune from it: the first conv starts equal to the backbone's."""
    from geofm.core.config import TrainConfig
    from geofm.core.tasks.segmentation import SegmentationTask

    image, labels = separable_scene(tmp_path, size=96, bands=4)
    cfg, _ = pretrained
    train_cfg = TrainConfig(images=[str(image)], labels=[str(labels)], weights=cfg.output, tile_size=32,
                            epochs=1, device="cpu", num_workers=0, output=str(tmp_path / "m.geofm"))
    task = SegmentationTask(train_cfg)
    list(task.prepare(None))
    model = task.build_model()
    backbone = load_backbone_package(cfg.output)
    assert torch.equal(model.backbone.conv1.weight, backbone.state["conv1.weight"])
    assert torch.equal(model.backbone.layer4[1].conv2.weight, backbone.state["layer4.1.conv2.weight"])
    assert task.data.stats.mean == backbone.stats.mean, "the run normalises with the backbone's statistics"


def test_finetuning_can_start_the_decoder_from_masked_reconstructions(tmp_path, pretrained):
    """Masked reconstruction keeps its FPN decoder (less the per-band output); a run asking for it starts its decoder
    from it, and the classifier stays new. SimSiam has none: the run says the decoder starts from random weights."""
    from geofm.core.config import TrainConfig
    from geofm.core.tasks.segmentation import SegmentationTask

    image, labels = separable_scene(tmp_path, size=96, bands=4)
    cfg, _ = pretrained
    package = load_backbone_package(cfg.output)

    def model(pretrained_decoder):
        task = SegmentationTask(TrainConfig(images=[str(image)], labels=[str(labels)], weights=cfg.output,
                                            tile_size=32, epochs=1, device="cpu", num_workers=0, seed=1,
                                            output=str(tmp_path / "m.geofm"), pretrained_decoder=pretrained_decoder))
        list(task.prepare(None))
        torch.manual_seed(0)  # as the loop seeds before it builds
        return task.build_model(), task.notes, task.data.classes.num_classes

    started, notes, classes = model(True)
    fresh, _, _ = model(False)
    inner = "fpn.inner_blocks.0.0.weight"
    if cfg.method == "masked":
        assert package.decoder == "fpn" and inner in package.decoder_state
        assert not any(k.startswith("decoder.") for k in package.state), "the backbone's weights stay apart"
        assert torch.equal(started.decoder.state_dict()[inner], package.decoder_state[inner])
        assert not torch.equal(fresh.decoder.state_dict()[inner], package.decoder_state[inner])
        assert started.decoder.head[1].out_channels == classes != 4, "the classifier is the run's own, not per band"
        assert not any("decoder" in n for n in notes)
    else:
        assert package.decoder is None
        assert any("carry no decoder, so the fpn decoder starts from random weights" in n for n in notes)
        assert torch.equal(started.decoder.state_dict()[inner], fresh.decoder.state_dict()[inner])


def test_the_fine_tuned_package_records_the_backbone_and_its_licence(tmp_path, pretrained):
    from geofm.core.config import TrainConfig
    from geofm.core.train import train

    image, labels = separable_scene(tmp_path, size=96, bands=4)
    cfg = TrainConfig(images=[str(image)], labels=[str(labels)], weights=pretrained[0].output, tile_size=32,
                      epochs=1, device="cpu", num_workers=0, decoder="simple", output=str(tmp_path / "m.geofm"))
    assert isinstance(list(train(cfg))[-1], FinishedEvent)
    record = load_package(cfg.output).metadata["pretrained"]
    assert record["kind"] == "backbone" and record["licence"] == "CC-BY-4.0"
    assert record["method"] == pretrained[0].method


def test_a_backbone_of_other_bands_is_refused_naming_both(tmp_path, pretrained):
    from geofm.core.config import TrainConfig
    from geofm.core.train import train

    image, labels = separable_scene(tmp_path, size=96, bands=3)
    cfg = TrainConfig(images=[str(image)], labels=[str(labels)], weights=pretrained[0].output, tile_size=32,
                      epochs=1, device="cpu", num_workers=0, output=str(tmp_path / "m.geofm"))
    with pytest.raises(ConfigError, match=r"pretrained on 4 band\(s\) \(blue, green, red, nir\), but the image of "
                                          r".*image.tif has 3"):
        list(train(cfg))


def test_pretraining_never_writes_over_its_image(tmp_path):
    from geofm.core.config import PretrainConfig
    from geofm.core.errors import OutputError
    from geofm.core.pretrain import pretrain

    image = tmp_path / "scene.geofm"  # an image misnamed, given as the output too
    image.write_bytes(b"not touched")
    with pytest.raises(OutputError, match="would overwrite the image"):
        list(pretrain(PretrainConfig(images=[str(image)], output=str(image))))
    assert image.read_bytes() == b"not touched"


def test_a_pretrained_backbone_can_learn_at_a_lower_rate_and_resume_with_another(tmp_path, pretrained):
    """backbone_lr scales the pretrained backbone's steps (AdamW's steps scale with the rate), not the decoder's;
    a run of one rate resumes with another (the optimiser's state is regrouped, not refused)."""
    from geofm.core.config import TrainConfig
    from geofm.core.train import train

    if pretrained[0].method != "masked":
        pytest.skip("one backbone is enough")
    image, labels = separable_scene(tmp_path, size=96, bands=4)
    start = load_backbone_package(pretrained[0].output).state["layer1.0.conv1.weight"]

    def run(name, backbone_lr, epochs=1, **more):
        cfg = TrainConfig(images=[str(image)], labels=[str(labels)], weights=pretrained[0].output, tile_size=32,
                          epochs=epochs, device="cpu", num_workers=0, decoder="simple", backbone_lr=backbone_lr,
                          output=str(tmp_path / name), keep_checkpoint=True, **more)
        assert isinstance(list(train(cfg))[-1], FinishedEvent)
        state = load_package(cfg.output).model.state_dict()
        return (state["backbone.layer1.0.conv1.weight"] - start).abs().mean().item()

    full = run("full.geofm", 1.0)
    gentle = run("gentle.geofm", 0.01)
    assert 0 < gentle < full / 20
    resumed = run("full.geofm", 0.5, epochs=2, resume=str(checkpoint_path(tmp_path / "full.geofm")))
    assert resumed > full


def test_a_folder_stands_for_the_rasters_in_it(tmp_path):
    folder = tmp_path / "scenes"
    folder.mkdir()
    a, b = _image(folder / "2019.tif"), _image(folder / "2020.TIF", seed=1)
    (folder / "2019.tif.aux.xml").write_text("<PAMDataset/>")
    (folder / "notes.txt").write_text("field notes")
    cfg = _config(tmp_path, [folder], epochs=1).validate()
    assert cfg.images == [str(a), str(b)], "rasters only, in name order"
    events = list(pretrain(cfg))
    assert isinstance(events[-1], FinishedEvent)
    files = load_backbone_package(cfg.output).metadata["trained_on"]["files"]
    assert [f["name"] for f in files] == ["2019.tif", "2020.TIF"]


def test_a_folder_without_rasters_is_refused_naming_it(tmp_path):
    (tmp_path / "empty").mkdir()
    (tmp_path / "empty" / "readme.txt").write_text("nothing here")
    with pytest.raises(ConfigError, match="holds no raster file") as err:
        _config(tmp_path, [tmp_path / "empty"]).validate()
    assert str(tmp_path / "empty") in str(err.value)


def test_an_extent_keeps_the_crops_inside_it_and_leaves_out_images_it_misses(tmp_path):
    from geofm.core.events import WarningEvent
    from geofm.core.tasks.pretrain import PretrainTask

    # 128 px at 10 m from (500000, 6000000): the extent is the image's lower-right quarter, in the image's CRS
    inside = _image(tmp_path / "inside.tif", size=128)
    elsewhere = tmp_path / "elsewhere.tif"
    write_raster(elsewhere, np.random.default_rng(1).normal(1000, 200, (4, 128, 128)).astype(np.uint16),
                 origin=(600_000.0, 6_000_000.0), nodata=0)
    bbox = (500_640.0, 5_998_720.0, 501_280.0, 5_999_360.0)
    cfg = _config(tmp_path, [inside, elsewhere], epochs=1, bbox=bbox).validate()
    task = PretrainTask(cfg)
    events = list(task.prepare(None))
    assert [f.path for f in task.images] == [str(inside)]
    assert any(isinstance(e, WarningEvent) and "elsewhere.tif" in e.message for e in events)
    side = task.context
    assert all(64 <= col and col + side <= 128 and 64 <= row and row + side <= 128
               for _, _, col, row, _ in task.items), "every crop inside the extent's 64 × 64 px"
    finished = list(pretrain(cfg))[-1]
    assert isinstance(finished, FinishedEvent)
    record = load_backbone_package(cfg.output).metadata["trained_on"]
    assert record["extent"]["bbox"] == list(bbox) and record["files"][0]["window"] == [64, 64, 64, 64]


def test_an_extent_outside_every_image_is_refused_and_its_crs_is_honoured(tmp_path):
    from geofm.core.errors import DataError

    image = _image(tmp_path / "scene.tif", size=128)
    with pytest.raises(DataError, match="outside every image") as err:
        list(pretrain(_config(tmp_path, [image], bbox=(0.0, 0.0, 10.0, 10.0))))
    assert "check its CRS" in err.value.fix
    # the same quarter in WGS 84 (the image is UTM 33N): found, not refused
    from rasterio.warp import transform_bounds

    wgs84 = transform_bounds("EPSG:32633", "EPSG:4326", 500_640.0, 5_998_720.0, 501_280.0, 5_999_360.0)
    cfg = _config(tmp_path, [image], epochs=1, bbox=wgs84, bbox_crs="EPSG:4326").validate()
    assert isinstance(list(pretrain(cfg))[-1], FinishedEvent)


def test_an_extent_without_a_crs_is_in_the_first_images_crs_for_every_image(tmp_path):
    from geofm.core.tasks.pretrain import PretrainTask

    first = _image(tmp_path / "utm.tif", size=128)
    # the same numbers in Web Mercator are another place: the extent, in the first image's UTM, misses it
    mercator = write_raster(tmp_path / "mercator.tif", np.full((4, 128, 128), 1000, dtype=np.uint16), crs="EPSG:3857")
    task = PretrainTask(_config(tmp_path, [first, mercator], bbox=(500_640.0, 5_998_720.0, 501_280.0,
                                                                   5_999_360.0)).validate())
    list(task.prepare(None))
    assert [f.path for f in task.images] == [str(first)]


def test_an_inverted_extent_is_refused_before_any_work(tmp_path):
    with pytest.raises(ConfigError, match="empty or inverted"):
        _config(tmp_path, [_image(tmp_path / "a.tif")], bbox=(10.0, 0.0, 0.0, 10.0)).validate()


def test_cli_pretrain_takes_a_folder_and_an_extent(tmp_path, capsys):
    folder = tmp_path / "scenes"
    folder.mkdir()
    _image(folder / "a.tif", size=128)
    out = tmp_path / "bb.geofm"
    code = main(["pretrain", "--image", str(folder), "--bbox", "500000", "5999360", "501280", "6000000",
                 "--epochs", "1", "--steps-per-epoch", "1", "--batch", "4", "--device", "cpu", "--workers", "0",
                 "--out", str(out)])
    said = capsys.readouterr()
    assert code == 0, said.err
    assert "Training on 4 tiles, no validation: the last epoch is kept (cpu)." in said.out  # not "validating on 0"
    assert load_backbone_package(str(out)).metadata["trained_on"]["files"][0]["window"] == [0, 0, 128, 64]
    assert main(["info", "--model", str(out)]) == 0
    assert "a.tif (128 × 64 px inside the extent, of 128 × 128)" in capsys.readouterr().out
