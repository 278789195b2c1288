"""From a TrainConfig to checked, split, normalised training and validation tiles."""

from __future__ import annotations

from collections.abc import Generator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

import numpy as np
import torch
from rasterio.windows import Window

from .classes import ClassMap, check_several_classes
from .config import TrainConfig, is_vector, stride_for
from .dataset import Counted, Item, Scene, SegmentationDataset, pair_folders, scan_scenes, scan_tiles
from .errors import Cancelled, ConfigError
from .events import PREPARATION_PHASES, Event, ProgressEvent, WarningEvent
from .grid import check_grid, require_usable
from .normalise import BandStats, StatsAccumulator
from .package import package_metadata
from .raster import open_raster, read_window
from .registries import CLASS_WEIGHTINGS
from .split import TRAIN, VALIDATION, BlockCounts, LabelSplit, choose_split, fine_cell

#: Class weights are capped at this multiple of the mean weight (rare classes, few pixels).
MAX_CLASS_WEIGHT = 10.0
#: At most about this many progress events per preparation phase.
EVENTS_PER_PHASE = 100
GRID, CLASSES, TILING, STATISTICS = PREPARATION_PHASES


class CancelFlag(Protocol):
    """Anything with ``is_set()``: a ``threading.Event``, or a QgsTask's ``isCanceled`` wrapped."""

    def is_set(self) -> bool: ...


@dataclass
class TrainingData:
    """Datasets and everything the model package must remember about the data."""

    train: SegmentationDataset
    val: SegmentationDataset
    classes: ClassMap
    stats: BandStats | None
    class_weights: torch.Tensor | None  # float32 [K], mean 1 over present classes; None: no weighting
    in_channels: int
    band_names: list[str] | None
    resolution: tuple[float, float]
    crs: str | None  # WKT of the first image
    summary: str
    tile_size: int  # the configured one, or smaller when an image is smaller


def prepare_training_data(config: TrainConfig, cancel: CancelFlag | None = None, stats: BandStats | None = None
                          ) -> Generator[Event, None, TrainingData]:
    """Check every (image, labels) pair, build scenes and tiles, split them spatially and compute statistics.

    A generator: yields a ProgressEvent per step of each phase (``phase`` one of :data:`PREPARATION_PHASES`,
    ``done`` of ``total`` files, windows or tiles; at most about :data:`EVENTS_PER_PHASE` per phase) and a
    WarningEvent for each note (a tolerated CRS difference, a constant band), and returns the
    :class:`TrainingData`: ``data = yield from prepare_training_data(config, cancel)``. Raises
    :class:`~geofm.core.errors.Cancelled` between steps once ``cancel.is_set()``; it writes no file. Given
    ``stats`` (a pretrained backbone's), the run normalises with them instead of computing its own.
    """
    notes: list[str] = []  # filled by the checks below (warn_to=notes.append), drained into WarningEvents
    pairs = _pairs(config)
    yield from _phase(_check_pairs(pairs, config, notes.append), GRID, notes, cancel)
    in_channels, band_names, resolution, crs, smallest = _image_facts([img for img, _ in pairs])
    tile = _tile_size(config.tile_size, smallest, notes)
    given = ClassMap.from_list(config.classes) if config.classes else None
    field = config.label_field if any(is_vector(lbl) for _, lbl in pairs) else None
    scenes, classes = yield from _phase(scan_scenes(pairs, field, given, config.ignore_values, config.background),
                                        CLASSES, notes, cancel)
    split, train, val = yield from _phase(_split_and_tile(scenes, classes.num_classes, tile, config, notes),
                                          TILING, notes, cancel)
    counts = split.train_counts
    check_several_classes(classes, counts, pairs[0][1] if len(pairs) == 1 else None)
    if stats is None:  # a pretrained backbone brings the statistics it was trained with
        stats = yield from _phase(_statistics(scenes, train, notes.append), STATISTICS, notes, cancel)
    mode = config.normalisation
    per_class = ", ".join(f"{name} {count:,}" for name, count in zip(classes.names, counts))
    summary = (f"{split.summary()} {len(train)} training tiles, {len(val)} validation tiles of {tile} px."
               f"\nTraining pixels per class: {per_class}")
    return TrainingData(
        train=SegmentationDataset(scenes, train, stats, mode, split=split, role=TRAIN),
        val=SegmentationDataset(scenes, val, stats, mode, split=split, role=VALIDATION),
        classes=classes, stats=stats if mode == "global" else None, class_weights=class_weights(counts, config.class_weights),
        in_channels=in_channels, band_names=band_names, resolution=resolution, crs=crs, summary=summary,
        tile_size=tile,
    )


