"""From a TrainConfig to checked, split, normalised training and validation tiles."""

from __future__ import annotations

import warnings
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from rasterio.windows import Window

from .classes import ClassMap
from .config import TrainConfig, is_vector, stride_for
from .dataset import Item, Scene, SegmentationDataset, build_scenes, index_tiles, pair_folders
from .errors import ConfigError, GeoFMWarning
from .grid import check_grid, require_usable
from .normalise import BandStats, compute_stats
from .package import package_metadata
from .raster import open_raster, read_window
from .split import TRAIN, VALIDATION, BlockCounts, choose_split, fine_cell

#: Inverse-frequency class weights are capped at this multiple of the mean weight (rare classes, few pixels).
MAX_CLASS_WEIGHT = 10.0


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
    tile_size: int  # the configured one, or smaller when an image is smaller


def prepare_training_data(config: TrainConfig) -> TrainingData:
    """Check every (image, labels) pair, build scenes, split the labels spatially, index tiles, compute statistics."""
    pairs = _pairs(config)
    for img, lbl in pairs:
        _check_pair(img, lbl, config)
    in_channels, band_names, resolution, crs, smallest = _image_facts([img for img, _ in pairs])
    notes: list[str] = []
    tile = _tile_size(config.tile_size, smallest, notes)
    given = ClassMap.from_list(config.classes) if config.classes else None
    field = config.label_field if any(is_vector(lbl) for _, lbl in pairs) else None
    scenes, classes = build_scenes(pairs, field, given, config.ignore_values, config.background)
    block = config.split_block or 2 * tile
    split = choose_split(_block_counts(scenes, classes.num_classes, fine_cell(block)), block, config.val_fraction,
                         config.seed)
    notes += split.notes
    train = index_tiles(scenes, tile, stride_for(tile, config.overlap), split, TRAIN)
    val = index_tiles(scenes, tile, tile, split, VALIDATION, required=False) if split.has_validation else []
    stats = compute_stats(_samples(scenes, train))
    counts = split.train_counts
    mode = config.normalisation
    per_class = ", ".join(f"{name} {count:,}" for name, count in zip(classes.names, counts))
    summary = (f"{split.summary()} {len(train)} training tiles, {len(val)} validation tiles of {tile} px."
               f"\nTraining pixels per class: {per_class}")
    for note in notes:
        warnings.warn(note, GeoFMWarning, stacklevel=2)
    return TrainingData(
        train=SegmentationDataset(scenes, train, stats, mode, split=split, role=TRAIN),
        val=SegmentationDataset(scenes, val, stats, mode, split=split, role=VALIDATION),
        classes=classes, stats=stats if mode == "global" else None, class_weights=_inverse_frequency(counts),
        in_channels=in_channels, band_names=band_names, resolution=resolution, crs=crs, summary=summary,
        tile_size=tile,
    )


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


def _check_pair(image: str, labels: str, config: TrainConfig) -> None:
    """Grid-check a raster pair: GridError when unusable, a GeoFMWarning (which train() passes on as an event)
    for a tolerated CRS difference. Vector labels are reprojected when read."""
    if not is_vector(labels):
        require_usable(check_grid(image, labels, config.tile_size), config.align_labels)


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


def _block_counts(scenes: Sequence[Scene], num_classes: int, cell: int, rows: int = 512) -> list[BlockCounts]:
    """Labelled pixels per class and ``cell``-px cell of every scene: one pass over the labels, in strips."""
    out = []
    for scene in scenes:
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
    return out


def _samples(scenes: Sequence[Scene], items: Sequence[Item]) -> Iterator[tuple[np.ndarray, np.ndarray]]:
    """Raw (data, valid) of every training tile, for the statistics."""
    handles: dict[int, Any] = {}
    try:
        for i, window in items:
            if i not in handles:
                handles[i] = open_raster(scenes[i].image)
            yield read_window(handles[i], window)
    finally:
        for src in handles.values():
            src.close()


def _inverse_frequency(counts: np.ndarray) -> torch.Tensor:
    """Class weights ∝ 1 / pixel count, mean 1 over present classes, capped; absent classes get 0."""
    present = counts > 0
    w = np.zeros(len(counts), dtype=np.float64)
    w[present] = counts[present].sum() / (present.sum() * counts[present])
    w[present] /= w[present].mean()
    w = np.minimum(w, MAX_CLASS_WEIGHT)
    return torch.tensor(w, dtype=torch.float32)

