"""Self-supervised pretraining: unlabelled rasters in, a backbone package (``.geofm``, ``kind: "backbone"``) out.

The objective is the configured method (``registries.PRETRAIN_METHODS``, one module each in :mod:`..selfsup`):
masked reconstruction by default, SimSiam as the other choice (and the one for two dates as the pair).

Data: random crops of the images (any band count and dtype), or of their part inside an extent (``bbox``). Each
item is a *context* window 1.5× the crop side, drawn once in :meth:`PretrainTask.prepare` (seeded, so a resume sees
the same windows) where at least half the pixels are valid; the method cuts its views from it. Normalisation uses
global per-band statistics streamed over the same parts of the images (:mod:`..normalise`); nodata pixels are 0
after normalisation and carry a validity mask. With ``temporal_pairs`` the item's second window is the same place
in another image on the same grid (another date).
"""

from __future__ import annotations

import math
import os
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from rasterio.windows import Window
from torch import nn
from torch.utils.data import Dataset

from ..config import PretrainConfig
from ..errors import Cancelled, ConfigError, DataError
from ..events import PREPARATION_PHASES, Event, ProgressEvent, WarningEvent
from ..inference.extent import ExtentOutside, extent_window
from ..normalise import BandStats, StatsAccumulator, normalise
from ..package import backbone_metadata, save_backbone_package
from ..raster import open_raster, read_window
from ..registries import PRETRAIN_METHODS
from . import CancelFlag, Task

#: The context window drawn per item, as a multiple of the crop side (room for crop jitter and scale).
CONTEXT = 1.5
#: A crop is kept when at least this share of its pixels is valid.
MIN_VALID = 0.5
_, _, CHOOSING, STATISTICS = PREPARATION_PHASES
STATS_BLOCK = 512


@dataclass(frozen=True)
class ImageFacts:
    path: str
    width: int
    height: int
    count: int
    names: list[str] | None
    grid: tuple  # (width, height, transform, crs) — images with equal grids can pair by window


