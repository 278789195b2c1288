"""Prediction: seamless blending, georeferencing, outputs, extents, and clear errors that leave nothing behind."""

from __future__ import annotations

import errno
import subprocess
import sys
import threading
from pathlib import Path

import numpy as np
import pytest
import rasterio
import torch
from rasterio.warp import transform_bounds, transform_geom
from rasterio.windows import Window
from torch import nn

from geofm.core.classes import ClassMap
from geofm.core.config import PredictConfig
from geofm.core.errors import ConfigError, PackageError, PredictionError
from geofm.core.events import CancelledEvent, FinishedEvent, ProgressEvent, WarningEvent
from geofm.core.inference.windows import window_starts
from geofm.core.model import build_model
from geofm.core.normalise import BandStats, normalise
from geofm.core.package import ModelPackage, package_metadata, save_package
from geofm.core.predict import confidence_path, predict
from geofm.core.raster import open_raster, read_window

from rasters import UTM33N, separable_scene, write_raster

CLASSES = ClassMap.from_list(
    [{"value": 10, "name": "water", "colour": "#0000ff"}, {"value": 20, "name": "forest", "colour": "#00aa00"},
     {"value": 30, "name": "urban", "colour": "#ff0000"}]
)  # fmt: skip


def stand_in(kernel: int = 3, bands: int = 4, tile: int = 64, classes: ClassMap = CLASSES, **kw) -> ModelPackage:
    """A small, seeded, fully convolutional package: three convs of ``kernel`` px (receptive field 3·(k-1)+1)."""
    torch.manual_seed(0)
    pad = kernel // 2
    model = nn.Sequential(
        nn.Conv2d(bands, 16, kernel, padding=pad), nn.ReLU(), nn.Conv2d(16, 16, kernel, padding=pad), nn.ReLU(),
        nn.Conv2d(16, classes.num_classes, kernel, padding=pad),
    )  # fmt: skip
    stats = BandStats([0.0] * bands, [1.0] * bands)
    fields = {"resolution": None, "crs": None, **kw}
    return ModelPackage(model.eval(), {}, classes, stats, "global", tile, bands, **fields)


def textured(tmp: Path, height: int = 192, width: int = 192, name: str = "image.tif", **kw) -> Path:
    """A 4-band raster with structure at several scales, so class maps have many boundaries."""
    rng = np.random.default_rng(0)
    yy, xx = np.mgrid[0:height, 0:width]
    data = np.stack([
        np.sin(xx / 9.0) + np.cos(yy / 13.0) + 0.3 * rng.normal(size=(height, width)),
        np.cos(xx / 7.0 + yy / 11.0), np.sin((xx + yy) / 17.0), rng.normal(size=(height, width)) * 0.5,
    ]).astype(np.float32)  # fmt: skip
    return write_raster(tmp / name, data, **kw)


def full_pass(package: ModelPackage, path: Path) -> torch.Tensor:
    """Softmax probabilities [K,H,W] of one forward pass over the whole raster."""
    with open_raster(path) as src:
        data, valid = read_window(src, Window(0, 0, src.width, src.height))
    x = torch.from_numpy(normalise(data, valid, package.stats, package.normalisation))[None]
    with torch.inference_mode():
        return torch.softmax(package.model(x), dim=1)[0]


def run(package, raster, output, **settings) -> list:
    return list(predict(package, raster, output, PredictConfig(device="cpu", **settings)))


def read(path: Path) -> np.ndarray:
    with rasterio.open(path) as dst:
        return dst.read()


def line_rate(mask: np.ndarray, lines: list[int]) -> float:
    """Mean of ``mask`` [H,W] over the given rows and columns."""
    return float(np.mean([mask[v].mean() for v in lines] + [mask[:, v].mean() for v in lines]))


def leftovers(folder: Path, keep: set[str]) -> list[str]:
    return sorted(p.name for p in folder.iterdir() if p.name not in keep)


# --- seams -------------------------------------------------------------------------------------------------------


