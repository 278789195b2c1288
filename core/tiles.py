"""Tile windows over a raster, a spatial block split into training and validation, and skipping empty tiles."""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass

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


def _blocks(window: Window, block: int) -> set[tuple[int, int]]:
    c0, r0 = int(window.col_off), int(window.row_off)
    c1, r1 = c0 + int(window.width) - 1, r0 + int(window.height) - 1
    return {(bc, br) for br in range(r0 // block, r1 // block + 1) for bc in range(c0 // block, c1 // block + 1)}


@dataclass
class SplitResult:
    """Training and validation windows; unpacks as ``train, val = spatial_split(...)``."""

    train: list[Window]
    val: list[Window]
    dropped: list[Window]
    train_blocks: int
    val_blocks: int
    block: int
    seed: int

    def __iter__(self) -> Iterator[list[Window]]:
        return iter((self.train, self.val))

    @property
    def summary(self) -> str:
        text = (
            f"Spatial split (blocks of {self.block} px, seed {self.seed}): {len(self.train)} training tiles in "
            f"{self.train_blocks} blocks, {len(self.val)} validation tiles in {self.val_blocks} blocks"
        )
        if self.dropped:
            text += f"; {len(self.dropped)} tiles dropped because they straddle a training and a validation block"
        return text + "."


def spatial_split(windows: Iterable[Window], block: int, val_fraction: float, seed: int = 0) -> SplitResult:
    """Assign square blocks of ``block`` px at random (seeded) to validation (about ``val_fraction`` of the blocks).

    A window lying only in validation blocks is a validation tile, one lying only in training blocks a
    training tile; a window touching both is dropped, so no validation tile overlaps any training tile.
    """
    windows = list(windows)
    if not 0.0 <= val_fraction < 1.0:
        raise ConfigError(f"validation fraction {val_fraction} is out of range", fix="use a value from 0 to 0.5")
    if windows and block < max(int(w.width) for w in windows):
        raise ConfigError(
            f"split block size {block} px is smaller than the tile size",
            fix="use a block size of several tiles (4 × tile size is a good start)",
        )
    train, val, dropped, n_blocks, n_val = _assign(windows, block, val_fraction, seed)
    if val_fraction > 0 and (not val or not train):
        raise ConfigError(
            f"a spatial split with blocks of {block} px leaves {len(train)} training and {len(val)} validation tiles",
            fix=_split_fix(windows, block, val_fraction, seed),
        )
    return SplitResult(train, val, dropped, n_blocks - n_val, n_val, block, seed)


def _assign(windows: list[Window], block: int, val_fraction: float, seed: int
            ) -> tuple[list[Window], list[Window], list[Window], int, int]:
    touched = [_blocks(w, block) for w in windows]
    blocks = sorted(set().union(*touched))
    n_val = 0
    if val_fraction > 0 and len(blocks) > 1:
        n_val = min(len(blocks) - 1, max(1, round(val_fraction * len(blocks))))
    order = np.random.default_rng(seed).permutation(len(blocks))
    val_blocks = {blocks[i] for i in order[:n_val]}
    train, val, dropped = [], [], []
    for w, bs in zip(windows, touched):
        n_in_val = len(bs & val_blocks)
        (val if n_in_val == len(bs) else train if n_in_val == 0 else dropped).append(w)
    return train, val, dropped, len(blocks), n_val


def _split_fix(windows: list[Window], block: int, val_fraction: float, seed: int) -> str:
    """The settings that would work: the largest smaller --split-block (multiples of the tile size), else none."""
    tile = max(int(w.width) for w in windows) if windows else block
    for smaller in range(block - block % tile - (tile if block % tile == 0 else 0), tile - 1, -tile):
        if smaller < tile:
            break
        train, val, _, _, _ = _assign(windows, smaller, val_fraction, seed)
        if train and val:
            return (f"use smaller split blocks: --split-block {smaller} (with --val-share {val_fraction:g}, it leaves "
                    f"{len(train)} training and {len(val)} validation tiles); or --val-share 0 to train without "
                    "validation (the model with the lowest training loss is kept); or label a larger area")
    return (f"the labelled area is too small to hold out validation blocks even with --split-block {tile} (the tile "
            "size): train without validation (--val-share 0; the model with the lowest training loss is kept), use "
            "a smaller tile (--tile), or label a larger area")


def labelled_windows(windows: Iterable[Window], read_labels: Callable[[Window], np.ndarray]) -> list[Window]:
    """The windows whose labels (int64 [h,w] from ``read_labels``) have at least one pixel that is not -1."""
    return [w for w in windows if (read_labels(w) >= 0).any()]
