"""geofm's engine: pure Python (torch, torchvision, rasterio, numpy). It never imports QGIS or Qt."""