def test_windowed_prediction_matches_one_full_pass_without_seams(tmp_path):
    image = textured(tmp_path)
    package = stand_in()
    full = full_pass(package, image).argmax(0).numpy()
    assert len(np.unique(full)) == 3  # a class map with boundaries, not a constant
    edges = list(range(32, 192, 32))  # window edges: tile 64, stride 32
    middles = [e - 16 for e in edges]

    run(package, image, tmp_path / "blended.tif")
    blended = CLASSES.decode(full) != read(tmp_path / "blended.tif")[0]
    assert blended.mean() < 0.002
    assert line_rate(blended, edges) <= line_rate(blended, middles) + 0.002

    # the same windows without overlap (no blending) do show seams: the check above can see them
    run(package, image, tmp_path / "hard.tif", overlap=0.0)
    hard = CLASSES.decode(full) != read(tmp_path / "hard.tif")[0]
    assert line_rate(hard, [64, 128]) > 5 * line_rate(blended, [64, 128]) + 0.01


def test_pointwise_model_gives_exact_probabilities_over_several_strips_and_blocks(tmp_path):
    """A 1×1 conv model sees no context, so blending must reproduce its full-pass probabilities exactly,
    whatever the windows: 300 rows cross a 256-row output block, widths and heights are not multiples of the stride."""
    image = textured(tmp_path, height=300, width=70)
    package = stand_in(kernel=1)
    probs = tmp_path / "probs.tif"
    events = run(package, image, tmp_path / "out.tif", probabilities=str(probs), batch_size=3)
    full = full_pass(package, image).numpy()
    np.testing.assert_allclose(read(probs), full, atol=2e-6)
    np.testing.assert_array_equal(read(tmp_path / "out.tif")[0], CLASSES.decode(full.argmax(0)))
    progress = [e for e in events if isinstance(e, ProgressEvent)]
    assert progress[-1].done == progress[-1].total == 9 * 2  # window rows × columns


def test_test_time_flips_average_the_eight_views_each_turned_back(tmp_path):
    """Flip averaging must turn each view's probabilities back before averaging: for a model that sees no context
    the average equals one pass (a view left unturned would scramble it); for one that does, the map changes."""
    image = textured(tmp_path, 96, 80)
    probs = {name: tmp_path / f"{name}.tif" for name in ("plain", "flips", "ctx_plain", "ctx_flips")}
    run(stand_in(kernel=1), image, tmp_path / "a.tif", probabilities=str(probs["plain"]))
    run(stand_in(kernel=1), image, tmp_path / "b.tif", probabilities=str(probs["flips"]), test_time_flips=True)
    np.testing.assert_allclose(read(probs["flips"]), read(probs["plain"]), atol=2e-6)

    model = stand_in(kernel=5)
    run(model, image, tmp_path / "c.tif", probabilities=str(probs["ctx_plain"]))
    run(model, image, tmp_path / "d.tif", probabilities=str(probs["ctx_flips"]), test_time_flips=True)
    plain, flips = read(probs["ctx_plain"]), read(probs["ctx_flips"])
    assert np.abs(flips - plain).max() > 0.01
    np.testing.assert_allclose(flips.sum(0), 1.0, atol=1e-5)  # still probabilities


def test_resnet_package_from_path_with_one_window_equals_full_pass(tmp_path):
    torch.manual_seed(0)
    model = build_model("resnet18", "simple", in_channels=4, num_classes=3)
    stats = BandStats([0.0] * 4, [1.0] * 4)
    path = tmp_path / "model.geofm"
    save_package(path, model, package_metadata(classes=CLASSES, band_count=4, tile_size=64, stats=stats))
    image = textured(tmp_path, 64, 64)
    events = run(path, image, tmp_path / "out.tif")
    assert isinstance(events[-1], FinishedEvent)
    package = stand_in()
    package.model = model.eval()
    expected = CLASSES.decode(full_pass(package, image).argmax(0).numpy())
    np.testing.assert_array_equal(read(tmp_path / "out.tif")[0], expected)


