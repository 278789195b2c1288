"""ONNX export: onnxruntime gives torch's probabilities on the real scene, Deepness can read the metadata, prediction
runs without torch, and bad inputs get plain errors that leave nothing behind."""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import onnx
import pytest
import rasterio
import torch
from rasterio.windows import Window

from geofm.core.classes import ClassMap
from geofm.core.cli import main
from geofm.core.errors import ConfigError, PackageError
from geofm.core.events import FinishedEvent
from geofm.core.model import build_model
from geofm.core.normalise import compute_stats, normalise
from geofm.core.onnx_export import OPSET, export_onnx
from geofm.core.onnx_model import OnnxModel, read_geofm_metadata, read_onnx_metadata
from geofm.core.package import load_package, package_metadata, save_package
from geofm.core.predict import PredictConfig, predict
from geofm.core.raster import open_raster, read_window

CLASSES = ClassMap.from_list(
    [{"value": 1, "name": "developed", "colour": "#ff0000"}, {"value": 2, "name": "agriculture", "colour": "#ffff00"},
     {"value": 5, "name": "forest", "colour": "#00aa00"}, {"value": 7, "name": "water", "colour": "#0000ff"}]
)  # fmt: skip
NODATA = -99999.0
TILE = 64
# windows (row, col) of the 489 × 443 px scene: a fully valid one and four that are partly nodata
WINDOWS = [(100, 200), (0, 0), (379, 425), (200, 0), (0, 425)]


@pytest.fixture(scope="module")
def scene(scene_image):
    with open_raster(scene_image) as src:
        data, valid = read_window(src, Window(0, 0, src.width, src.height))
        return data, valid, src.crs.to_wkt(), src.res, src.transform


@pytest.fixture(scope="module")
def network():
    """resnet18 + FPN + the per-pixel spectral branch (the shipped defaults) for the scene's 5 bands, batch-norm
    statistics moved away from their defaults."""
    torch.manual_seed(0)
    net = build_model("resnet18", "fpn", in_channels=5, num_classes=len(CLASSES), spectral_branch=True)
    net.train()
    with torch.no_grad():
        net(torch.randn(4, 5, TILE, TILE))
    return net.eval()


@pytest.fixture(scope="module", params=["global", "per_tile"])
def exported(request, tmp_path_factory, network, scene):
    """(package, onnx) paths for one normalisation mode; global statistics with 2/98 % clipping."""
    data, valid, crs, res, _ = scene
    folder = tmp_path_factory.mktemp(request.param)
    stats = compute_stats([(data, valid)], percentiles=(2, 98))
    package = folder / "scene.geofm"
    save_package(package, network, package_metadata(
        classes=CLASSES, band_count=5, band_names=["b1", "b2", "b3", "b4", "b5"], tile_size=TILE,
        normalisation=request.param, stats=stats, resolution=res, crs=crs, metrics={"mean_iou": 0.25}))
    return package, export_onnx(package, folder / "scene.onnx", nodata=NODATA)


def torch_probabilities(package: Path, tiles: list[tuple[np.ndarray, np.ndarray]]) -> np.ndarray:
    """What geofm's torch path computes: normalise (invalid pixels 0), model, softmax."""
    pkg = load_package(package)
    x = np.stack([normalise(d, v, pkg.stats, pkg.normalisation) for d, v in tiles])
    with torch.inference_mode():
        return torch.softmax(pkg.model(torch.from_numpy(x)), dim=1).numpy()


def scene_tiles(scene) -> list[tuple[np.ndarray, np.ndarray]]:
    data, valid = scene[:2]
    return [(data[:, r : r + TILE, c : c + TILE], valid[r : r + TILE, c : c + TILE]) for r, c in WINDOWS]


