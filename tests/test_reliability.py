"""Issue 11 — nothing lost, nothing silently wrong: every bad input of docs/reliability.md, as the user meets it."""

from __future__ import annotations

import json
import os
from pathlib import Path

import numpy as np
import pytest

from geofm.core.classes import ClassMap
from geofm.core.cli import main
from geofm.core.model import build_model
from geofm.core.normalise import BandStats
from geofm.core.package import package_metadata, save_package

from rasters import separable_scene, write_raster

CLASSES = [{"value": 10, "name": "a", "colour": "#ff0000"}, {"value": 20, "name": "b", "colour": "#00ff00"},
           {"value": 30, "name": "c", "colour": "#0000ff"}]


def tiny_package(path: Path, bands: int = 4, **changes) -> Path:
    """A real (untrained) package: resnet18 + simple decoder, 32-px tiles, quick to write and load."""
    model = build_model("resnet18", "simple", bands, len(CLASSES), "none")
    meta = package_metadata(classes=ClassMap.from_list(CLASSES), band_count=bands, tile_size=32,
                            stats=BandStats([100.0] * bands, [10.0] * bands), resolution=(10.0, 10.0),
                            crs="EPSG:32633")
    meta.update(changes)
    save_package(path, model, meta)
    return path


@pytest.fixture(scope="module")
def scene(tmp_path_factory) -> tuple[Path, Path]:
    return separable_scene(tmp_path_factory.mktemp("scene"), size=64)


@pytest.fixture(scope="module")
def package(tmp_path_factory) -> Path:
    return tiny_package(tmp_path_factory.mktemp("pkg") / "m.geofm")


def digest(path: Path) -> bytes:
    return path.read_bytes()


# -- A. outputs never overwrite inputs ------------------------------------------------------------------------------
def test_evaluate_refuses_to_write_its_json_over_the_image(scene, package, capsys):
    img, lbl = scene
    before = digest(img)
    code = main(["evaluate", "--model", str(package), "--image", str(img), "--labels", str(lbl), "--out", str(img)])
    assert code == 1
    err = capsys.readouterr().err
    assert "metrics JSON would overwrite the image" in err and str(img) in err
    assert digest(img) == before


def test_predict_refuses_to_write_over_the_model(scene, package, capsys):
    img, _ = scene
    before = digest(package)
    assert main(["predict", "--model", str(package), "--image", str(img), "--out", str(package)]) == 1
    assert "class map would overwrite the model package" in capsys.readouterr().err
    assert digest(package) == before


def test_outputs_are_compared_through_symlinks_and_hard_links(tmp_path, scene, package, capsys):
    img, _ = scene
    os.symlink(package, tmp_path / "alias.geofm")
    os.link(img, tmp_path / "hard.tif")
    assert main(["predict", "--model", str(package), "--image", str(img), "--out", str(tmp_path / "alias.geofm")]) == 1
    assert "would overwrite the model package" in capsys.readouterr().err
    assert main(["predict", "--model", str(package), "--image", str(img), "--out", str(tmp_path / "hard.tif")]) == 1
    assert "would overwrite the image" in capsys.readouterr().err


def test_predict_refuses_two_outputs_in_one_file(tmp_path, scene, package, capsys):
    img, _ = scene
    out = tmp_path / "map.tif"
    assert main(["predict", "--model", str(package), "--image", str(img), "--out", str(out),
                 "--probabilities", str(out)]) == 1
    assert "probabilities raster and the class map would be the same file" in capsys.readouterr().err
    assert not out.exists()


