"""Scenes (image + labels) and a torch Dataset of their tiles, safe under DataLoader workers."""

from __future__ import annotations

import os
from collections.abc import Callable, Generator, Iterator, Sequence
from dataclasses import dataclass
from functools import partial
from pathlib import Path
from typing import Any

import numpy as np
import rasterio
import torch
from rasterio.env import get_gdal_config, set_gdal_config
from rasterio.windows import Window
from torch.utils.data import Dataset

from .classes import ClassMap, classes_from_raster
from .errors import DataError, InputError, LabelError
from .events import result_of
from .labels import LabelSource, RasterLabels, VectorLabels, classes_from_values, read_vector_labels
from .normalise import BandStats, normalise
from .raster import open_raster, read_window
from .split import TRAIN, LabelSplit
from .tiles import tile_windows

RASTER_SUFFIXES = {".tif", ".tiff", ".img", ".vrt", ".jp2", ".png", ".jpg", ".asc", ".nc"}
GDAL_CACHE_MB = 256
LabelFactory = Callable[[rasterio.io.DatasetReader], LabelSource]
Item = tuple[int, Window]
#: A step of data preparation: yields (done, total) as it goes and returns its result.
Counted = Generator[tuple[int, int], None, Any]


@dataclass
class Scene:
    """An image file and a picklable factory that makes its :class:`LabelSource` from the open image."""

    image: str
    labels: LabelFactory
    name: str = ""

    def open(self) -> tuple[rasterio.io.DatasetReader, LabelSource]:
        """Open the image and its labels (the caller closes both)."""
        src = open_raster(self.image)
        try:
            return src, self.labels(src)
        except Exception:
            src.close()
            raise