class PretrainTask(Task):
    """A self-supervised method on random crops of unlabelled rasters; every epoch is kept (the last one is the
    backbone)."""

    name = "pretrain"
    # No validation and no metric: a self-supervised loss going down says little about the features (SimSiam's is
    # lowest for a collapsed encoder), so the fixed schedule's last epoch is kept. "last epoch" is no metric key on purpose.
    monitor = "last epoch"
    mode = "max"
    nonfinite_causes = ("a band with extreme or unmasked nodata values (check the images' nodata value)")

    def __init__(self, config: PretrainConfig):
        self.config = config
        self.source = config.images[0] if config.images else None
        self.notes: list[str] = []
        self.images: list[ImageFacts] = []
        self.stats: BandStats | None = None
        self.windows: list[Window] = []  # the part of each image inside the extent (the whole image without one)
        self.items: list[tuple[int, int, int, int, int]] = []  # (image, partner image, col, row, side)
        self.context = config.crop_size

    # -- data ---------------------------------------------------------------------------------------------------
    def prepare(self, cancel: CancelFlag | None) -> Iterator[Event]:
        try:
            yield from self._prepare(cancel)
        except Cancelled:
            return  # the loop sees the cancel flag and says nothing was written

    def _prepare(self, cancel: CancelFlag | None) -> Iterator[Event]:
        cfg = self.config
        self.images, self.windows = in_extent(image_facts(cfg.images), cfg.bbox, cfg.bbox_crs, self.notes.append)
        smallest = min(min(w.width, w.height) for w in self.windows)
        if smallest < 32:
            where = "the part of an image inside the extent" if cfg.bbox is not None else "an image"
            raise DataError(f"{where} is only {smallest} px on its shorter side; pretraining needs 32 px or more",
                            path=self.source, fix="use larger images" if cfg.bbox is None else "draw a larger extent")
        self.context = min(smallest, max(cfg.crop_size, round(cfg.crop_size * CONTEXT)))
        acc = StatsAccumulator()
        blocks = [(i, b) for i, w in enumerate(self.windows) for b in _blocks(w)]
        yield ProgressEvent(0, 0, STATISTICS, STATISTICS)
        handles: dict[int, Any] = {}
        try:
            for k, (i, window) in enumerate(blocks, 1):
                src = handles.get(i) or handles.setdefault(i, open_raster(self.images[i].path))
                acc.add(*read_window(src, window))
                _check_cancel(cancel)
                yield ProgressEvent(k, len(blocks), STATISTICS, STATISTICS)
        finally:
            for src in handles.values():
                src.close()
        self.stats = acc.result(self.notes.append)
        yield ProgressEvent(0, 0, CHOOSING, CHOOSING)
        self.items = yield from self._choose_crops(cancel)
        while self.notes:
            yield WarningEvent(self.notes.pop(0))
        names = self.images[0].names
        self.summary = (f"{PRETRAIN_METHODS.get(cfg.method).label} pretraining of a {cfg.backbone} on "
                        f"{len(self.images)} image(s){' inside the extent' if cfg.bbox is not None else ''}, "
                        f"{self.images[0].count} band(s)"
                        f"{' (' + ', '.join(names) + ')' if names else ''}: {len(self.items)} crops of "
                        f"{cfg.crop_size} px per epoch{', two dates per pair' if cfg.temporal_pairs else ''}.")

    def _choose_crops(self, cancel: CancelFlag | None):
        """``steps_per_epoch × batch_size`` context windows, mostly valid, drawn with the run's seed."""
        cfg, side = self.config, self.context
        wanted = cfg.steps_per_epoch * cfg.batch_size
        partners = _partners(self.images) if cfg.temporal_pairs else {i: [i] for i in range(len(self.images))}
        usable = [i for i in partners if partners[i]]
        if not usable:
            raise ConfigError("two-date pairs need at least two images on the same grid (same size, transform, CRS)",
                              path=self.source, fix="give images of the same place on one grid, or leave out "
                              "--temporal-pairs")
        areas = np.array([self.windows[i].width * self.windows[i].height for i in usable], dtype=float)
        rng = np.random.default_rng(cfg.seed)
        handles: dict[int, Any] = {}
        items, tries = [], 0
        try:
            while len(items) < wanted:
                tries += 1
                if tries > 20 * wanted:
                    raise DataError(f"found only {len(items)} of {wanted} crops with at least {MIN_VALID:.0%} "
                                    "valid pixels", path=self.source,
                                    fix="check the images' nodata value, or use a smaller crop size")
                i = usable[rng.choice(len(usable), p=areas / areas.sum())]
                j = partners[i][rng.integers(len(partners[i]))]
                w = self.windows[i]
                col = int(w.col_off + rng.integers(w.width - side + 1))
                row = int(w.row_off + rng.integers(w.height - side + 1))
                window = Window(col, row, side, side)
                if all(_valid_share(handles, self.images[k].path, k, window) >= MIN_VALID for k in {i, j}):
                    items.append((i, j, col, row, side))
                    _check_cancel(cancel)
                    yield ProgressEvent(len(items), wanted, CHOOSING, CHOOSING)
        finally:
            for src in handles.values():
                src.close()
        return items

    def train_dataset(self) -> Dataset:
        return CropDataset([f.path for f in self.images], self.items, self.stats)

    # -- model and loss -----------------------------------------------------------------------------------------
    def build_model(self) -> nn.Module:
        return PRETRAIN_METHODS.load(self.config.method)(self.config.backbone, self.images[0].count)

    def training_step(self, model: nn.Module, batch: Any, rng: torch.Generator) -> torch.Tensor:
        x1, v1, x2, v2 = batch
        return model(x1, v1, x2, v2, self.config.crop_size, rng)

    # -- outputs and identity -----------------------------------------------------------------------------------
    def save_best(self, path: str, model: nn.Module, epoch: int, metrics: dict[str, Any],
                  history: list[dict[str, Any]]) -> None:
        model = getattr(model, "module", model)
        cfg, first = self.config, self.images[0]
        trained_on = {
            "method": cfg.method,
            "files": [{"path": os.path.abspath(f.path), "name": Path(f.path).name, "width": f.width,
                       "height": f.height, "window": [int(w.col_off), int(w.row_off), int(w.width), int(w.height)]}
                      for f, w in zip(self.images, self.windows)],
            "extent": {"bbox": list(cfg.bbox), "crs": cfg.bbox_crs} if cfg.bbox is not None else None,
            "epochs": epoch, "steps_per_epoch": cfg.steps_per_epoch, "steps": epoch * cfg.steps_per_epoch,
            "batch_size": cfg.batch_size, "crop_size": cfg.crop_size, "temporal_pairs": cfg.temporal_pairs,
            "history": history,
        }
        meta = backbone_metadata(backbone=cfg.backbone, band_count=first.count, band_names=first.names,
                                 stats=self.stats, trained_on=trained_on, licence=cfg.licence,
                                 config=cfg.to_stored())
        decoder = model.decoder_state() if hasattr(model, "decoder_state") else None
        save_backbone_package(path, model.backbone_state(), meta, decoder)

    def fingerprint(self) -> dict[str, Any]:
        return pretrain_fingerprint(self.config)

    def stored_config(self) -> dict[str, Any]:
        return self.config.to_stored()

    def fingerprint_of(self, stored_config: dict[str, Any], source: str) -> dict[str, Any]:
        return pretrain_fingerprint(PretrainConfig.from_dict(stored_config, source=source))


def pretrain_fingerprint(config: PretrainConfig) -> dict[str, Any]:
    """What defines a pretraining run: the images, the crops drawn from them and the model's shape."""
    return {
        "images": [os.path.abspath(p) for p in config.images],
        "bbox": list(config.bbox) if config.bbox is not None else None,
        "bbox_crs": config.bbox_crs,
        "method": config.method,
        "backbone": config.backbone,
        "crop_size": config.crop_size,
        "steps_per_epoch": config.steps_per_epoch,
        "batch_size": config.batch_size,
        "temporal_pairs": config.temporal_pairs,
        "seed": config.seed,
    }