@pytest.mark.parametrize("target", ["image", "labels", "resume", "config", "ckpt_over_image"])
def test_train_refuses_outputs_over_its_inputs_before_any_work(tmp_path, scene, target, capsys):
    img, lbl = scene
    config = tmp_path / "run.geofm.json"
    config.write_text(json.dumps({"tile_size": 32}))
    resume = tmp_path / "old.last.ckpt"
    resume.write_bytes(b"checkpoint")
    out = {"image": img, "labels": lbl, "resume": resume, "config": config,
           "ckpt_over_image": tmp_path / "x.geofm"}[target]
    if target == "ckpt_over_image":  # x.geofm's checkpoint x.last.ckpt is (a link to) the image
        os.symlink(img, tmp_path / "x.last.ckpt")
    before = {p: digest(p) for p in (img, lbl, resume, config)}
    code = main(["train", "--config", str(config), "--image", str(img), "--labels", str(lbl), "--weights", "none",
                 "--epochs", "1", "--resume", str(resume), "--out", str(out)])
    assert code == 1
    err = capsys.readouterr().err
    assert "would overwrite the" in err and "Training on" not in err
    assert all(digest(p) == b for p, b in before.items())


def test_check_align_to_refuses_the_labels_path(tmp_path, capsys):
    img = write_raster(tmp_path / "img.tif", np.ones((3, 64, 64), np.uint16))
    lbl = write_raster(tmp_path / "lbl.tif", np.ones((32, 32), np.uint8), res=20.0, nodata=0)
    before = digest(lbl)
    assert main(["check", "--image", str(img), "--labels", str(lbl), "--tile", "32", "--align-to", str(lbl)]) == 1
    assert "aligned labels would overwrite the labels" in capsys.readouterr().err
    assert digest(lbl) == before


# -- B. output paths checked before any work ------------------------------------------------------------------------
@pytest.mark.parametrize("case", ["missing_folder", "folder", "proc", "under_a_file"])
def test_train_checks_its_output_path_before_any_work(tmp_path, scene, case, capsys):
    img, lbl = scene
    out = {"missing_folder": tmp_path / "no" / "m.geofm", "folder": tmp_path / "dir.geofm",
           "proc": Path("/proc/m.geofm"), "under_a_file": img / "m.geofm"}[case]
    if case == "folder":
        out.mkdir()
    code = main(["train", "--image", str(img), "--labels", str(lbl), "--weights", "none", "--epochs", "1",
                 "--tile", "32", "--out", str(out)])
    err = capsys.readouterr()
    assert code == 1 and "Training on" not in err.out
    expected = {"missing_folder": "the folder of the model package does not exist",
                "folder": "the model package is a folder, not a file",
                "proc": "the model package cannot be written in /proc",
                "under_a_file": "which is a file, not a folder"}[case]
    assert expected in err.err and "Fix:" in err.err


def test_evaluate_out_is_an_existing_folder(tmp_path, scene, package, capsys):
    img, lbl = scene
    code = main(["evaluate", "--model", str(package), "--image", str(img), "--labels", str(lbl), "--out", str(tmp_path)])
    assert code == 1
    err = capsys.readouterr().err
    assert "the metrics JSON is a folder, not a file" in err and "IsADirectoryError" not in err


def test_predict_into_a_missing_folder_and_check_align_to_unwritable(tmp_path, scene, package, capsys):
    img, lbl = scene
    assert main(["predict", "--model", str(package), "--image", str(img), "--out", str(tmp_path / "x" / "p.tif")]) == 1
    assert "folder of the class map does not exist" in capsys.readouterr().err
    assert main(["check", "--image", str(img), "--labels", str(lbl), "--align-to", "/proc/aligned.tif"]) == 1
    assert "aligned labels cannot be written in /proc" in capsys.readouterr().err


# -- C. a full disk never reports success ---------------------------------------------------------------------------
@pytest.fixture
def small_disk(tmp_path):
    """A 512 KiB tmpfs (needs root); skipped where it cannot be mounted."""
    import subprocess

    where = tmp_path / "small_disk"
    where.mkdir()
    if subprocess.run(["mount", "-t", "tmpfs", "-o", "size=512k", "tmpfs", str(where)],
                      capture_output=True).returncode != 0:
        pytest.skip("cannot mount a tmpfs here (not root)")
    try:
        yield where
    finally:
        subprocess.run(["umount", str(where)], check=False)