def test_real_scene_has_no_class_changes_aligned_to_the_tile_grid(scene_image, tmp_path):
    """A random-init fully convolutional model on the Landsat scene: class changes across tile boundary lines are as
    common as across the lines halfway between them; without overlap (a control) they are more common."""
    with open_raster(scene_image) as src:
        data, valid = read_window(src, Window(0, 0, src.width, src.height))
        width, height = src.width, src.height
    stats = BandStats(data[:, valid].mean(axis=1).tolist(), data[:, valid].std(axis=1).tolist())
    classes = ClassMap.from_list([{"value": v} for v in range(1, 8)])
    package = stand_in(bands=5, classes=classes)
    package.stats = stats

    def change_rates(overlap: float) -> tuple[float, float]:
        out = tmp_path / f"overlap{overlap}.tif"
        run(package, scene_image, out, overlap=overlap, batch_size=16)
        c = read(out)[0].astype(np.int32)
        stride = round(64 * (1 - overlap / 100))
        rates = []
        for lines_of in (lambda s: (s, s + 64), lambda s: (s + stride // 2,)):
            cols = {v for s in window_starts(0, width, width, 64, stride)[:-1] for v in lines_of(s)} - {0, width}
            rows = {v for s in window_starts(0, height, height, 64, stride)[:-1] for v in lines_of(s)} - {0, height}
            across = [(c[:, v - 1], c[:, v]) for v in sorted(cols)] + [(c[v - 1], c[v]) for v in sorted(rows)]
            ok = np.concatenate([(a != 255) & (b != 255) for a, b in across])
            changed = np.concatenate([a != b for a, b in across])
            rates.append(changed[ok].mean())
        return rates[0], rates[1]

    boundary, halfway = change_rates(50)
    assert halfway > 0.01  # the map has class changes to count
    assert boundary <= 1.1 * halfway
    hard_boundary, hard_halfway = change_rates(0.0)
    assert hard_boundary > 1.2 * hard_halfway


# --- georeferencing and outputs ------------------------------------------------------------------------------------


def test_georeferencing_nodata_probabilities_colours_and_names(tmp_path):
    image, _ = separable_scene(tmp_path, size=96)
    out, probs = tmp_path / "classes.tif", tmp_path / "probs.tif"
    events = run(stand_in(), image, out, probabilities=str(probs), confidence=True)
    done = events[-1]
    assert isinstance(done, FinishedEvent) and done.path == str(out)
    assert done.summary["valid_pixels"] == 92 * 96 == sum(done.summary["class_pixels"].values())
    with rasterio.open(image) as src, rasterio.open(out) as dst:
        assert dst.crs == src.crs and dst.transform == src.transform and dst.shape == src.shape
        assert dst.dtypes[0] == "uint8" and dst.nodata == 255
        assert dst.profile["tiled"] and dst.compression.name.lower() == "deflate"
        classes = dst.read(1)
        input_valid = read_window(src, Window(0, 0, 96, 96))[1]
        assert ((classes == 255) == ~input_valid).all()
        assert set(np.unique(classes[input_valid])) <= {10, 20, 30}
        assert dst.colormap(1)[10] == (0, 0, 255, 255) and dst.colormap(1)[30] == (255, 0, 0, 255)
        assert dst.descriptions[0] == "class", "a short band name: QGIS shows it above the legend's class names"
        assert dst.tags(1)["CLASS_20"] == "forest"
    with rasterio.open(probs) as p:
        assert p.descriptions == tuple(CLASSES.names) and p.crs == dst.crs and p.transform == dst.transform
        prob = p.read()
    np.testing.assert_allclose(prob[:, input_valid].sum(axis=0), 1.0, atol=1e-5)
    assert (prob[:, ~input_valid] == p.nodata).all()
    assert (CLASSES.decode(prob.argmax(axis=0))[input_valid] == classes[input_valid]).all()
    confidence = read(confidence_path(out))[0]
    np.testing.assert_allclose(confidence[input_valid], prob.max(axis=0)[input_valid], atol=1e-6)


def test_class_values_above_254_are_written_as_uint16(tmp_path):
    image = textured(tmp_path, 64, 64)
    classes = ClassMap.from_list([{"value": 0}, {"value": 255}, {"value": 1000}])
    run(stand_in(classes=classes), image, tmp_path / "out.tif")
    with rasterio.open(tmp_path / "out.tif") as dst:
        assert dst.dtypes[0] == "uint16" and dst.nodata == 65535
        assert set(np.unique(dst.read(1))) <= {0, 255, 1000}


def test_resolution_mismatch_warns_and_can_resample_to_training(tmp_path):
    image = textured(tmp_path, 96, 96)  # 10 m pixels
    package = stand_in(resolution=(20.0, 20.0), crs=UTM33N)
    events = run(package, image, tmp_path / "warned.tif")
    assert any(isinstance(e, WarningEvent) and "trained on 20" in e.message for e in events)
    run(package, image, tmp_path / "resampled.tif", resample_to_training=True)
    with rasterio.open(tmp_path / "resampled.tif") as dst, rasterio.open(image) as src:
        assert dst.res == (20.0, 20.0) and dst.shape == (48, 48) and dst.crs == src.crs
        assert np.allclose(dst.bounds, src.bounds)
    assert not any(isinstance(e, WarningEvent) for e in run(stand_in(resolution=(11.0, 11.0)), image, tmp_path / "ok.tif"))


# --- extents -----------------------------------------------------------------------------------------------------


def test_bbox_in_another_crs_predicts_only_the_covering_window(tmp_path):
    image = textured(tmp_path, 192, 192)
    package = stand_in()
    run(package, image, tmp_path / "whole.tif")
    with rasterio.open(image) as src:  # pixels 40..140 (cols) × 30..130 (rows), given in WGS 84
        inner = rasterio.windows.bounds(Window(40, 30, 100, 100), src.transform)
        box = transform_bounds(src.crs, "EPSG:4326", *inner)
    run(package, image, tmp_path / "part.tif", bbox=box, bbox_crs="EPSG:4326")
    with rasterio.open(image) as src, rasterio.open(tmp_path / "part.tif") as dst:
        win = rasterio.windows.from_bounds(*dst.bounds, transform=src.transform).round_offsets().round_lengths()
        assert dst.crs == src.crs and dst.res == src.res
        assert win.col_off <= 40 and win.row_off <= 30 and win.col_off + win.width >= 140
        assert win.width <= 106 and win.height <= 106  # reprojected box: a few pixels of margin at most
        whole = read(tmp_path / "whole.tif")[0][win.toslices()]
        assert (read(tmp_path / "part.tif")[0] == whole).mean() > 0.99


def test_polygon_in_another_crs_masks_pixels_outside(tmp_path):
    image = textured(tmp_path, 128, 128)
    with rasterio.open(image) as src:
        x0, y0 = src.transform * (20, 20)
        x1, y1 = src.transform * (100, 100)
    triangle = {"type": "Polygon", "coordinates": [[(x0, y0), (x1, y0), (x0, y1), (x0, y0)]]}
    feature = {"type": "Feature", "properties": {}, "geometry": transform_geom(UTM33N, "EPSG:4326", triangle)}
    run(stand_in(), image, tmp_path / "tri.tif", polygon=feature, polygon_crs="EPSG:4326")
    with rasterio.open(tmp_path / "tri.tif") as dst:
        assert abs(dst.height - 80) <= 1 and abs(dst.width - 80) <= 1
        c = dst.read(1)
        back = transform_geom("EPSG:4326", UTM33N, feature["geometry"])  # the triangle as predict() placed it
        inside = rasterio.features.geometry_mask([back], c.shape, dst.transform, invert=True)
    assert inside.mean() > 0.45
    assert (c[~inside] == 255).all() and (c[inside] != 255).all()


@pytest.mark.parametrize("extent", ["bbox", "polygon"])
def test_extent_outside_the_raster_is_refused(tmp_path, extent):
    image = textured(tmp_path, 64, 64)
    far = (10.0, 50.0, 10.1, 50.1)  # lon/lat in Germany; the raster lies in the Baltic Sea's UTM zone 33 north
    settings = {"bbox": far, "bbox_crs": "EPSG:4326"} if extent == "bbox" else {
        "polygon": {"type": "Polygon", "coordinates": [[(10, 50), (10.1, 50), (10.1, 50.1), (10, 50)]]},
        "polygon_crs": "EPSG:4326",
    }  # fmt: skip
    with pytest.raises(PredictionError, match="outside the raster"):
        run(stand_in(), image, tmp_path / "out.tif", **settings)
    assert leftovers(tmp_path, {"image.tif"}) == []


# --- bad input -----------------------------------------------------------------------------------------------------


def test_output_same_as_input_is_refused_before_any_work(tmp_path):
    image = textured(tmp_path, 64, 64)
    with pytest.raises(PredictionError, match="input raster itself"):
        predict(stand_in(), image, tmp_path / "." / "image.tif", PredictConfig(device="cpu"))
    with pytest.raises(PredictionError, match="same file"):
        predict(stand_in(), image, tmp_path / "a.tif", PredictConfig(probabilities=str(tmp_path / "a.tif")))


def test_output_folder_missing_or_not_writable_is_refused(tmp_path, monkeypatch):
    image = textured(tmp_path, 64, 64)
    with pytest.raises(PredictionError, match="does not exist"):
        predict(stand_in(), image, tmp_path / "nowhere" / "out.tif")
    locked = tmp_path / "locked"
    locked.mkdir()
    locked.chmod(0o500)
    real_access = __import__("os").access
    monkeypatch.setattr("os.access", lambda p, mode: False if Path(p) == locked else real_access(p, mode))  # root
    with pytest.raises(PredictionError, match="not writable"):
        predict(stand_in(), image, locked / "out.tif")


def test_band_count_mismatch_is_refused(tmp_path):
    image = textured(tmp_path, 64, 64)
    with pytest.raises(PackageError, match="needs 5 bands but the raster has 4"):
        run(stand_in(bands=5), image, tmp_path / "out.tif")
    assert leftovers(tmp_path, {"image.tif"}) == []


def test_all_nodata_raster_gives_all_nodata_output_and_a_warning(tmp_path):
    image = write_raster(tmp_path / "empty.tif", np.full((4, 80, 80), -9999, np.float32), nodata=-9999)
    events = run(stand_in(), image, tmp_path / "out.tif", probabilities=str(tmp_path / "p.tif"))
    assert any(isinstance(e, WarningEvent) and "all nodata" in e.message for e in events)
    assert isinstance(events[-1], FinishedEvent) and events[-1].summary["windows_run"] == 0
    assert (read(tmp_path / "out.tif") == 255).all() and (read(tmp_path / "p.tif") == -1).all()


def test_disk_full_while_writing_leaves_nothing(tmp_path, monkeypatch):
    image = textured(tmp_path, 96, 96)

    def full_disk(self, *args, **kwargs):
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(rasterio.io.DatasetWriter, "write", full_disk)
    with pytest.raises(PredictionError, match="disk is full"):
        run(stand_in(), image, tmp_path / "out.tif", probabilities=str(tmp_path / "p.tif"), confidence=True)
    assert leftovers(tmp_path, {"image.tif"}) == []


def test_cancel_midway_leaves_nothing_and_output_appears_only_when_complete(tmp_path):
    image = textured(tmp_path, 192, 192)
    cancel = threading.Event()
    out = tmp_path / "out.tif"
    events = []
    for event in predict(stand_in(), image, out, PredictConfig(device="cpu", batch_size=2), cancel):
        events.append(event)
        if isinstance(event, ProgressEvent) and event.done >= 4:
            assert not out.exists()
            cancel.set()
    assert isinstance(events[-1], CancelledEvent)
    assert leftovers(tmp_path, {"image.tif"}) == []


# --- config ---------------------------------------------------------------------------------------------------------


def test_config_round_trips_and_rejects_bad_values():
    config = PredictConfig(overlap=25, bbox=(1, 2, 3, 4), bbox_crs="EPSG:4326", confidence=True)
    assert PredictConfig.from_dict(config.to_dict()) == PredictConfig(
        overlap=25, bbox=(1.0, 2.0, 3.0, 4.0), bbox_crs="EPSG:4326", confidence=True
    )
    for bad in ({"overlap": 95}, {"batch_size": 0}, {"bbox": (3, 2, 1, 4)}, {"polygon": {"type": "Point"}}):
        with pytest.raises(ConfigError):
            PredictConfig(**bad).validate()
    with pytest.raises(ConfigError, match="unknown setting"):
        PredictConfig.from_dict({"tile": 3})


def test_window_starts_cover_the_extent_with_the_last_window_shifted_inward():
    assert window_starts(0, 300, 300, 64, 32) == [0, 32, 64, 96, 128, 160, 192, 224, 236]
    assert window_starts(10, 40, 300, 64, 32) == [0]  # short extent: one window, centred, kept inside
    assert window_starts(0, 40, 40, 64, 32) == [0]  # raster shorter than a tile: read boundless


# --- the model seam --------------------------------------------------------------------------------------------------


def test_a_runner_without_torch_predicts_where_torch_cannot_be_imported(tmp_path):
    """predict() takes any runner (package facts + probabilities); with torch unimportable it still runs."""
    image = textured(tmp_path, 80, 70)
    code = f"""
import sys
sys.modules["torch"] = None  # import torch now fails
import numpy as np
from geofm.core.classes import ClassMap
from geofm.core.config import PredictConfig
from geofm.core.predict import predict

class Runner:
    classes = ClassMap.from_list([{{"value": 1}}, {{"value": 2}}])
    tile_size, in_channels, normalisation, stats, resolution, crs, path, metadata, device = (
        32, 4, "global", None, None, None, "", {{}}, "numpy")

    def probabilities(self, raw, valid):
        first = 1 / (1 + np.exp(-raw[:, 0]))
        return np.stack([first, 1 - first], axis=1).astype(np.float32)

events = list(predict(Runner(), {str(image)!r}, {str(tmp_path / "out.tif")!r}, PredictConfig(device="cpu")))
print(type(events[-1]).__name__, events[-1].summary["device"], "torch" in sys.modules and sys.modules["torch"])
"""
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
    assert done.stdout.split() == ["FinishedEvent", "numpy", "None"]
    with rasterio.open(image) as src:
        first = src.read(1)
    np.testing.assert_array_equal(read(tmp_path / "out.tif")[0], np.where(first > 0, 1, 2))


def test_prediction_uses_the_training_mixed_precision_policy(tmp_path, monkeypatch):
    """The torch runner autocasts with core.device.amp_dtype, the function training uses (bf16 where supported)."""
    import geofm.core.inference.torch_runner as torch_runner

    image = textured(tmp_path, 64, 64)
    package = stand_in()
    seen = []
    package.model.register_forward_hook(lambda module, args, out: seen.append(out.dtype))
    run(package, image, tmp_path / "fp32.tif", probabilities=str(tmp_path / "fp32_p.tif"))
    assert set(seen) == {torch.float32}  # CPU: no autocast
    monkeypatch.setattr(torch_runner, "amp_dtype", lambda device: torch.bfloat16)  # as on a bf16 GPU
    seen.clear()
    run(package, image, tmp_path / "bf16.tif", probabilities=str(tmp_path / "bf16_p.tif"))
    assert set(seen) == {torch.bfloat16}
    np.testing.assert_allclose(read(tmp_path / "bf16_p.tif"), read(tmp_path / "fp32_p.tif"), atol=0.05)


def test_the_class_map_travels_with_its_names_and_colours(tmp_path):
    """A .qml beside the class raster: QGIS shows names and colours to whoever opens the file from disk."""
    img = write_raster(tmp_path / "scene.tif", np.ones((4, 64, 64), np.float32))
    package = stand_in(bands=4)
    events = list(predict(package, img, tmp_path / "out.tif", PredictConfig(device="cpu")))
    style = (tmp_path / "out.qml").read_text()
    assert events[-1].summary["style"] == str(tmp_path / "out.qml")
    for c in CLASSES.classes:
        assert f'value="{c.value}" color="{c.colour}"' in style and f'label="{c.name}"' in style
    with pytest.raises(PredictionError, match="style file would replace the input raster's style"):
        predict(package, img, tmp_path / "scene.tiff", PredictConfig(device="cpu"))