def _phase(steps: Counted, phase: str, notes: list[str], cancel: CancelFlag | None) -> Generator[Event, None, Any]:
    """Drive one preparation step: a ProgressEvent(0, 0) as it begins (total not known yet), then ProgressEvents
    from its (done, total), WarningEvents from ``notes``, a check of ``cancel`` after every step (raising
    Cancelled, the step's files closed); returns the step's result."""
    yield ProgressEvent(0, 0, phase, phase)
    shown = -1
    try:
        while True:
            try:
                done, total = next(steps)
            except StopIteration as stop:
                result = stop.value
                break
            while notes:
                yield WarningEvent(notes.pop(0))
            if cancel is not None and cancel.is_set():
                raise Cancelled(f"cancelled while {phase}")
            every = max(1, total // EVENTS_PER_PHASE)
            if done == total or done - shown >= every:
                shown = done
                yield ProgressEvent(done, total, phase, phase)
    finally:
        steps.close()
    while notes:
        yield WarningEvent(notes.pop(0))
    if cancel is not None and cancel.is_set():
        raise Cancelled(f"cancelled after {phase}")
    return result
def package_metadata_for(config: TrainConfig, data: TrainingData, metrics: dict[str, Any],
                         history: list[dict[str, Any]], epoch: int) -> dict[str, Any]:
    """Metadata for the model package: what a colleague needs to run the model without re-entering anything."""
    return package_metadata(
        classes=data.classes, band_count=data.in_channels, tile_size=data.tile_size,
        normalisation=config.normalisation, stats=data.stats, band_names=data.band_names,
        resolution=data.resolution, crs=data.crs, train_config=config.to_stored(),
        metrics={**metrics, "epoch": epoch, "history": history},
    )


def _pairs(config: TrainConfig) -> list[tuple[str, str]]:
    """(image, labels) paths; a folder of image tiles pairs with a folder of label tiles by file name."""
    pairs: list[tuple[str, str]] = []
    for image, labels in zip(config.images, config.labels):
        if Path(image).is_dir():
            pairs += [(str(i), str(lb)) for i, lb in pair_folders(image, labels)]
        else:
            pairs.append((image, labels))
    return pairs


def _check_pairs(pairs: Sequence[tuple[str, str]], config: TrainConfig, warn_to) -> Counted:
    """Grid-check each raster pair: GridError when unusable, a note to ``warn_to`` for a tolerated CRS difference.
    Vector labels are reprojected when read. Yields (pairs checked, pairs)."""
    for k, (image, labels) in enumerate(pairs, 1):
        if not is_vector(labels):
            require_usable(check_grid(image, labels, config.tile_size), config.align_labels, warn_to)
        yield k, len(pairs)


def _image_facts(images: Sequence[str]) -> tuple[int, list[str] | None, tuple[float, float], str | None, int]:
    """Band count (the same in every image), band names, resolution and CRS of the first image, and the shortest
    side of any image (px)."""
    facts = []
    for path in images:
        with open_raster(path) as src:
            names = [d or "" for d in src.descriptions]
            facts.append((src.count, names if any(names) else None, src.res, src.crs.to_wkt() if src.crs else None,
                          min(src.width, src.height)))
    counts = {f[0] for f in facts}
    if len(counts) > 1:
        raise ConfigError(f"the images have different band counts ({sorted(counts)})",
                          path=images[0], fix="train on images with the same bands in the same order")
    first = facts[0]
    return first[0], first[1], (float(first[2][0]), float(first[2][1])), first[3], min(f[4] for f in facts)


def _tile_size(wanted: int, smallest_side: int, notes: list[str]) -> int:
    """``wanted``, or the largest multiple of 32 px that fits the smallest image (with a note saying so)."""
    if smallest_side >= wanted:
        return wanted
    tile = smallest_side // 32 * 32
    if tile < 32:
        raise ConfigError(f"an image is only {smallest_side} px on its shorter side, less than the smallest tile "
                          "(32 px)", fix="train on a larger image, or pad it")
    notes.append(f"The tile size is {tile} px instead of {wanted} px: an image is only {smallest_side} px on its "
                 "shorter side.")
    return tile


def _split_and_tile(scenes: Sequence[Scene], num_classes: int, tile: int, config: TrainConfig, notes: list[str]
                    ) -> Generator[tuple[int, int], None, tuple[LabelSplit, list[Item], list[Item]]]:
    """Count labelled pixels per block, split them (see :mod:`.split`), then index the training tiles (overlapping)
    and the validation tiles (side by side). Yields (steps done, steps) and returns (split, train, val)."""
    block = config.split_block or 2 * tile
    counts = yield from _part(_block_counts(scenes, num_classes, fine_cell(block)), 0)
    split = choose_split(counts, block, config.val_fraction, config.seed)
    notes += split.notes
    train = yield from _part(scan_tiles(scenes, tile, stride_for(tile, config.overlap), split, TRAIN), 1)
    val = (yield from _part(scan_tiles(scenes, tile, tile, split, VALIDATION, required=False), 2)
           ) if split.has_validation else []
    return split, train, val


def _part(steps: Counted, index: int, parts: int = 3, scale: int = 1000) -> Counted:
    """Part ``index`` of ``parts`` sub-steps counted as one: (done, total) on a common scale of parts × scale."""
    result = None
    while True:
        try:
            done, total = next(steps)
        except StopIteration as stop:
            result = stop.value
            break
        yield index * scale + round(scale * done / max(total, 1)), parts * scale
    return result


def _block_counts(scenes: Sequence[Scene], num_classes: int, cell: int, rows: int = 512
                  ) -> Generator[tuple[int, int], None, list[BlockCounts]]:
    """Labelled pixels per class and ``cell``-px cell of every scene: one pass over the labels, in strips."""
    out = []
    for k, scene in enumerate(scenes, 1):
        src, labels = scene.open()
        try:
            counts = BlockCounts(src.width, src.height, cell, num_classes)
            area = labels.area.intersection(Window(0, 0, src.width, src.height))
            for r in range(int(area.row_off), int(area.row_off + area.height), rows):
                strip = Window(area.col_off, r, area.width, min(rows, int(area.row_off + area.height) - r))
                counts.add(labels.read(strip), strip)
            out.append(counts)
        finally:
            labels.close()
            src.close()
        yield k, len(scenes)
    return out


def _statistics(scenes: Sequence[Scene], items: Sequence[Item], warn_to) -> Counted:
    """Band statistics over the training tiles; yields (tiles read, tiles) and returns the BandStats."""
    acc = StatsAccumulator()
    handles: dict[int, Any] = {}
    try:
        for k, (i, window) in enumerate(items, 1):
            if i not in handles:
                handles[i] = open_raster(scenes[i].image)
            acc.add(*read_window(handles[i], window, warn_to=warn_to))
            yield k, len(items)
    finally:
        for src in handles.values():
            src.close()
    return acc.result(warn_to)


def class_weights(counts: np.ndarray, how: str) -> torch.Tensor | None:
    """Loss weights from training pixel counts per class, ∝ (1 / count) ** the power of the weighting ``how``
    names (:data:`.registries.CLASS_WEIGHTINGS`); None for a power of 0. Mean 1 over present classes, capped at
    :data:`MAX_CLASS_WEIGHT`; absent classes get 0."""
    power = CLASS_WEIGHTINGS.get(how).extra["power"]
    if not power:
        return None
    present = counts > 0
    w = np.zeros(len(counts), dtype=np.float64)
    w[present] = (counts[present].sum() / counts[present]) ** power
    w[present] /= w[present].mean()
    w = np.minimum(w, MAX_CLASS_WEIGHT)
    return torch.tensor(w, dtype=torch.float32)