def only_probe_free(folder: Path) -> list[str]:
    return sorted(p.name for p in folder.iterdir())


def test_write_json_on_a_full_disk_says_so_and_leaves_nothing(small_disk):
    from geofm.core.errors import OutputError
    from geofm.core.fileio import write_json

    with pytest.raises(OutputError, match="the disk is full.*nothing was written") as err:
        write_json(small_disk / "metrics.json", {"x": "y" * (1 << 20)})
    assert "Fix: free space" in str(err.value)
    assert only_probe_free(small_disk) == []


def test_write_json_enospc_anywhere(tmp_path, monkeypatch):
    import errno

    from geofm.core.errors import OutputError
    from geofm.core.fileio import write_json

    def full(self, *a, **k):
        raise OSError(errno.ENOSPC, "No space left on device")

    (tmp_path / "metrics.json").write_text("old")
    monkeypatch.setattr(Path, "write_text", full)
    with pytest.raises(OutputError, match="the disk is full"):
        write_json(tmp_path / "metrics.json", {"a": 1})
    monkeypatch.undo()
    assert [p.name for p in tmp_path.iterdir()] == ["metrics.json"]
    assert (tmp_path / "metrics.json").read_text() == "old"  # the older file is kept, not half-overwritten


def test_save_package_and_checkpoint_on_a_full_disk(small_disk):
    import torch

    from geofm.core.checkpoint import Checkpoint, save_checkpoint
    from geofm.core.config import TrainConfig
    from geofm.core.errors import OutputError

    with pytest.raises(OutputError, match="the disk is full"):
        tiny_package(small_disk / "m.geofm")
    model = build_model("resnet18", "simple", 4, 3, "none")
    opt = torch.optim.AdamW(model.parameters())
    with pytest.raises(OutputError, match="the disk is full"):
        save_checkpoint(small_disk / "m.last.ckpt", model, opt, torch.amp.GradScaler("cuda", enabled=False),
                        Checkpoint(1, 0.5, 1, 0), task="segmentation",
                        config=TrainConfig(images=["a.tif"], labels=["b.tif"]).to_stored(), fingerprint={})
    assert only_probe_free(small_disk) == []


def test_check_align_to_a_full_disk_exits_1_and_leaves_nothing(tmp_path, small_disk, capsys):
    rng = np.random.default_rng(0)
    img = write_raster(tmp_path / "img.tif", np.ones((1, 2048, 2048), np.uint8))
    lbl = write_raster(tmp_path / "lbl.tif", rng.integers(1, 9, (1024, 1024)).astype(np.uint8), res=20.0)
    code = main(["check", "--image", str(img), "--labels", str(lbl), "--tile", "32",
                 "--align-to", str(small_disk / "aligned.tif")])
    captured = capsys.readouterr()
    assert code == 1, captured.out
    assert "the disk is full" in captured.err and "nothing was written" in captured.err
    assert "Aligned labels written" not in captured.out
    assert only_probe_free(small_disk) == []


# -- D. swapped image and labels, a single class ----------------------------------------------------------------------
def train_args(img, lbl, out, *extra):
    return ["train", "--image", str(img), "--labels", str(lbl), "--weights", "none", "--epochs", "1", "--tile", "32",
            "--out", str(out), *extra]


def test_swapped_image_and_labels_are_named_as_such(tmp_path, scene, capsys):
    img, lbl = scene
    assert main(train_args(lbl, img, tmp_path / "m.geofm")) == 1
    err = capsys.readouterr().err
    assert "did you swap image and labels?" in err and f"{img}: The label raster has 4 bands" in err and f"{img}: {img}" not in err
    assert main(["check", "--image", str(lbl), "--labels", str(img)]) == 2
    assert "did you swap image and labels?" in capsys.readouterr().out


