"""Minimal plugin object; menus, dialogs and tasks come with the plugin issue."""


class GeoFMPlugin:
    """What QGIS loads: adds and removes geofm's GUI."""

    def __init__(self, iface) -> None:
        self.iface = iface

    def initGui(self) -> None:  # noqa: N802 - QGIS API name
        """Called by QGIS when the plugin is enabled."""

    def unload(self) -> None:
        """Called by QGIS when the plugin is disabled."""
