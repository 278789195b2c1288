"""Shared fixtures: small real GeoTIFFs written by code, and the bundled real scene."""

from __future__ import annotations

import gc
import os
import sys
from pathlib import Path

import pytest

os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")
# As in the plugin (geofm_qgis.engine_task.preload): triton, which CUDA builds of torch bring and geofm never
# uses, clashes with the LLVM that QGIS's OpenGL stack loads.
sys.modules.setdefault("triton", None)

REPO = Path(__file__).resolve().parent.parent
SCENE = REPO / "data" / "nc_landsat7"


@pytest.fixture(scope="session")
def scene_image() -> Path:
    """The real Landsat-7 scene: 5 bands, float32, nodata -99999, EPSG:32119."""
    return SCENE / "landsat_multiband.tif"


@pytest.fixture(scope="session")
def scene_labels() -> Path:
    """The real 7-class land-cover map: float32, nodata -99999, tagged EPSG:3358."""
    return SCENE / "strata.tif"


@pytest.fixture(scope="session")
def scene_polygons() -> Path:
    """34 training polygons with a class field ``label``."""
    return SCENE / "landsat96_polygons.shp"


@pytest.fixture(scope="session", autouse=True)
def _collect_qt_wrappers_while_qgis_lives():
    """Collect Python wrappers of Qt/QGIS objects before pytest-qgis shuts QGIS down: collected afterwards, during
    pytest's final garbage collection, they crash the interpreter at exit (exit status 139 after a green run)."""
    yield
    gc.collect()


@pytest.fixture(autouse=True)
def _forget_remembered_settings():
    """Settings a dialog remembers (QgsSettings, in the repository's test profile) must not leak into the next test."""
    yield
    if "qgis.core" in sys.modules:
        from qgis.core import QgsSettings

        QgsSettings().remove("geofm")


@pytest.fixture(scope="session")
def resnet18_weights(tmp_path_factory) -> Path:
    """A torchvision resnet18 state dict (fc included) written by the test, standing in for ImageNet weights
    (this machine cannot download them)."""
    import torch
    import torchvision

    torch.manual_seed(0)
    path = tmp_path_factory.mktemp("weights") / "resnet18.pth"
    torch.save(torchvision.models.resnet18().state_dict(), path)
    return path


@pytest.fixture
def plugin(qgis_iface, qgis_new_project):
    """geofm loaded into the test QGIS as QGIS loads it (classFactory, initGui), unloaded afterwards."""
    import geofm

    instance = geofm.classFactory(qgis_iface)
    instance.initGui()
    yield instance
    instance.unload()


@pytest.fixture
def provider(qgis_iface, qgis_processing, qgis_new_project):
    """geofm's Processing provider, registered as QGIS registers it when the plugin loads."""
    import geofm

    instance = geofm.classFactory(qgis_iface)
    instance.initGui()
    yield instance.provider
    instance.unload()