@pytest.mark.parametrize("kind", ["float", "many_values"])
def test_labels_that_look_like_imagery_are_refused(tmp_path, scene, kind, capsys):
    img, _ = scene
    rng = np.random.default_rng(1)
    values = (rng.normal(100, 20, (64, 64)).astype(np.float32) if kind == "float"
              else rng.integers(0, 4000, (64, 64)).astype(np.uint16))
    lbl = write_raster(tmp_path / f"{kind}.tif", values)
    assert main(train_args(img, lbl, tmp_path / "m.geofm")) == 1
    err = capsys.readouterr().err
    assert "did you swap image and labels?" in err and str(lbl) in err


def test_single_class_labels_are_refused_naming_the_class(tmp_path, scene, capsys):
    img, _ = scene
    lbl = write_raster(tmp_path / "one.tif", np.full((64, 64), 7, np.uint8))
    assert main(train_args(img, lbl, tmp_path / "m.geofm", "--val-share", "0")) == 1
    err = capsys.readouterr().err
    assert "single class (value 7, 'class 7')" in err and str(lbl) in err
    assert not (tmp_path / "m.geofm").exists()


def test_training_pixels_per_class_count_each_pixel_once(tmp_path):
    from geofm.core.config import TrainConfig
    from geofm.core.events import result_of
    from geofm.core.training_data import prepare_training_data

    labels = np.ones((128, 128), np.uint8)
    labels[:, 64:] = 2
    img = write_raster(tmp_path / "img.tif", np.random.default_rng(0).normal(size=(2, 128, 128)).astype(np.float32))
    lbl = write_raster(tmp_path / "lbl.tif", labels)
    cfg = TrainConfig(images=[str(img)], labels=[str(lbl)], tile_size=32, overlap=75, val_fraction=0,
                      weights="none", output=str(tmp_path / "m.geofm"))
    data = result_of(prepare_training_data(cfg))
    assert "Training pixels per class: class 1 8,192, class 2 8,192" in data.summary


# -- F. classes checked where they are given, packages checked when loaded ----------------------------------------
@pytest.mark.parametrize("given, expected", [
    ('[{"name": "a"}]', "class 1 (a) has no value"),
    ('{"value": 1}', "must be a list of classes"),
    ('[{"value": "x"}]', "class 1 has value 'x'; a class value is a whole number"),
    ('[{"value": 10, "colour": "nocolour"}, {"value": 20}]', "class 10 has colour 'nocolour', which is not a colour"),
    ('[{"value": 10, "colour": "#12345"}, {"value": 20}]', "class 10 has colour '#12345'"),
    ('[{"value": 10, "colur": "red"}]', "unknown key(s) colur"),
])
def test_bad_classes_are_refused_before_any_work(tmp_path, scene, given, expected, capsys):
    img, lbl = scene
    assert main(train_args(img, lbl, tmp_path / "m.geofm", "--classes", given)) == 1
    err = capsys.readouterr()
    assert expected in err.err and "Traceback" not in err.err and "Training on" not in err.out


def test_colour_names_are_stored_as_hex(tmp_path):
    from geofm.core.config import TrainConfig
    from geofm.core.package import load_package

    cfg = TrainConfig.from_dict({"classes": [{"value": 10, "colour": "red"}, {"value": 20, "color": "#0F0"}]})
    assert [c["colour"] for c in cfg.classes] == ["#ff0000", "#00ff00"]
    assert ClassMap.from_list([{"value": 1, "colour": "DarkGreen"}]).colours == ["#006400"]
    pkg = tiny_package(tmp_path / "m.geofm", classes=[{"value": 10, "name": "a", "colour": "red"},
                                                       {"value": 20, "name": "b", "colour": "#00ff00"},
                                                       {"value": 30, "name": "c", "colour": "blue"}])
    assert load_package(pkg).classes.colours == ["#ff0000", "#00ff00", "#0000ff"]


