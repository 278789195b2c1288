"""The settings schema: every setting decides each front; configs are type-checked on load; versions upgrade."""

from __future__ import annotations

import json

import pytest

from geofm.core.cli import _parser
from geofm.core.config import PredictConfig, TrainConfig
from geofm.core.errors import ConfigError
from geofm.core.registries import ALL as REGISTRIES
from geofm.core.schema import FRONTS, settings_of

CONFIGS = (TrainConfig, PredictConfig)


@pytest.mark.parametrize("cls", CONFIGS)
def test_every_setting_decides_every_front_and_has_help(cls):
    """A field added without schema.setting() (or without a decision per front) fails here."""
    for s in settings_of(cls):
        assert set(s.fronts) == set(FRONTS), s.name
        assert s.label and len(s.help) > 20, s.name
        assert s.choices is None or s.choices in REGISTRIES


def _flags(command: str) -> dict[str, list[str]]:
    sub = next(a for a in _parser()._actions if a.dest == "command").choices[command]
    return {a.dest: a.option_strings for a in sub._actions}


@pytest.mark.parametrize(("command", "cls", "skip"), [
    ("train", TrainConfig, ()), ("predict", PredictConfig, ()),
    ("evaluate", PredictConfig, ("probabilities", "confidence", "bbox", "bbox_crs"))])
def test_every_cli_setting_is_a_flag(command, cls, skip):
    flags = _flags(command)
    for s in settings_of(cls):
        if s.exposed("cli") and s.name not in skip:
            assert set(s.cli_flags()) <= set(flags.get(s.name, ())), s.name
        elif not s.exposed("cli"):
            assert s.name not in flags, s.name


def test_flags_override_the_json_config(tmp_path):
    from geofm.core.cli import _train_config

    path = tmp_path / "run.json"
    path.write_text(json.dumps({"images": ["a.tif"], "labels": ["b.tif"], "epochs": 5, "augment": False}))
    args = _parser().parse_args(["train", "--config", str(path), "--epochs", "7", "--decoder", "unet"])
    config = _train_config(args)
    assert (config.epochs, config.decoder, config.augment, config.images) == (7, "unet", False, ["a.tif"])


@pytest.mark.parametrize(("data", "words"), [
    ({"lr": "0.001"}, "setting 'lr' in .* must be a finite number, not string '0.001'"),
    ({"images": "a.tif"}, "setting 'images' .* must be a list of file paths, not string 'a.tif'"),
    ([{"images": ["a.tif"]}], "must be a JSON object of settings, not a list"),
    ({"val_fraction": None}, "setting 'val_fraction' .* is empty"),
    ({"lr": float("inf")}, "finite number"),
    ({"tile_size": 16}, "between 32 and 2048 px"),
    ({"epochs": 2.5}, "whole number"),
    ({"augment": "yes"}, "true or false"),
    ({"decoder": "segformer"}, "unknown decoder 'segformer'.*\n.*fpn, unet, simple"),
    ({"stride": 32}, "unknown setting.*stride(.|\n)*'stride' is now 'overlap'"),
])
def test_loading_refuses_wrong_types_in_plain_words(tmp_path, data, words):
    path = tmp_path / "bad.json"
    path.write_text(json.dumps(data))
    with pytest.raises(ConfigError, match=words):
        TrainConfig.from_json(path)


def test_cli_refuses_a_bad_json_config_without_traceback(tmp_path, capsys):
    from geofm.core.cli import main

    path = tmp_path / "bad.json"
    path.write_text(json.dumps({"images": "a.tif"}))
    assert main(["train", "--config", str(path)]) == 1
    err = capsys.readouterr().err
    assert "must be a list of file paths" in err and "Traceback" not in err


def test_a_stored_config_of_geofm_0_1_is_upgraded():
    old = {"images": ["a.tif"], "labels": ["b.tif"], "tile_size": 64, "stride": 16, "patience": None,
           "split_block": None}
    config = TrainConfig.from_dict(old, version_if_missing=1)
    assert (config.overlap, config.stride, config.patience, config.split_block) == (75.0, 16, 0, 0)
    assert TrainConfig.from_dict(config.to_stored()) == config


def test_a_config_stored_before_the_spectral_branch_and_cosine_defaults_keeps_running_without_them():
    """A v2 config (a package's or checkpoint's) written before these settings existed ran without them: read back,
    it must say so, or a resume would build another model than the checkpoint's."""
    stored = {"schema_version": 2, **TrainConfig(images=["a.tif"], labels=["b.tif"]).to_dict()}
    del stored["spectral_branch"], stored["lr_schedule"]
    config = TrainConfig.from_dict(stored)
    assert (config.spectral_branch, config.lr_schedule) == (False, "constant")
    assert TrainConfig.from_dict({"images": ["a.tif"], "labels": ["b.tif"]}).spectral_branch  # today's defaults


def test_a_config_with_class_weights_on_or_off_reads_as_the_weighting_it_ran_with():
    """v3 stored class weights as a yes/no (yes: inverse frequency); v4 names the weighting."""
    for stored, expected in ((True, "inverse"), (False, "none")):
        old = {**TrainConfig(images=["a.tif"], labels=["b.tif"]).to_dict(), "schema_version": 3,
               "class_weights": stored}
        assert TrainConfig.from_dict(old).class_weights == expected
    del old["class_weights"]
    assert TrainConfig.from_dict(old).class_weights == "none"  # v3's default, not today's
    with pytest.raises(ConfigError, match="unknown class weighting 'cubic'"):
        TrainConfig.from_dict({"images": ["a.tif"], "class_weights": "cubic"})


def test_a_newer_config_names_the_version_it_needs():
    from geofm.core.config import TRAIN_SCHEMA

    with pytest.raises(ConfigError, match=f"newer geofm .*schema version 99.*reads version {TRAIN_SCHEMA} at most"):
        TrainConfig.from_dict({"schema_version": 99, "images": ["a.tif"]})


def test_overlap_is_one_concept_in_per_cent():
    assert TrainConfig(tile_size=128, overlap=50).stride == 64
    assert TrainConfig(tile_size=128, overlap=0).stride == 128
    assert PredictConfig.from_dict({"overlap": 25}).overlap == 25


def test_continuing_a_finished_run_asks_for_exactly_the_more_epochs():
    """The end card's "continue for N more epochs": resume from the checkpoint to epochs run + N; a time budget would
    pick the epochs again and is dropped; patience grows so the N epochs run even without a better score."""
    from geofm.core.config import PretrainConfig, continued

    train = TrainConfig(images=["a.tif"], labels=["b.tif"], epochs=0, patience=3, output="m.geofm")
    more = continued(train, "m.last.ckpt", epochs_run=12, more=5)
    assert (more.resume, more.epochs, more.patience, more.images) == ("m.last.ckpt", 17, 8, ["a.tif"])
    assert train.resume is None  # the finished run's settings are left as they were
    pre = continued(PretrainConfig(images=["a.tif"], minutes=10.0), "b.last.ckpt", epochs_run=30, more=10)
    assert (pre.resume, pre.epochs, pre.minutes) == ("b.last.ckpt", 40, 0.0)
