"""Where windows go and how much each counts: window starts, blending weights, coverage, padded reads."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from rasterio.windows import Window

from ..raster import read_window

EDGE_FLOOR = 1e-3  # weight of a window's outermost pixels, relative to its centre


def weight_window(tile: int, floor: float = EDGE_FLOOR) -> np.ndarray:
    """1-D blending weights [tile]: a Hann bump sin²(π(i+½)/tile), lifted to ``floor`` at the edges."""
    hann = np.sin(np.pi * (np.arange(tile) + 0.5) / tile) ** 2
    return (floor + (1.0 - floor) * hann).astype(np.float32)


def window_starts(offset: int, length: int, full: int, tile: int, stride: int) -> list[int]:
    """Window starts (raster px) covering pixels [offset, offset + length) of an axis ``full`` px long.

    Every ``stride`` px, the last one shifted inward to end at the extent's edge. An extent shorter than a tile
    gets one window centred on it, kept inside the raster when the raster is long enough.
    """
    if length <= tile:
        return [min(max(offset + (length - tile) // 2, 0), max(full - tile, 0))]
    return [*range(offset, offset + length - tile, stride), offset + length - tile]


def with_context(offset: int, length: int, full: int, tile: int) -> tuple[int, int]:
    """An extent's span along one axis grown by a quarter tile each side (within the raster), so that its edge
    pixels are predicted with real neighbours around them rather than at a window's edge."""
    margin = tile // 4
    start, stop = max(offset - margin, 0), min(offset + length + margin, full)
    return start, stop - start


def coverage(starts: list[int], offset: int, length: int, w1: np.ndarray) -> np.ndarray:
    """Total 1-D weight [length] that windows at ``starts`` give each pixel of [offset, offset + length)."""
    total = np.zeros(length, np.float32)
    for s in starts:
        a, b = max(s, offset), min(s + len(w1), offset + length)
        total[a - offset : b - offset] += w1[a - s : b - s]
    return total


def read_padded(reader, window: Window) -> tuple[np.ndarray, np.ndarray]:
    """Read ``window`` (data float32 [C,T,T], valid [T,T]); where it overhangs the raster, 0 and invalid.

    Only rasters smaller than a tile overhang; done by hand because a WarpedVRT refuses boundless reads.
    """
    inside = window.intersection(Window(0, 0, reader.width, reader.height))
    data, valid = read_window(reader, inside)
    if data.shape[1:] == (window.height, window.width):
        return data, valid
    r, c = int(inside.row_off - window.row_off), int(inside.col_off - window.col_off)
    padded = np.zeros((data.shape[0], int(window.height), int(window.width)), np.float32)
    padded_valid = np.zeros(padded.shape[1:], bool)
    padded[:, r : r + data.shape[1], c : c + data.shape[2]] = data
    padded_valid[r : r + data.shape[1], c : c + data.shape[2]] = valid
    return padded, padded_valid


@dataclass
class WindowGrid:
    """The windows over one extent of a ``width`` × ``height`` raster: starts (raster px) by row and column, and the
    total weight every extent pixel gets, which is ``row_weight[y] * col_weight[x]`` because each window weighs
    its pixels by the outer product of :func:`weight_window` with itself (``weights`` [T,T])."""

    extent: Window
    tile: int
    rows: list[int]
    cols: list[int]
    weights: np.ndarray
    row_weight: np.ndarray
    col_weight: np.ndarray

    @classmethod
    def over(cls, extent: Window, width: int, height: int, tile: int, stride: int) -> WindowGrid:
        """Windows every ``stride`` px covering ``extent`` and a quarter tile of context around it."""
        c0, r0, w, h = (int(v) for v in (extent.col_off, extent.row_off, extent.width, extent.height))
        rows = window_starts(*with_context(r0, h, height, tile), height, tile, stride)
        cols = window_starts(*with_context(c0, w, width, tile), width, tile, stride)
        w1 = weight_window(tile)
        return cls(extent, tile, rows, cols, np.outer(w1, w1), coverage(rows, r0, h, w1), coverage(cols, c0, w, w1))

    @property
    def total(self) -> int:
        return len(self.rows) * len(self.cols)

    def finished_after(self, strip: int) -> int:
        """Extent rows [0, n) that no window after strip (row of windows) ``strip`` touches: n."""
        height = int(self.extent.height)
        until = self.rows[strip + 1] - int(self.extent.row_off) if strip + 1 < len(self.rows) else height
        return min(max(until, 0), height)