def edited_package(src: Path, dst: Path, edit) -> Path:
    import zipfile

    with zipfile.ZipFile(src) as zin, zipfile.ZipFile(dst, "w") as zout:
        for name in zin.namelist():
            data = zin.read(name)
            if name == "metadata.json":
                meta = json.loads(data)
                edit(meta)
                data = json.dumps(meta).encode()
            zout.writestr(name, data)
    return dst


@pytest.mark.parametrize("field, expected", [
    ("tile_size", "tile size 0"),
    ("resolution", "resolution [0, 0]"),
    ("colour", "class 10 has colour 'nocolour'"),
    ("std", "band(s) [2] have standard deviation 0"),
])
def test_damaged_package_metadata_is_refused_naming_the_package(tmp_path, package, field, expected, capsys):
    edits = {"tile_size": lambda m: m.update(tile_size=0), "resolution": lambda m: m.update(resolution=[0, 0]),
             "colour": lambda m: m["classes"][0].update(colour="nocolour"),
             "std": lambda m: m["normalisation"]["stats"]["std"].__setitem__(1, 0)}
    bad = edited_package(package, tmp_path / "bad.geofm", edits[field])
    assert main(["info", "--model", str(bad)]) == 1
    err = capsys.readouterr().err
    assert f"{bad}: the package's metadata is unusable: {expected}" in err and "Fix:" in err


# -- G. messages that say what is wrong, about the right file --------------------------------------------------------
def test_labels_in_degrees_against_a_projected_image_speak_of_reprojection(tmp_path, scene, capsys):
    from rasterio.warp import transform

    img, _ = scene
    (lon,), (lat,) = transform("EPSG:32633", "EPSG:4326", [500_000.0], [6_000_000.0])
    lbl = write_raster(tmp_path / "lbl4326.tif", np.ones((64, 64), np.uint8), crs="EPSG:4326", origin=(lon, lat),
                       res=0.0001)
    assert main(["check", "--image", str(img), "--labels", str(lbl), "--tile", "32"]) == 2
    out = capsys.readouterr().out
    assert "EPSG:4326 (in degrees)" in out and "reprojected onto the image's grid" in out
    assert "0.0001 × 0.0001 degrees" in out and "unknown" not in out and " m (" not in out
    assert main(["check", "--image", str(img), "--labels", str(lbl), "--tile", "32", "--json"]) == 2
    report = json.loads(capsys.readouterr().out)
    assert report["offset_m"] is None and report["offset_px"] is None


def test_image_problems_are_reported_under_the_image(tmp_path, scene, capsys):
    import rasterio

    _, lbl = scene
    small = write_raster(tmp_path / "small.tif", np.ones((4, 40, 40), np.float32))
    assert main(train_args(small, lbl, tmp_path / "m.geofm", "--tile", "64")) == 1
    assert f"Error: {small}: The image (40 × 40 pixels) is smaller than one tile" in capsys.readouterr().err
    png = tmp_path / "nocrs.png"
    with rasterio.open(png, "w", driver="PNG", width=64, height=64, count=3, dtype="uint8") as dst:
        dst.write(np.ones((3, 64, 64), np.uint8))
    assert main(train_args(png, lbl, tmp_path / "m.geofm")) == 1
    assert f"Error: {png}: The image nocrs.png has no CRS" in capsys.readouterr().err


def test_a_split_that_finds_no_validation_tile_no_longer_fails(tmp_path, scene, capsys):
    """Labels are split, not tiles (core/split.py): the scene whose tile split left no validation tile trains, with
    validation labels held out in smaller blocks."""
    img, lbl = scene
    assert main(train_args(img, lbl, tmp_path / "m.geofm", "--overlap", "0", "--val-share", "0.2")) == 0
    out = capsys.readouterr().out
    assert "validation tiles" in out and ", validating on 0" not in out


