"""geofm: train segmentation models on your own rasters from QGIS (plugin entry point)."""


def classFactory(iface):  # noqa: N802 - the name QGIS looks for
    """Create the plugin; QGIS calls this when it loads geofm."""
    from .geofm_qgis.plugin import GeoFMPlugin

    return GeoFMPlugin(iface)