def _grow(area: Window, tile: int, width: int, height: int) -> Window:
    """``area`` clipped to the raster, then grown (centred, kept inside) to at least ``tile`` px each way."""
    spans = []
    for off, size, full in ((area.col_off, area.width, width), (area.row_off, area.height, height)):
        a, b = max(0, int(off)), min(full, int(off + size))
        if b - a < tile:
            a = min(max(0, (a + b - tile) // 2), max(0, full - tile))
            b = min(full, a + tile)
        spans.append((a, b))
    (c0, c1), (r0, r1) = spans
    return Window(c0, r0, max(0, c1 - c0), max(0, r1 - r0))


def _check_band_counts(images: Sequence[str | os.PathLike]) -> None:
    """All images of one dataset must have the same bands; raise :class:`DataError` naming the odd one."""
    counts = []
    for img in images:
        with open_raster(img) as src:
            counts.append(src.count)
        if counts[-1] != counts[0]:
            raise DataError(
                f"the image has {counts[-1]} bands, but {os.fspath(images[0])} has {counts[0]}",
                path=img,
                fix="use images with the same bands in the same order (e.g. export them with the same band list)",
            )


def build_scenes(
    pairs: Sequence[tuple[str | os.PathLike, str | os.PathLike]],
    field: str | None = None,
    class_map: ClassMap | None = None,
    ignore_values: Sequence[float] = (),
    background: bool = False,
) -> tuple[list[Scene], ClassMap]:
    """Scenes from (image, labels) paths: labels are a class raster, or a vector file when ``field`` is given.

    Without ``class_map`` the classes are every value found across all label files; with it, a label value
    outside it raises :class:`LabelError` now rather than mid-training. :func:`scan_scenes` does the same step by
    step.
    """
    return result_of(scan_scenes(pairs, field, class_map, ignore_values, background))


def scan_scenes(
    pairs: Sequence[tuple[str | os.PathLike, str | os.PathLike]],
    field: str | None = None,
    class_map: ClassMap | None = None,
    ignore_values: Sequence[float] = (),
    background: bool = False,
) -> Counted:
    """:func:`build_scenes` as a generator: yields (label files read, label files) and returns (scenes, classes)."""
    cap_gdal_cache()
    _check_band_counts([img for img, _ in pairs])
    scenes: list[Scene] = []
    if field is None:
        found = []
        for _, lbl in pairs:
            found.append(classes_from_raster(lbl, ignore_values))
            yield len(found), len(pairs)
        if class_map is None:
            merged = {c.value: c for cm in reversed(found) for c in cm.classes}
            class_map = ClassMap(merged[v] for v in sorted(merged))
        for (_, lbl), cm in zip(pairs, found):
            class_map.encode(np.asarray(cm.values), path=lbl)
        for img, lbl in pairs:
            factory = partial(RasterLabels, os.fspath(lbl), class_map=class_map, ignore_values=tuple(ignore_values))
            scenes.append(Scene(os.fspath(img), factory, Path(img).stem))
        return scenes, class_map
    shapes = []
    for img, lbl in pairs:
        with open_raster(img) as src:
            shapes.append(read_vector_labels(lbl, field, src.crs))
        yield len(shapes), len(pairs)
    if class_map is None:
        class_map = classes_from_values((v for s in shapes for _, v in s), background=background)
    for (img, _), s in zip(pairs, shapes):
        factory = partial(VectorLabels, s, class_map=class_map, background=background)
        scenes.append(Scene(os.fspath(img), factory, Path(img).stem))
    return scenes, class_map


def pair_folders(image_dir: str | os.PathLike, label_dir: str | os.PathLike) -> list[tuple[Path, Path]]:
    """Pair image tiles with label tiles of the same file name (stem); unpaired names raise :class:`LabelError`."""
    found = []
    for folder in (Path(image_dir), Path(label_dir)):
        if not folder.is_dir():
            raise InputError("the folder does not exist", path=folder, fix="pick the folder of tiles again")
        found.append({p.stem: p for p in sorted(folder.iterdir()) if p.suffix.lower() in RASTER_SUFFIXES})
    images, labels = found
    if not images:
        raise InputError("the folder holds no raster tiles", path=image_dir, fix="pick the folder of image tiles")
    alone_img, alone_lbl = sorted(images.keys() - labels.keys()), sorted(labels.keys() - images.keys())
    if alone_img or alone_lbl:
        raise LabelError(
            f"tiles are not paired by name: images without labels {alone_img}, labels without images {alone_lbl}",
            path=label_dir,
            fix="give every image tile a label tile of the same file name, or remove the extra files",
        )
    return [(images[k], labels[k]) for k in sorted(images)]


def index_tiles(scenes: Sequence[Scene], tile: int, stride: int | None = None, split: LabelSplit | None = None,
                role: str = TRAIN, required: bool = True) -> list[Item]:
    """(scene index, window) of every tile that has at least one labelled pixel on a valid image pixel.

    Windows cover the part of each image the labels overlap; raises :class:`DataError` when no tile is left.
    :func:`scan_tiles` does the same step by step.
    """
    return result_of(scan_tiles(scenes, tile, stride, split, role, required))


def scan_tiles(scenes: Sequence[Scene], tile: int, stride: int | None = None, split: LabelSplit | None = None,
               role: str = TRAIN, required: bool = True) -> Counted:
    """:func:`index_tiles` as a generator: yields (windows read, windows) and returns the items."""
    cap_gdal_cache()
    plans: list[list[Window]] = []
    for scene in scenes:  # a first, cheap pass: the windows of every scene, so the total is known
        src, labels = scene.open()
        try:
            plans.append(tile_windows(src.width, src.height, tile, stride, _grow(labels.area, tile, src.width,
                                                                                   src.height)))
        finally:
            labels.close()
            src.close()
    total, done = sum(len(p) for p in plans), 0
    items: list[Item] = []
    for i, (scene, windows) in enumerate(zip(scenes, plans)):
        src, labels = scene.open()
        try:
            for w in windows:
                y = labels.read(w)
                if split is not None:
                    y[~split.keep(i, w, role)] = -1
                if (y >= 0).any():
                    y[~read_window(src, w)[1]] = -1
                    if (y >= 0).any():
                        items.append((i, w))
                done += 1
                yield done, total
        finally:
            labels.close()
            src.close()
    if not items and required:
        raise DataError(
            "no tile has a labelled pixel on valid image pixels",
            path=scenes[0].image if len(scenes) == 1 else None,
            fix="check that labels and image overlap, and the nodata and ignore values",
        )
    return items


def stats_samples(scenes: Sequence[Scene], items: Sequence[Item]) -> Iterator[tuple[np.ndarray, np.ndarray]]:
    """(data float32 [C,h,w], valid [h,w]) of each item, for :func:`normalise.compute_stats`."""
    for i in sorted({i for i, _ in items}):
        with open_raster(scenes[i].image) as src:
            for _, w in (item for item in items if item[0] == i):
                yield read_window(src, w)


def cap_gdal_cache(mb: int | None = GDAL_CACHE_MB) -> None:
    """Lower GDAL's process-wide block cache to ``mb`` MB (never raise it; None leaves it). GDAL's default is 5 % of
    RAM, which alone would let a long pass over a large raster grow well past 1 GB. build_scenes, index_tiles and
    the dataset (in each worker) call it."""
    if mb is not None and get_gdal_config("GDAL_CACHEMAX") > mb * 2**20:
        set_gdal_config("GDAL_CACHEMAX", mb * 2**20)


class SegmentationDataset(Dataset):
    """Tiles of several scenes: item ``k`` is ``items[k] = (scene index, window)``; with a ``split``, only the
    labels that serve ``role`` are kept.

    ``__getitem__`` gives (image float32 [C,T,T] normalised, labels int64 [T,T] with -1 on invalid image pixels).
    Files open on first use in each process and are never pickled; that first use also caps GDAL's block cache
    at ``gdal_cache_mb`` (see :func:`cap_gdal_cache`). Augmentation happens per batch in the training loop
    (:mod:`.augment`), where a seeded generator makes it repeatable across a resume.
    """

    def __init__(
        self,
        scenes: Sequence[Scene],
        items: Sequence[Item],
        stats: BandStats | None,
        mode: str = "global",
        gdal_cache_mb: int | None = GDAL_CACHE_MB,
        split: LabelSplit | None = None,
        role: str = TRAIN,
    ):
        self.scenes, self.items, self.stats, self.mode = list(scenes), list(items), stats, mode
        self.split, self.role = split, role
        self.gdal_cache_mb = gdal_cache_mb
        self._handles: dict[int, tuple[rasterio.io.DatasetReader, LabelSource]] = {}
        self._pid = os.getpid()

    def __len__(self) -> int:
        return len(self.items)

    def _open(self, i: int) -> tuple[rasterio.io.DatasetReader, LabelSource]:
        if self._pid != os.getpid():  # forked into a worker: the parent's handles are not ours to use
            self._handles, self._pid = {}, os.getpid()
        if i not in self._handles:
            cap_gdal_cache(self.gdal_cache_mb)
            self._handles[i] = self.scenes[i].open()
        return self._handles[i]

    def __getitem__(self, k: int) -> tuple[torch.Tensor, torch.Tensor]:
        i, window = self.items[k]
        src, labels = self._open(i)
        data, valid = read_window(src, window)
        y = labels.read(window)
        y[~valid] = -1
        if self.split is not None:
            y[~self.split.keep(i, window, self.role)] = -1  # the other role's labels: unlabelled here
        x = normalise(data, valid, self.stats, self.mode)
        return torch.from_numpy(np.ascontiguousarray(x)), torch.from_numpy(np.ascontiguousarray(y))

    def close(self) -> None:
        """Close the files this process opened."""
        if self._pid == os.getpid():
            for src, labels in self._handles.values():
                labels.close()
                src.close()
        self._handles = {}

    def __getstate__(self) -> dict[str, Any]:
        state = self.__dict__.copy()
        state["_handles"] = {}
        return state