def test_a_refused_pickle_never_suggests_weights_only_false(tmp_path, package, capsys):
    import io
    import zipfile

    import torch

    class Evil:
        def __reduce__(self):
            return (os.system, ("true",))

    buffer = io.BytesIO()
    torch.save({"w": Evil()}, buffer)
    bad = tmp_path / "evil.geofm"
    with zipfile.ZipFile(package) as zin, zipfile.ZipFile(bad, "w") as zout:
        zout.writestr("metadata.json", zin.read("metadata.json"))
        zout.writestr("weights.pt", buffer.getvalue())
    assert main(["info", "--model", str(bad)]) == 1
    err = capsys.readouterr().err
    assert "refused to load the weights" in err and "posix.system" in err
    assert "weights_only" not in err and "False" not in err and "trusted source" not in err


def test_vector_labels_without_a_field_and_without_a_crs(tmp_path, scene, package, capsys):
    from osgeo import ogr

    from rasters import write_polygons

    img, _ = scene
    ring = [(500_000, 5_999_400), (500_300, 5_999_400), (500_300, 5_999_700), (500_000, 5_999_700)]
    gpkg = write_polygons(tmp_path / "poly.gpkg", [(ring, {"cls": 10})])
    assert main(["evaluate", "--model", str(package), "--image", str(img), "--labels", str(gpkg)]) == 1
    err = capsys.readouterr().err
    assert "vector labels need the name of their class field" in err and "--label-field" in err
    assert "truncated" not in err
    nocrs = tmp_path / "nocrs.gpkg"
    ds = ogr.GetDriverByName("GPKG").CreateDataSource(str(nocrs))
    layer = ds.CreateLayer("labels", None, ogr.wkbPolygon)
    layer.CreateField(ogr.FieldDefn("cls", ogr.OFTInteger))
    feature = ogr.Feature(layer.GetLayerDefn())
    feature.SetGeometry(ogr.CreateGeometryFromWkt("POLYGON((" + ",".join(f"{x} {y}" for x, y in [*ring, ring[0]])
                                                  + "))"))
    feature.SetField("cls", 10)
    layer.CreateFeature(feature)
    ds = None
    assert main(train_args(img, nocrs, tmp_path / "m.geofm", "--label-field", "cls")) == 1
    err = capsys.readouterr().err
    assert f"{nocrs}: the layer has no CRS" in err and "PROJ" not in err and "reprojected" not in err


def test_info_on_a_folder_says_it_is_a_folder(package, capsys):
    assert main(["info", "--model", str(package.parent)]) == 1
    err = capsys.readouterr().err
    assert "this is a folder, not a model package" in err and f"e.g. {package}" in err


def test_gdal_error_lines_are_not_printed_raw(tmp_path, scene):
    import subprocess
    import sys

    img, lbl = scene
    truncated = tmp_path / "truncated.tif"
    truncated.write_bytes(img.read_bytes()[:9000])
    run = subprocess.run([sys.executable, "-m", "geofm.core.cli", "check", "--image", str(truncated), "--labels",
                          str(lbl)], capture_output=True, text=True)
    assert run.returncode == 1
    assert "ERROR 1" not in run.stderr
    assert f"{truncated}: the file is damaged or truncated" in run.stderr