def test_onnxruntime_equals_torch_on_the_scene_including_nodata(exported, scene):
    package, path = exported
    tiles = scene_tiles(scene)
    assert [round(float(v.mean()), 2) for _, v in tiles][:2] == [1.0, 0.53]  # really valid, really part nodata
    expected = torch_probabilities(package, tiles)
    model = OnnxModel.load(path, "cpu")
    got = model.probabilities(np.stack([np.where(v, d, np.nan) for d, v in tiles]))  # NaN: geofm's convention
    assert got.shape == (len(WINDOWS), len(CLASSES), TILE, TILE) and got.dtype == np.float32
    np.testing.assert_allclose(got, expected, atol=1e-4, rtol=0)
    np.testing.assert_allclose(got.sum(axis=1), 1.0, atol=1e-5)
    # the raw nodata value (as another tool would pass it) is recognised as well: the export was given it
    raw = model.probabilities(np.stack([d for d, _ in tiles]))
    np.testing.assert_allclose(raw, expected, atol=1e-4, rtol=0)


def test_predict_with_the_onnx_equals_predict_with_the_package(exported, scene, scene_image, tmp_path):
    package, path = exported
    transform = scene[4]
    x0, y0 = transform * (0, 0)
    x1, y1 = transform * (150, 130)  # the top-left corner: nodata along two edges
    outputs = {}
    for name, model in (("torch", package), ("onnx", path)):
        config = PredictConfig(device="cpu", bbox=(x0, y1, x1, y0), probabilities=str(tmp_path / f"{name}_p.tif"))
        events = list(predict(model, scene_image, tmp_path / f"{name}.tif", config))
        assert isinstance(events[-1], FinishedEvent)
        with rasterio.open(tmp_path / f"{name}.tif") as c, rasterio.open(tmp_path / f"{name}_p.tif") as p:
            outputs[name] = (c.read(1), p.read(), events[-1].summary)
    (classes_t, probs_t, summary_t), (classes_o, probs_o, summary_o) = outputs["torch"], outputs["onnx"]
    assert summary_o["device"].startswith("onnxruntime") and summary_t["device"] == "cpu"
    assert 0 < summary_o["valid_pixels"] == summary_t["valid_pixels"] < 150 * 130  # nodata stays nodata
    np.testing.assert_allclose(probs_o, probs_t, atol=1e-4, rtol=0)
    np.testing.assert_array_equal(classes_o, classes_t)


def test_metadata_reads_as_deepness_reads_it(exported, scene):
    _, path = exported
    model = onnx.load(str(path))
    assert model.ir_version <= 8 and [o.version for o in model.opset_import if o.domain in ("", "ai.onnx")] == [OPSET]
    dims = lambda value: [d.dim_param or d.dim_value for d in value.type.tensor_type.shape.dim]  # noqa: E731
    assert dims(model.graph.input[0]) == ["batch", 5, TILE, TILE]  # static bands and size, dynamic batch
    assert dims(model.graph.output[0]) == ["batch", len(CLASSES), TILE, TILE]
    # Deepness: meta.custom_metadata_map[key] -> json.loads
    meta = {p.key: json.loads(p.value) for p in model.metadata_props}
    assert meta["model_type"] == "Segmentor"
    names = meta["class_names"]
    assert sorted(int(k) for k in names) == list(range(len(CLASSES)))  # no gaps, although the values are 1, 2, 5, 7
    assert [names[str(i)] for i in range(len(CLASSES))] == CLASSES.names
    assert meta["resolution"] == pytest.approx(2850.0)  # 28.5 m pixels in centimetres
    assert meta["tile_size"] == meta["tiles_size"] == TILE and meta["tiles_overlap"] == 50
    assert meta["seg_thresh"] == 0.0
    assert len(meta["standardization_mean"]) == len(meta["standardization_std"]) == 5
    assert meta["geofm_classes"] == CLASSES.to_list() and meta["geofm_nodata"] == NODATA
    assert meta["geofm_bands"]["names"] == ["b1", "b2", "b3", "b4", "b5"]


