"""Shared fixtures: small real GeoTIFFs written by code, and the bundled real scene."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")

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