# -- E. extreme values and complex data ---------------------------------------------------------------------------------
def test_an_unmasked_block_of_3e38_is_nodata_with_a_warning_naming_the_band(tmp_path):
    from rasterio.windows import Window

    from geofm.core.errors import GeoFMWarning
    from geofm.core.normalise import compute_stats, normalise
    from geofm.core.raster import open_raster, read_window

    data = np.random.default_rng(0).normal(100, 10, (3, 64, 64)).astype(np.float32)
    data[1, :16, :16] = 3.4028235e38  # a fill value, with no nodata tag
    img = write_raster(tmp_path / "img.tif", data)
    with open_raster(img) as src, pytest.warns(GeoFMWarning, match=r"img.tif: band 2 \(e.g. 3.40282e\+38\) holds "
                                                                   r"values of magnitude 1e\+30 or more"):
        sample = read_window(src, Window(0, 0, 64, 64))
    stats = compute_stats([sample])
    assert all(abs(m - 100) < 2 for m in stats.mean) and all(5 < s < 15 for s in stats.std)
    x = normalise(*sample, stats)
    assert not sample[1][:16, :16].any()  # treated as nodata: neither trained on nor predicted
    assert 0.8 < x[1][sample[1]].std() < 1.2  # the band keeps its contrast


def test_complex_rasters_are_refused_in_plain_words(tmp_path, scene, capsys):
    _, lbl = scene
    img = write_raster(tmp_path / "slc.tif", (np.ones((2, 64, 64)) + 1j).astype(np.complex64))
    assert main(["check", "--image", str(img), "--labels", str(lbl)]) == 1
    err = capsys.readouterr().err
    assert f"{img}: the raster holds complex numbers (complex64" in err and "amplitude" in err


def test_a_declared_extreme_nodata_value_is_not_warned_about(tmp_path):
    import warnings

    from rasterio.windows import Window

    from geofm.core.raster import open_raster, read_window

    data = np.ones((2, 32, 32), np.float32)
    lowest = float(np.finfo(np.float32).min)  # -3.4e38, a common declared nodata of float rasters
    data[:, :8] = lowest
    img = write_raster(tmp_path / "img.tif", data, nodata=lowest)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        with open_raster(img) as src:
            _, valid = read_window(src, Window(0, 0, 32, 32))
    assert valid.sum() == 32 * 24


# -- H. grids that are not what they seem ----------------------------------------------------------------------------
def test_resample_refuses_a_raster_without_a_geotransform(tmp_path, package, capsys):
    import rasterio

    png = tmp_path / "plain.png"
    with rasterio.open(png, "w", driver="PNG", width=90, height=10, count=4, dtype="uint8") as dst:
        dst.write(np.full((4, 10, 90), 100, np.uint8))
    out = tmp_path / "pred.tif"
    assert main(["predict", "--model", str(package), "--image", str(png), "--out", str(out), "--resample",
                 "--device", "cpu"]) == 1
    err = capsys.readouterr().err
    assert f"{png}: the raster has no georeferencing (no geotransform)" in err and "without --resample" in err
    assert not out.exists()


def test_a_rotated_image_with_north_up_labels_is_not_called_aligned(tmp_path, capsys):
    import rasterio
    from affine import Affine

    rotated = Affine.translation(500_000, 6_000_000) * Affine.rotation(30) * Affine.scale(10, -10)
    img = tmp_path / "rotated.tif"
    with rasterio.open(img, "w", driver="GTiff", width=256, height=256, count=3, dtype="float32", crs="EPSG:32633",
                       transform=rotated) as dst:
        dst.write(np.ones((3, 256, 256), np.float32))
    lbl = write_raster(tmp_path / "north_up.tif", np.ones((256, 256), np.uint8), origin=(500_000, 6_000_000))
    assert main(["check", "--image", str(img), "--labels", str(lbl), "--tile", "64", "--json"]) == 2
    report = json.loads(capsys.readouterr().out)
    assert report["verdict"] == "align_labels" and not report["same_grid"]
    assert "image grid is rotated by 30.0°, the labels' grid north-up" in report["summary"]
    assert all(0 < n <= 256 for n in report["overlap_px"])  # never more than the image
    aligned = tmp_path / "aligned.tif"
    assert main(["check", "--image", str(img), "--labels", str(lbl), "--tile", "64", "--align-to", str(aligned)]) == 0
    assert main(["check", "--image", str(img), "--labels", str(aligned), "--tile", "64"]) == 0
