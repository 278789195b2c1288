"""Writers for small, real GeoTIFF fixtures (real CRSs and transforms), used across the tests."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import rasterio
from rasterio.transform import from_origin

UTM33N = "EPSG:32633"


def write_raster(
    path: Path,
    data: np.ndarray,
    *,
    crs: str = UTM33N,
    origin: tuple[float, float] = (500_000.0, 6_000_000.0),
    res: float = 10.0,
    nodata: float | None = None,
    colormap: dict[int, tuple[int, int, int, int]] | None = None,
) -> Path:
    """Write ``data`` ([C,H,W] or [H,W]) as a tiled GeoTIFF whose top-left corner is ``origin`` (metres)."""
    arr = data if data.ndim == 3 else data[None]
    profile = {
        "driver": "GTiff",
        "width": arr.shape[2],
        "height": arr.shape[1],
        "count": arr.shape[0],
        "dtype": arr.dtype,
        "crs": crs,
        "transform": from_origin(origin[0], origin[1], res, res),
        "nodata": nodata,
    }
    with rasterio.open(path, "w", **profile) as dst:
        dst.write(arr)
        if colormap:
            dst.write_colormap(1, colormap)
    return path


def separable_scene(tmp: Path, size: int = 96, bands: int = 4, seed: int = 0) -> tuple[Path, Path]:
    """An image whose class is readable from its bands (3 classes in vertical stripes), plus its label raster.

    Label values are 10, 20, 30 (not 0..K-1, as real data rarely is); a nodata border of 4 pixels in both.
    """
    rng = np.random.default_rng(seed)
    labels = np.full((size, size), 10, dtype=np.uint8)
    labels[:, size // 3 : 2 * size // 3] = 20
    labels[:, 2 * size // 3 :] = 30
    image = rng.normal(100, 5, (bands, size, size)).astype(np.float32)
    for value, shift in ((10, 0.0), (20, 60.0), (30, 120.0)):
        image[0][labels == value] += shift
        image[-1][labels == value] -= shift / 2
    image[:, :4, :] = -9999
    labels[:4, :] = 255
    img = write_raster(tmp / "image.tif", image, nodata=-9999)
    lbl = write_raster(tmp / "labels.tif", labels, nodata=255)
    return img, lbl


def retagged_scene(tmp: Path, size: int = 128) -> tuple[Path, Path]:
    """:func:`separable_scene` on 1 km pixels, with its labels tagged ED50 / UTM 33N (EPSG:23033) instead of the
    image's WGS 84 / UTM 33N: the same grid read in both CRSs lies about 210 m (0.21 px) apart, a difference training
    tolerates with a warning. Returns (image, labels)."""
    img, lbl = separable_scene(tmp, size=size)
    with rasterio.open(img) as src:
        image, image_nodata = src.read(), src.nodata
    with rasterio.open(lbl) as src:
        labels, nodata = src.read(1), src.nodata
    return (write_raster(tmp / "image_1km.tif", image, nodata=image_nodata, res=1000.0),
            write_raster(tmp / "labels_23033.tif", labels, crs="EPSG:23033", nodata=nodata, res=1000.0))


def write_polygons(
    path: Path, features: list[tuple[list[tuple[float, float]], dict]], *, crs: str = UTM33N, driver: str = "GPKG"
) -> Path:
    """Write polygons (exterior ring as (x, y) pairs in ``crs`` axis order x=east/lon) with attributes, via OGR."""
    from osgeo import ogr, osr

    srs = osr.SpatialReference()
    srs.SetFromUserInput(crs)
    srs.SetAxisMappingStrategy(osr.OAMS_TRADITIONAL_GIS_ORDER)
    ds = ogr.GetDriverByName(driver).CreateDataSource(str(path))
    layer = ds.CreateLayer("labels", srs, ogr.wkbPolygon)
    kinds = {int: ogr.OFTInteger, float: ogr.OFTReal, str: ogr.OFTString}
    for name, value in features[0][1].items():
        layer.CreateField(ogr.FieldDefn(name, kinds[type(value)]))
    for ring, attrs in features:
        feature = ogr.Feature(layer.GetLayerDefn())
        wkt = "POLYGON((" + ",".join(f"{x} {y}" for x, y in [*ring, ring[0]]) + "))"
        feature.SetGeometry(ogr.CreateGeometryFromWkt(wkt))
        for name, value in attrs.items():
            feature.SetField(name, value)
        layer.CreateFeature(feature)
    ds = None  # flush to disk
    return path

