"""Tile windows over a raster, and skipping tiles without a labelled pixel."""

from __future__ import annotations

from collections.abc import Callable, Iterable

import numpy as np
from rasterio.windows import Window

from .errors import ConfigError, GridError


def _offsets(size: int, tile: int, stride: int) -> list[int]:
    offsets = list(range(0, size - tile + 1, stride))
    if offsets[-1] != size - tile:
        offsets.append(size - tile)  # the edge window, shifted inward so the last pixels are covered
    return offsets


def tile_windows(width: int, height: int, tile: int, stride: int | None = None, area: Window | None = None) -> list[Window]:
    """Windows of ``tile``×``tile`` pixels every ``stride`` pixels (default tile // 2), covering every pixel.

    ``area`` limits the windows to a part of the raster (e.g. the overlap with the labels), in pixels.
    Row-major order: left to right, then top to bottom.
    """
    stride = tile // 2 if stride is None else stride
    if tile < 1 or not 1 <= stride <= tile:
        raise ConfigError(
            f"tile size {tile} px with stride {stride} px is not usable",
            fix="use a tile size of at least 1 px and a stride between 1 px and the tile size (tile / 2 is usual)",
        )
    col0, row0 = (0, 0) if area is None else (max(0, int(area.col_off)), max(0, int(area.row_off)))
    col1, row1 = (width, height) if area is None else (
        min(width, int(area.col_off + area.width)), min(height, int(area.row_off + area.height))
    )
    w, h = col1 - col0, row1 - row0
    if w < tile or h < tile:
        where = "the raster" if area is None else "the area shared by image and labels"
        raise GridError(
            f"{where} is {max(w, 0)}×{max(h, 0)} px, smaller than one {tile}×{tile} px tile",
            fix=f"use a tile size of at most {max(min(w, h), 0)} px, or a larger raster / label extent",
        )
    return [
        Window(col0 + c, row0 + r, tile, tile) for r in _offsets(h, tile, stride) for c in _offsets(w, tile, stride)
    ]


def labelled_windows(windows: Iterable[Window], read_labels: Callable[[Window], np.ndarray]) -> list[Window]:
    """The windows whose labels (int64 [h,w] from ``read_labels``) have at least one pixel that is not -1."""
    return [w for w in windows if (read_labels(w) >= 0).any()]
