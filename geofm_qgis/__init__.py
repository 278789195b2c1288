"""The QGIS layer of geofm: dialogs, tasks, layers and the Processing provider. No ML logic lives here."""
