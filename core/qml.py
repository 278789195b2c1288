"""A QGIS layer style (``.qml``) written beside a class raster, so that a colleague who opens the GeoTIFF from disk
sees the class names and colours, not a 0…255 legend. QGIS loads ``<name>.qml`` beside a raster by itself."""

from __future__ import annotations

import os
from pathlib import Path
from xml.sax.saxutils import quoteattr

from .classes import ClassMap
from .fileio import atomic_path


def style_path(raster: str | os.PathLike) -> Path:
    """``classes.tif`` → ``classes.qml`` beside it."""
    return Path(raster).with_suffix(".qml")


def paletted_qml(classes: ClassMap) -> str:
    """A paletted renderer on band 1: one entry per class value, in its colour, labelled with its name."""
    entries = "\n".join(
        f"        <paletteEntry value={quoteattr(str(v))} color={quoteattr(c)} alpha=\"255\" label={quoteattr(n)}/>"
        for v, n, c in zip(classes.values, classes.names, classes.colours))
    return f"""<!DOCTYPE qgis PUBLIC 'http://mrcc.com/qgis.dtd' 'SYSTEM'>
<qgis version="3.22.0" styleCategories="Symbology">
  <pipe>
    <rasterrenderer type="paletted" band="1" opacity="1" alphaBand="-1" nodataColor="">
      <rasterTransparency/>
      <colorPalette>
{entries}
      </colorPalette>
    </rasterrenderer>
  </pipe>
</qgis>
"""


def write_style(raster: str | os.PathLike, classes: ClassMap) -> Path:
    """Write the class raster's ``.qml`` beside it, atomically; returns its path."""
    path = style_path(raster)
    with atomic_path(path) as tmp:
        tmp.write_text(paletted_qml(classes), encoding="utf-8")
    return path
