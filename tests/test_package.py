"""Model package: round trip, malicious pickles refused, format versions, damaged files, band checks."""

from __future__ import annotations

import io
import json
import os
import pickle
import zipfile
from pathlib import Path

import pytest
import torch

from geofm.core.classes import ClassMap
from geofm.core.errors import PackageError
from geofm.core.inference.runner import check_bands
from geofm.core.model import build_model
from geofm.core.normalise import BandStats
from geofm.core.package import (
    FORMAT_VERSION,
    load_package,
    package_metadata,
    save_package,
)

CLASSES = ClassMap.from_list(
    [{"value": 1, "name": "water", "colour": "#0000ff"}, {"value": 5, "name": "forest", "colour": "#00ff00"},
     {"value": 9, "name": "urban", "colour": "#ff0000"}]
)  # fmt: skip
STATS = BandStats(mean=[1.0, 2.0, 3.0, 4.0], std=[0.5, 0.5, 1.0, 2.0])


class Evil:
    """Unpickling this runs a shell command that leaves a marker file."""

    def __init__(self, marker: Path):
        self.marker = marker

    def __reduce__(self):
        return (os.system, (f"touch {self.marker}",))


def metadata(**changes) -> dict:
    args = dict(
        classes=CLASSES,
        band_count=4,
        band_names=["blue", "green", "red", "nir"],
        tile_size=64,
        normalisation="global",
        stats=STATS,
        resolution=(28.5, 28.5),
        crs='PROJCS["test"]',
        train_config={"epochs": 3, "lr": 1e-4},
        metrics={"mean_iou": 0.5},
    )
    return package_metadata(**{**args, **changes})


@pytest.fixture(scope="module")
def model() -> torch.nn.Module:
    torch.manual_seed(0)
    net = build_model("resnet18", "simple", in_channels=4, num_classes=3)
    net.train()
    net(torch.randn(2, 4, 64, 64))  # move the batch-norm statistics away from their defaults
    return net.eval()


@pytest.fixture(scope="module")
def package_path(model, tmp_path_factory) -> Path:
    path = tmp_path_factory.mktemp("pkg") / "model.geofm"
    save_package(path, model, metadata())
    return path


def rewrite(src: Path, dst: Path, **members: bytes | None) -> Path:
    """Copy a package, replacing (bytes) or dropping (None) members."""
    with zipfile.ZipFile(src) as zin, zipfile.ZipFile(dst, "w") as zout:
        for name in zin.namelist():
            data = members[name] if name in members else zin.read(name)
            if data is not None:
                zout.writestr(name, data)
    return dst


def edited_metadata(src: Path, dst: Path, **changes) -> Path:
    meta = json.loads(zipfile.ZipFile(src).read("metadata.json"))
    meta.update(changes)
    return rewrite(src, dst, **{"metadata.json": json.dumps(meta).encode()})


def test_round_trip(model, package_path) -> None:
    assert [p.name for p in package_path.parent.iterdir()] == ["model.geofm"]  # no temporary file left
    pkg = load_package(package_path)
    assert not pkg.model.training
    assert pkg.classes == CLASSES and pkg.stats == STATS and pkg.normalisation == "global"
    assert (pkg.tile_size, pkg.in_channels, pkg.resolution, pkg.crs) == (64, 4, (28.5, 28.5), 'PROJCS["test"]')
    meta = pkg.metadata
    assert meta["format_version"] == FORMAT_VERSION
    assert meta["architecture"] == model.architecture
    assert meta["bands"] == {"count": 4, "names": ["blue", "green", "red", "nir"]}
    assert meta["train_config"] == {"epochs": 3, "lr": 1e-4} and meta["metrics"] == {"mean_iou": 0.5}
    assert set(meta["versions"]) >= {"geofm", "torch", "torchvision", "rasterio"}
    x = torch.randn(1, 4, 64, 64)
    with torch.no_grad():
        torch.testing.assert_close(pkg.model(x), model(x))


