"""From a TrainConfig to checked, split, normalised training and validation tiles."""

from __future__ import annotations

from collections.abc import Generator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

import numpy as np
import torch

from .classes import ClassMap
from .config import TrainConfig, is_vector
from .dataset import Counted, Item, Scene, SegmentationDataset, pair_folders, scan_scenes, scan_tiles, split_tiles
from .errors import Cancelled, ConfigError
from .events import PREPARATION_PHASES, Event, ProgressEvent, WarningEvent
from .grid import check_grid, require_usable
from .normalise import BandStats, StatsAccumulator
from .package import package_metadata
from .raster import open_raster, read_window

#: Inverse-frequency class weights are capped at this multiple of the mean weight (rare classes, few pixels).
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
    class_weights: torch.Tensor  # float32 [K], mean 1
    in_channels: int
    band_names: list[str] | None
    resolution: tuple[float, float]
    crs: str | None  # WKT of the first image
    summary: str


def prepare_training_data(config: TrainConfig, cancel: CancelFlag | None = None
                          ) -> Generator[Event, None, TrainingData]:
    """Check every (image, labels) pair, build scenes and tiles, split them spatially and compute statistics.

    A generator: yields a ProgressEvent per step of each phase (``phase`` one of :data:`PREPARATION_PHASES`,
    ``done`` of ``total`` files, windows or tiles; at most about :data:`EVENTS_PER_PHASE` per phase) and a
    WarningEvent for each note (a tolerated CRS difference, a constant band), and returns the
    :class:`TrainingData`: ``data = yield from prepare_training_data(config, cancel)``. Raises
    :class:`~geofm.core.errors.Cancelled` between steps once ``cancel.is_set()``; it writes no file.
    """
    notes: list[str] = []  # filled by the checks below (warn_to=notes.append), drained into WarningEvents
    pairs = _pairs(config)
    yield from _phase(_check_pairs(pairs, config, notes.append), GRID, notes, cancel)
    in_channels, band_names, resolution, crs = _image_facts([img for img, _ in pairs])
    given = ClassMap.from_list(config.classes) if config.classes else None
    field = config.label_field if any(is_vector(lbl) for _, lbl in pairs) else None
    scenes, classes = yield from _phase(scan_scenes(pairs, field, given, config.ignore_values, config.background),
                                        CLASSES, notes, cancel)
    items = yield from _phase(scan_tiles(scenes, config.tile_size, config.stride), TILING, notes, cancel)
    train, val, split_summary = split_tiles(items, config.effective_split_block, config.val_fraction, config.seed)
    counts = np.zeros(classes.num_classes, dtype=np.int64)
    stats = yield from _phase(_statistics(scenes, train, counts, notes.append), STATISTICS, notes, cancel)
    weights = _inverse_frequency(counts)
    mode = config.normalisation
    per_class = ", ".join(f"{name} {count:,}" for name, count in zip(classes.names, counts))
    summary = f"{split_summary}\nTraining pixels per class: {per_class}"
    return TrainingData(
        train=SegmentationDataset(scenes, train, stats, mode),
        val=SegmentationDataset(scenes, val, stats, mode),
        classes=classes, stats=stats if mode == "global" else None, class_weights=weights,
        in_channels=in_channels, band_names=band_names, resolution=resolution, crs=crs, summary=summary,
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
        classes=data.classes, band_count=data.in_channels, tile_size=config.tile_size,
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


def _image_facts(images: Sequence[str]) -> tuple[int, list[str] | None, tuple[float, float], str | None]:
    """Band count (the same in every image), band names, resolution and CRS of the first image."""
    facts = []
    for path in images:
        with open_raster(path) as src:
            names = [d or "" for d in src.descriptions]
            facts.append((src.count, names if any(names) else None, src.res, src.crs.to_wkt() if src.crs else None))
    counts = {f[0] for f in facts}
    if len(counts) > 1:
        raise ConfigError(f"the images have different band counts ({sorted(counts)})",
                          path=images[0], fix="train on images with the same bands in the same order")
    first = facts[0]
    return first[0], first[1], (float(first[2][0]), float(first[2][1])), first[3]


def _statistics(scenes: Sequence[Scene], items: Sequence[Item], counts: np.ndarray, warn_to) -> Counted:
    """Band statistics over the training tiles, counting label pixels per class into ``counts`` on the way;
    yields (tiles read, tiles) and returns the BandStats."""
    acc = StatsAccumulator()
    handles: dict[int, tuple] = {}
    try:
        for k, (i, window) in enumerate(items, 1):
            if i not in handles:
                handles[i] = scenes[i].open()
            src, labels = handles[i]
            data, valid = read_window(src, window)
            y = labels.read(window)[valid]
            counts += np.bincount(y[y >= 0], minlength=len(counts))
            acc.add(data, valid)
            yield k, len(items)
    finally:
        for src, labels in handles.values():
            labels.close()
            src.close()
    return acc.result(warn_to)


def _inverse_frequency(counts: np.ndarray) -> torch.Tensor:
    """Class weights ∝ 1 / pixel count, mean 1 over present classes, capped; absent classes get 0."""
    present = counts > 0
    w = np.zeros(len(counts), dtype=np.float64)
    w[present] = counts[present].sum() / (present.sum() * counts[present])
    w[present] /= w[present].mean()
    w = np.minimum(w, MAX_CLASS_WEIGHT)
    return torch.tensor(w, dtype=torch.float32)