# -- images ------------------------------------------------------------------------------------------------------
def image_facts(paths: list[str]) -> list[ImageFacts]:
    """Size, bands and grid of each image; ConfigError when band counts (or band names) differ."""
    facts = []
    for path in paths:
        with open_raster(path) as src:
            names = [d or "" for d in src.descriptions]
            facts.append(ImageFacts(str(path), src.width, src.height, src.count, names if any(names) else None,
                                    (src.width, src.height, tuple(src.transform), str(src.crs))))
    first = facts[0]
    for f in facts[1:]:
        if f.count != first.count or (f.names and first.names and f.names != first.names):
            what = (f"{f.count} band(s) {f.names or ''}", f"{first.count} band(s) {first.names or ''}")
            raise ConfigError(f"the images have different bands: {what[0]} here, {what[1]} in {first.path}",
                              path=f.path, fix="pretrain on images with the same bands in the same order")
    return facts


def in_extent(images: list[ImageFacts], bbox: tuple[float, float, float, float] | None, bbox_crs: str | None,
              note: Callable[[str], None]) -> tuple[list[ImageFacts], list[Window]]:
    """The images an extent overlaps and the window of each inside it (every image, whole, without an extent);
    ``bbox`` is in ``bbox_crs``, else in the first image's CRS; ``note`` names the images it misses. DataError when
    it misses them all."""
    if bbox is None:
        return images, [Window(0, 0, f.width, f.height) for f in images]
    if bbox_crs is None:  # the first image's CRS, for every image
        with open_raster(images[0].path) as src:
            bbox_crs = src.crs.to_wkt() if src.crs else None
    kept, windows, missed = [], [], []
    for f in images:
        with open_raster(f.path) as src:
            try:
                windows.append(extent_window(src, Path(f.path), bbox, bbox_crs)[0])
                kept.append(f)
            except ExtentOutside:
                missed.append(f)
    where = f"the extent ({', '.join(f'{v:.6g}' for v in bbox)})"
    if not kept:
        raise DataError(f"{where} lies outside every image", path=images[0].path,
                        fix="draw the extent over the images (check its CRS), or leave it empty for the whole images")
    if missed:
        note(f"{where} misses {len(missed)} of the {len(images)} images, left out: "
             + ", ".join(Path(f.path).name for f in missed))
    return kept, windows


def _blocks(window: Window) -> list[Window]:
    """``window`` cut into blocks of at most STATS_BLOCK px a side."""
    c0, r0, width, height = int(window.col_off), int(window.row_off), int(window.width), int(window.height)
    return [Window(c0 + c, r0 + r, min(STATS_BLOCK, width - c), min(STATS_BLOCK, height - r))
            for r in range(0, height, STATS_BLOCK) for c in range(0, width, STATS_BLOCK)]


def _partners(images: list[ImageFacts]) -> dict[int, list[int]]:
    """For each image, the other images on the same grid (another date of the same place)."""
    return {i: [j for j, g in enumerate(images) if j != i and g.grid == f.grid] for i, f in enumerate(images)}


def _valid_share(handles: dict[int, Any], path: str, k: int, window: Window) -> float:
    src = handles.get(k) or handles.setdefault(k, open_raster(path))
    return float(read_window(src, window)[1].mean())


def _check_cancel(cancel: CancelFlag | None) -> None:
    if cancel is not None and cancel.is_set():
        raise Cancelled("cancelled while preparing the crops")


class CropDataset(Dataset):
    """Context windows read and normalised: (view-1 data, its validity, view-2 data, its validity) as tensors."""

    def __init__(self, paths: list[str], items: list[tuple[int, int, int, int, int]], stats: BandStats):
        self.paths, self.items, self.stats = paths, items, stats
        self._handles: dict[int, Any] = {}  # opened lazily, per loader worker

    def __len__(self) -> int:
        return len(self.items)

    def __getitem__(self, index: int):
        i, j, col, row, side = self.items[index]
        window = Window(col, row, side, side)
        x1, v1 = self._read(i, window)
        x2, v2 = (x1, v1) if j == i else self._read(j, window)
        return x1, v1, x2, v2

    def _read(self, k: int, window: Window) -> tuple[torch.Tensor, torch.Tensor]:
        src = self._handles.get(k) or self._handles.setdefault(k, open_raster(self.paths[k]))
        data, valid = read_window(src, window)
        return torch.from_numpy(normalise(data, valid, self.stats)), torch.from_numpy(valid.astype(np.float32))

    def __getstate__(self):  # open files do not travel to loader workers
        return {**self.__dict__, "_handles": {}}


def epochs_for_minutes(minutes: float, seconds_per_step: float, steps_per_epoch: int) -> int:
    """Whole epochs that fit ``minutes`` at ``seconds_per_step`` (at least one)."""
    return max(1, math.floor(minutes * 60 / max(seconds_per_step * steps_per_epoch, 1e-9)))
