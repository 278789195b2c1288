"""From a TrainConfig to checked, split, normalised training and validation tiles."""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from rasterio.windows import Window

from .classes import ClassMap, check_several_classes
from .config import TrainConfig, is_vector
from .dataset import Item, Scene, SegmentationDataset, build_scenes, index_tiles, pair_folders, split_tiles
from .errors import ConfigError
from .grid import check_grid, require_usable
from .normalise import BandStats, compute_stats
from .package import package_metadata
from .raster import open_raster, read_window

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


def prepare_training_data(config: TrainConfig) -> TrainingData:
    """Check every (image, labels) pair, build scenes and tiles, split them spatially and compute statistics."""
    pairs = _pairs(config)
    for img, lbl in pairs:
        _check_pair(img, lbl, config)
    in_channels, band_names, resolution, crs = _image_facts([img for img, _ in pairs])
    given = ClassMap.from_list(config.classes) if config.classes else None
    field = config.label_field if any(is_vector(lbl) for _, lbl in pairs) else None
    scenes, classes = build_scenes(pairs, field, given, config.ignore_values, config.background)
    items = index_tiles(scenes, config.tile_size, config.stride)
    train, val, split_summary = split_tiles(items, config.effective_split_block, config.val_fraction, config.seed)
    counts = np.zeros(classes.num_classes, dtype=np.int64)
    stats = compute_stats(_samples(scenes, train, counts))
    check_several_classes(classes, counts, pairs[0][1] if len(pairs) == 1 else None)
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


def _check_pair(image: str, labels: str, config: TrainConfig) -> None:
    """Grid-check a raster pair: GridError when unusable, a GeoFMWarning (which train() passes on as an event)
    for a tolerated CRS difference. Vector labels are reprojected when read."""
    if not is_vector(labels):
        require_usable(check_grid(image, labels, config.tile_size), config.align_labels)


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


def _samples(scenes: Sequence[Scene], items: Sequence[Item], counts: np.ndarray
             ) -> Iterator[tuple[np.ndarray, np.ndarray]]:
    """Raw (data, valid) of every training tile, for the statistics; counts label pixels per class on the way,
    each pixel once however many overlapping tiles hold it."""
    handles: dict[int, tuple] = {}
    covers: dict[int, _Cover] = {}
    try:
        for i, window in items:
            if i not in handles:
                handles[i], covers[i] = scenes[i].open(), _Cover()
            src, labels = handles[i]
            data, valid = read_window(src, window)
            y = labels.read(window)[valid & covers[i].new_pixels(window)]
            counts += np.bincount(y[y >= 0], minlength=len(counts))
            yield data, valid
    finally:
        for src, labels in handles.values():
            labels.close()
            src.close()


class _Cover:
    """The windows of one scene seen so far, so a pixel shared by overlapping tiles is counted once."""

    def __init__(self) -> None:
        self.cells: dict[tuple[int, int], list[tuple[int, int, int, int]]] = {}
        self.size = 0

    def new_pixels(self, window: Window) -> np.ndarray:
        """True [h,w] where ``window`` holds a pixel no earlier window held; remembers ``window``."""
        c0, r0, w, h = int(window.col_off), int(window.row_off), int(window.width), int(window.height)
        self.size = self.size or max(w, h)
        new = np.ones((h, w), dtype=bool)
        cx, cy = c0 // self.size, r0 // self.size
        for dx in (-1, 0, 1):
            for dy in (-1, 0, 1):
                for oc, orow, ow, oh in self.cells.get((cx + dx, cy + dy), ()):
                    a, b = max(c0, oc), min(c0 + w, oc + ow)
                    t, u = max(r0, orow), min(r0 + h, orow + oh)
                    if a < b and t < u:
                        new[t - r0 : u - r0, a - c0 : b - c0] = False
        self.cells.setdefault((cx, cy), []).append((c0, r0, w, h))
        return new


def _inverse_frequency(counts: np.ndarray) -> torch.Tensor:
    """Class weights ∝ 1 / pixel count, mean 1 over present classes, capped; absent classes get 0."""
    present = counts > 0
    w = np.zeros(len(counts), dtype=np.float64)
    w[present] = counts[present].sum() / (present.sum() * counts[present])
    w[present] /= w[present].mean()
    w = np.minimum(w, MAX_CLASS_WEIGHT)
    return torch.tensor(w, dtype=torch.float32)