def test_per_tile_without_stats(model, tmp_path) -> None:
    path = tmp_path / "m.geofm"
    save_package(path, model, metadata(normalisation="per_tile", stats=None, resolution=None, crs=None))
    pkg = load_package(path)
    assert pkg.normalisation == "per_tile" and pkg.stats is None and pkg.resolution is None and pkg.crs is None


def test_metadata_must_fit_the_model(model, tmp_path) -> None:
    with pytest.raises(PackageError, match="does not match the model"):
        save_package(tmp_path / "m.geofm", model, metadata(band_count=5))
    assert not list(tmp_path.iterdir())


@pytest.mark.parametrize("how", ["torch.save", "raw pickle"])
def test_malicious_pickle_is_refused(package_path, tmp_path, how) -> None:
    marker = tmp_path / "marker"
    if how == "torch.save":
        buffer = io.BytesIO()
        torch.save({"backbone.conv1.weight": Evil(marker)}, buffer)
        payload = buffer.getvalue()
    else:
        payload = pickle.dumps(Evil(marker), protocol=2)
    evil = rewrite(package_path, tmp_path / "evil.geofm", **{"weights.pt": payload})
    with pytest.raises(PackageError, match="refused") as err:
        load_package(evil)
    assert "evil.geofm" in str(err.value)
    assert not marker.exists()


def test_newer_format_names_the_geofm_version(package_path, tmp_path) -> None:
    path = edited_metadata(package_path, tmp_path / "new.geofm", format_version=FORMAT_VERSION + 1,
                           versions={"geofm": "9.1.0"})  # fmt: skip
    with pytest.raises(PackageError, match=f"format version {FORMAT_VERSION + 1}") as err:
        load_package(path)
    assert "update geofm to version 9.1.0" in str(err.value)


@pytest.mark.parametrize("version", [0, "1", None, True])
def test_unknown_format_version(package_path, tmp_path, version) -> None:
    path = edited_metadata(package_path, tmp_path / "odd.geofm", format_version=version)
    with pytest.raises(PackageError, match="unknown package format version"):
        load_package(path)


def test_not_a_zip(tmp_path) -> None:
    path = tmp_path / "notes.geofm"
    path.write_text("hello")
    with pytest.raises(PackageError, match="notes.geofm") as err:
        load_package(path)
    assert "not a geofm model package (.geofm) or ONNX model (.onnx)" in str(err.value)
    assert "zip file" not in str(err.value), "the analyst does not need to know a package is a zip"
    with pytest.raises(PackageError, match="does not exist"):
        load_package(tmp_path / "missing.geofm")


@pytest.mark.parametrize("member", ["weights.pt", "metadata.json"])
def test_missing_member(package_path, tmp_path, member) -> None:
    path = rewrite(package_path, tmp_path / "part.geofm", **{member: None})
    with pytest.raises(PackageError, match=f"{member} missing"):
        load_package(path)


def test_damaged_members(package_path, tmp_path) -> None:
    weights = zipfile.ZipFile(package_path).read("weights.pt")
    path = rewrite(package_path, tmp_path / "cut.geofm", **{"weights.pt": weights[: len(weights) // 2]})
    with pytest.raises(PackageError, match="damaged"):
        load_package(path)
    path = rewrite(package_path, tmp_path / "json.geofm", **{"metadata.json": b"{not json"})
    with pytest.raises(PackageError, match="damaged"):
        load_package(path)
    path = edited_metadata(
        package_path,
        tmp_path / "arch.geofm",
        architecture={"backbone": "resnet18", "decoder": "fpn", "in_channels": 4, "num_classes": 3},
    )
    with pytest.raises(PackageError, match="inconsistent"):
        load_package(path)


def test_check_bands(package_path) -> None:
    pkg = load_package(package_path)
    check_bands(pkg, 4, "scene.tif")
    with pytest.raises(PackageError) as err:
        check_bands(pkg, 5, "scene.tif")
    text = str(err.value)
    assert "scene.tif" in text and "needs 4 bands" in text and "has 5" in text and "blue, green, red, nir" in text
