"""The pretraining benchmark's units: which runs share a backbone, and how a stopped or shared run goes on (what
is done is never run again, a pretrained fine-tuning waits for its backbone, a dead worker's unit is free)."""

import importlib.util
import json
import subprocess
import sys
from pathlib import Path

import pytest

BENCH = Path(__file__).resolve().parent.parent / "benchmarks"


@pytest.fixture(scope="module")
def bench():
    sys.path.insert(0, str(BENCH))  # bench_pretrain imports bench_quality from its own folder
    spec = importlib.util.spec_from_file_location("bench_pretrain", BENCH / "bench_pretrain.py")
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # dataclasses look their module up while the class is built
    spec.loader.exec_module(module)
    yield module
    sys.path.remove(str(BENCH))


def _specs(bench, *names):
    return [s for s in bench.SCENES if s.name in names]


def test_entries_of_one_image_share_its_backbone(bench):
    units = bench.plan_units(_specs(bench, "nc_dense", "nc_polygons", "nc_points", "zion"), [0, 1])
    pretrainings = [u for u in units if u.scene is None]
    assert sorted(u.key for u in pretrainings) == sorted(
        f"pretrain_{folder}_seed{seed}" for folder in ("nc_landsat7_landclass96", "zion_landsat8_nlcd")
        for seed in (0, 1))
    nc = {u.backbone for u in units if u.arm == "pretrained" and u.scene.startswith("nc_") and u.seed == 0}
    assert nc == {"pretrain_nc_landsat7_landclass96_seed0"}
    # every entry, seed and label share has a scratch run and three pretrained ones (backbone; backbone and decoder;
    # backbone at a lower learning rate)
    assert len([u for u in units if u.scene]) == 4 * 2 * 2 * 4


def test_a_sensor_with_two_scenes_is_also_pretrained_on_both(bench):
    both = bench.plan_units(_specs(bench, "aberystwyth", "brandenburg"), [0])
    sensor = [u for u in both if u.arm == "pretrained_sensor"]
    assert {u.scene for u in sensor} == {"aberystwyth", "brandenburg"}
    assert {u.backbone for u in sensor} == {"pretrain_sentinel2_seed0"}
    one = bench.plan_units(_specs(bench, "brandenburg"), [0])
    assert not [u for u in one if u.arm == "pretrained_sensor"]


def test_a_stopped_run_goes_on_where_it_was(bench, tmp_path):
    units = bench.plan_units(_specs(bench, "para"), [0])
    store = bench.Store(tmp_path / "runs", tmp_path / "cache", units)
    first = store.next_unit()
    assert first.key == "pretrain_para_landsat5_polygons_seed0"
    # while the pretraining runs (claimed by this live process) only scratch runs may start
    scratch = store.next_unit()
    assert scratch.arm == "scratch"
    store.save(scratch, {"miou": 0.5})
    store.release(scratch)
    other = store.next_unit()
    assert other.arm == "scratch" and other.key != scratch.key
    store.save(other, {"miou": 0.4})
    store.release(other)
    assert store.next_unit() == "wait"  # the pretrained runs wait for the backbone
    store.save(first, {"seconds": 1.0, "epochs": 1})
    store.backbone_path(first.key).write_bytes(b"backbone")
    store.release(first)
    # a new worker (a restarted run) skips what is done and takes the pretrained runs
    again = bench.Store(tmp_path / "runs", tmp_path / "cache", units)
    taken = [again.next_unit() for _ in range(6)]
    assert {u.arm for u in taken} == {"pretrained", "pretrained_decoder", "pretrained_gentle"}
    assert again.next_unit() == "wait"  # both claimed, none done


def test_a_dead_workers_unit_is_free_and_a_removed_backbone_is_remade(bench, tmp_path):
    units = bench.plan_units(_specs(bench, "para"), [0])
    store = bench.Store(tmp_path / "runs", tmp_path / "cache", units)
    dead = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True, text=True)
    (tmp_path / "runs" / ".claims" / units[0].key).write_text(dead.stdout.strip())
    assert store.next_unit() == units[0]
    store.save(units[0], {"seconds": 1.0, "epochs": 1})
    store.release(units[0])
    assert not store.done(units[0])  # its result is there but not its backbone, and runs still need it
    assert store.next_unit() == units[0]


def test_a_stopped_pretraining_goes_on_from_its_checkpoint(bench, tmp_path):
    import numpy as np

    from rasters import write_raster

    image = write_raster(tmp_path / "scene.tif", np.random.default_rng(0).normal(900, 90, (3, 64, 64)).astype("uint16"),
                         nodata=0)
    small = {"steps_per_epoch": 2, "batch_size": 2, "crop_size": 32, "device": "cpu", "num_workers": 0}
    out = tmp_path / "backbone.geofm"
    first = bench.run_pretrain([image], 0, 1, out, **small)
    assert "error" not in first and not first["resumed"]
    more = bench.run_pretrain([image], 0, 2, out, **small)
    assert "error" not in more, more
    assert more["resumed"] and more["epochs"] == 1, "only the epoch still to run is run"


def test_a_resumed_pretraining_reports_its_whole_time_not_its_last_part(bench):
    whole = {"seconds": 1200.0, "epochs": 45, "resumed": False, "threads": 1}
    last_part = {"seconds": 60.0, "epochs": 3, "resumed": True, "threads": 1}  # 20 s per epoch, 42 done before
    assert bench._pretrain_minutes(whole, 45).startswith("20.0 ")
    assert bench._pretrain_minutes(last_part, 45).startswith("≈ 15.0 "), "45 epochs at the timed part's pace"


def test_a_store_refuses_other_settings(bench, tmp_path):
    bench._check_settings(tmp_path, {"seeds": [0], "method": "masked", "pretrain_epochs": 45})
    bench._check_settings(tmp_path, {"seeds": [0, 1, 2], "method": "masked", "pretrain_epochs": 45})
    assert json.loads((tmp_path / "settings.json").read_text())["pretrain_epochs"] == 45
    with pytest.raises(SystemExit, match="other settings"):
        bench._check_settings(tmp_path, {"seeds": [0], "method": "masked", "pretrain_epochs": 1})