def test_deepness_preprocessing_ends_up_feeding_raw_values(exported, scene):
    """Deepness divides tiles (N, H, W, C) by 255, then subtracts standardization_mean and divides by
    standardization_std; with geofm's values the graph receives the raw band values."""
    _, path = exported
    model = OnnxModel.load(path, "cpu")
    meta = {p.key: json.loads(p.value) for p in onnx.load(str(path)).metadata_props}
    raw = np.stack([d for d, _ in scene_tiles(scene)])
    nhwc = raw.transpose(0, 2, 3, 1)
    scaled = np.float32(nhwc * 1.0 / 255.0)
    standardised = (scaled - np.array(meta["standardization_mean"], np.float32)) / np.array(
        meta["standardization_std"], np.float32)
    fed = np.transpose(standardised, (0, 3, 1, 2))
    np.testing.assert_allclose(fed, raw, rtol=1e-6)
    np.testing.assert_allclose(model.probabilities(fed), model.probabilities(raw), atol=1e-4, rtol=0)


def test_geofm_metadata_comes_back_from_the_file(exported):
    package, path = exported
    ours = read_onnx_metadata(path)
    assert ours == {p.key: p.value for p in onnx.load(str(path)).metadata_props}
    back = read_geofm_metadata(path)
    assert {k: v for k, v in back.items() if k != "onnx"} == load_package(package).metadata
    assert back["onnx"]["format"] == 1 and back["onnx"]["nodata"] == NODATA
    model = OnnxModel.load(path, "cpu")
    pkg = load_package(package)
    assert (model.classes, model.stats, model.normalisation, model.tile_size, model.in_channels, model.resolution,
            model.crs) == (pkg.classes, pkg.stats, pkg.normalisation, pkg.tile_size, pkg.in_channels, pkg.resolution,
                           pkg.crs)


def test_dynamic_size_runs_other_window_sizes(network, tmp_path, scene):
    data, valid = scene[:2]
    package = tmp_path / "m.geofm"
    save_package(package, network, package_metadata(classes=CLASSES, band_count=5, tile_size=TILE,
                                                     normalisation="per_tile"))
    path = export_onnx(package, tmp_path / "m.onnx", dynamic_size=True)
    model = OnnxModel.load(path, "cpu")
    assert model.session.get_inputs()[0].shape == ["batch", 5, "height", "width"]
    tile = (data[:, 300:396, 380:460], valid[300:396, 380:460])  # 96 × 80 px, partly nodata
    got = model.probabilities(np.where(tile[1], tile[0], np.nan)[None])
    np.testing.assert_allclose(got, torch_probabilities(package, [tile]), atol=1e-4, rtol=0)


def test_predict_runs_without_torch(exported, scene_image, tmp_path):
    _, path = exported
    out = tmp_path / "classes.tif"
    code = textwrap.dedent(f"""
        import sys
        sys.modules["torch"] = None  # any import of torch now fails
        from geofm.core.cli import main
        status = main(["predict", "--model", {str(path)!r}, "--image", {str(scene_image)!r}, "--out", {str(out)!r},
                       "--overlap", "0"])
        print("STATUS", status, "TORCH", sorted(m for m in sys.modules if m.split(".")[0] in ("torch", "torchvision")
                                                 and sys.modules[m] is not None))
    """)
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300)
    assert "STATUS 0 TORCH []" in result.stdout, result.stdout + result.stderr[-3000:]
    with rasterio.open(out) as dst:
        assert dst.read(1).shape == (443, 489) and set(np.unique(dst.read(1))) <= {*CLASSES.values, 255}


def test_cli_export_then_predict_with_runtime_onnx(exported, scene, scene_image, tmp_path, capsys):
    package, _ = exported
    out = tmp_path / "cli.onnx"
    assert main(["export", "--model", str(package), "--out", str(out)]) == 0
    assert "ONNX model written to" in capsys.readouterr().out and read_geofm_metadata(out)["tile_size"] == TILE
    transform = scene[4]
    x0, y0 = transform * (300, 300)
    x1, y1 = transform * (420, 400)
    box = [str(v) for v in (x0, y1, x1, y0)]
    common = ["--image", str(scene_image), "--device", "cpu", "--bbox", *box]
    assert main(["predict", "--model", str(package), "--runtime", "onnx", "--out", str(tmp_path / "a.tif"), *common]) == 0
    assert main(["predict", "--model", str(out), "--out", str(tmp_path / "b.tif"), *common]) == 0
    with rasterio.open(tmp_path / "a.tif") as a, rasterio.open(tmp_path / "b.tif") as b:
        np.testing.assert_array_equal(a.read(), b.read())
    assert main(["predict", "--model", str(out), "--runtime", "torch", "--out", str(tmp_path / "c.tif"), *common]) == 1
    assert "runs with onnxruntime, not torch" in capsys.readouterr().err
    assert main(["info", "--model", str(out)]) == 0
    assert "ONNX model (exported by geofm)" in capsys.readouterr().out


# --- bad inputs --------------------------------------------------------------------------------------------------


def test_export_refuses_a_file_that_is_not_a_package(tmp_path, capsys):
    notes = tmp_path / "notes.geofm"
    notes.write_text("hello")
    with pytest.raises(PackageError, match="notes.geofm"):
        export_onnx(notes, tmp_path / "m.onnx")
    assert main(["export", "--model", str(tmp_path / "missing.geofm"), "--out", str(tmp_path / "m.onnx")]) == 1
    err = capsys.readouterr().err
    assert "missing.geofm: the model package does not exist" in err and "Traceback" not in err
    assert sorted(p.name for p in tmp_path.iterdir()) == ["notes.geofm"]


def test_export_refuses_bad_output_paths(exported, tmp_path):
    package, _ = exported
    folder = tmp_path / "models.onnx"
    folder.mkdir()
    cases = [(folder, "is a folder"), (package, "input package itself"), (tmp_path / "m.zip", "does not end in .onnx"),
             (tmp_path / "nowhere" / "m.onnx", "folder does not exist")]
    for out, problem in cases:
        with pytest.raises(ConfigError, match=problem) as err:
            export_onnx(package, out)
        assert "Fix:" in str(err.value)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["models.onnx"] and not any(folder.iterdir())


@pytest.mark.filterwarnings("ignore::DeprecationWarning")  # torch's note on its TorchScript exporter
def test_predict_refuses_an_onnx_without_geofm_metadata(tmp_path, scene_image, capsys):
    foreign = tmp_path / "foreign.onnx"
    with torch.no_grad():
        torch.onnx.export(torch.nn.Conv2d(5, 2, 1), (torch.zeros(1, 5, 8, 8),), str(foreign), dynamo=False)
    with pytest.raises(PackageError, match="no geofm metadata") as err:
        list(predict(foreign, scene_image, tmp_path / "out.tif"))
    assert "foreign.onnx" in str(err.value) and "geofm export" in str(err.value)
    text = tmp_path / "notes.onnx"
    text.write_text("not a model at all\n")
    assert main(["predict", "--model", str(text), "--image", str(scene_image), "--out", str(tmp_path / "o.tif")]) == 1
    assert "notes.onnx: this is not a readable ONNX model" in capsys.readouterr().err
    assert not (tmp_path / "out.tif").exists() and not (tmp_path / "o.tif").exists()


def test_missing_onnxruntime_or_onnx_says_what_to_install(exported, scene_image, tmp_path, monkeypatch):
    package, path = exported
    monkeypatch.setitem(sys.modules, "onnxruntime", None)
    with pytest.raises(ConfigError, match="pip install onnxruntime"):
        list(predict(path, scene_image, tmp_path / "out.tif"))
    monkeypatch.setitem(sys.modules, "onnx", None)
    with pytest.raises(ConfigError, match="pip install onnx"):
        export_onnx(package, tmp_path / "m.onnx")
    assert not list(tmp_path.iterdir())
