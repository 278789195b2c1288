"""The spatial split of the labelled pixels into training and validation, by square blocks of the image grid.

Labels are split, not tiles: a block's labelled pixels serve either training or validation, while the image
around them stays visible to both (as the unlabelled surroundings of any area are at prediction time). So no
tile is dropped, blocks may be smaller than a tile, and a scene with a handful of polygons or points still gets
validation labels. Blocks go to validation rarest class first, so that every class with pixels in two or more
blocks is validated (from the block holding the least of it, so training keeps most of a rare class), until about
``val_fraction`` of the labelled pixels are held out. When that is impossible
the blocks are halved; with no second labelled block at all, there is no validation and the caller trains a
fixed schedule.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np
from rasterio.windows import Window

#: Smallest block tried before giving up on validation (px).
MIN_BLOCK = 8
#: A split holding out more than this multiple of the wanted share is too coarse: smaller blocks are tried.
COARSE = 2.0
#: Validation may exceed its share by this factor to include a rare class.
OVERSHOOT = 1.5

TRAIN, VALIDATION = "train", "validation"


@dataclass
class LabelSplit:
    """Which blocks of each scene hold validation labels; the rest of the labels are for training."""

    block: int
    val_blocks: dict[int, set[tuple[int, int]]] = field(default_factory=dict)  # scene -> {(block row, block col)}
    train_counts: np.ndarray | None = None  # labelled pixels per class, each pixel once
    val_counts: np.ndarray | None = None
    notes: list[str] = field(default_factory=list)
    wanted: bool = True  # False: a validation share of 0 asked for none

    @property
    def has_validation(self) -> bool:
        return any(self.val_blocks.values())

    def keep(self, scene: int, window: Window, role: str) -> np.ndarray:
        """bool [h, w]: the window's pixels whose labels serve ``role`` (TRAIN or VALIDATION)."""
        rows = (int(window.row_off) + np.arange(int(window.height))) // self.block
        cols = (int(window.col_off) + np.arange(int(window.width))) // self.block
        val = np.zeros((len(rows), len(cols)), bool)
        held = self.val_blocks.get(scene, set())
        for br in np.unique(rows):  # only the few blocks the window touches
            for bc in np.unique(cols):
                if (int(br), int(bc)) in held:
                    val[np.ix_(rows == br, cols == bc)] = True
        return val if role == VALIDATION else ~val

    def summary(self) -> str:
        train, val = int(self.train_counts.sum()), int(self.val_counts.sum())
        blocks = sum(len(b) for b in self.val_blocks.values())
        if not self.wanted:
            return (f"No validation (validation share 0): all {train:,} labelled pixels train; every epoch runs and "
                    "the last is kept.")
        if not self.has_validation:
            return (f"No validation: the labels lie in a single block of {self.block} px, so none can be held out. "
                    f"Training runs every epoch and keeps the last; {train:,} labelled pixels.")
        return (f"Spatial split (blocks of {self.block} px): {train:,} labelled pixels for training, {val:,} for "
                f"validation in {blocks} block(s).")


def split_labels(block_counts: Sequence[np.ndarray], block: int, val_fraction: float, seed: int = 0) -> LabelSplit:
    """Assign blocks to validation; ``block_counts[scene]`` is int64 [K, block rows, block cols] labelled pixels."""
    blocks = [(i, (int(br), int(bc)), counts[:, br, bc]) for i, counts in enumerate(block_counts)
              for br, bc in zip(*np.nonzero(counts.sum(axis=0)))]
    total = np.sum([c.sum(axis=(1, 2)) for c in block_counts], axis=0).astype(np.int64)
    split = LabelSplit(block, {}, total.copy(), np.zeros_like(total), wanted=val_fraction > 0)
    if val_fraction <= 0 or len(blocks) < 2:
        return split
    target = val_fraction * total.sum()
    order = np.random.default_rng(seed).permutation(len(blocks))
    chosen: list[int] = []

    def fits(k: int, limit: float) -> bool:
        counts = blocks[k][2]
        after = split.train_counts - counts
        return (k not in chosen and split.val_counts.sum() + counts.sum() <= limit
                and not np.any((split.train_counts > 0) & (after <= 0)))  # training keeps every class

    def take(k: int) -> None:
        chosen.append(k)
        split.train_counts -= blocks[k][2]
        split.val_counts += blocks[k][2]

    for cls in np.argsort(total):  # rarest class first
        if total[cls] == 0 or split.val_counts[cls] > 0:
            continue
        holders = [k for k in order if blocks[k][2][cls] > 0]
        if len(holders) < 2:
            continue  # a class in one block only: it stays for training
        for k in sorted(holders, key=lambda k: blocks[k][2][cls]):  # least of the class: training keeps the most
            if fits(k, max(OVERSHOOT * target, blocks[k][2].sum())) and len(chosen) + 1 < len(blocks):
                take(k)
                break
    for k in order:
        if split.val_counts.sum() >= target or len(chosen) + 1 >= len(blocks):
            break
        held, size = split.val_counts.sum(), blocks[k][2].sum()
        if fits(k, OVERSHOOT * target) and abs(held + size - target) < abs(held - target):
            take(k)
    for k in chosen:
        split.val_blocks.setdefault(blocks[k][0], set()).add(blocks[k][1])
    return split


class BlockCounts:
    """Labelled pixels per class on a fine grid of ``fine``-px cells of one scene, coarsened to any multiple."""

    def __init__(self, width: int, height: int, fine: int, num_classes: int) -> None:
        self.fine, self.k = fine, num_classes
        self.counts = np.zeros((num_classes, -(-height // fine), -(-width // fine)), np.int64)

    def add(self, labels: np.ndarray, window: Window) -> None:
        """Count ``labels`` [h, w] (class indices, -1 = none) read at ``window`` of the image grid."""
        rows, cols = np.nonzero(labels >= 0)
        if rows.size == 0:
            return
        r = (rows + int(window.row_off)) // self.fine
        c = (cols + int(window.col_off)) // self.fine
        _, nr, nc = self.counts.shape
        flat = (labels[rows, cols] * nr + r) * nc + c
        self.counts += np.bincount(flat, minlength=self.counts.size).reshape(self.counts.shape)

    def at(self, block: int) -> np.ndarray:
        """int64 [K, rows, cols] counts per ``block``-px block (a multiple of ``fine``)."""
        f = block // self.fine
        k, nr, nc = self.counts.shape
        padded = np.zeros((k, -(-nr // f) * f, -(-nc // f) * f), np.int64)
        padded[:, :nr, :nc] = self.counts
        return padded.reshape(k, padded.shape[1] // f, f, padded.shape[2] // f, f).sum(axis=(2, 4))


def fine_cell(block: int) -> int:
    """The finest counting cell for a split that starts at ``block`` px and may halve it: a divisor of ``block``
    at least MIN_BLOCK px, and at least block / 16 (bounds memory on huge rasters)."""
    cell = block
    while cell % 2 == 0 and cell // 2 >= max(MIN_BLOCK, block // 16):
        cell //= 2
    return cell


def choose_split(counts: Sequence[BlockCounts], block: int, val_fraction: float, seed: int) -> LabelSplit:
    """The split at ``block`` px, or at halved blocks while validation stays empty or takes far more than its
    share (the labels then lie in too few blocks)."""
    fine = counts[0].fine if counts else block
    size, notes = block, []
    while True:
        split = split_labels([c.at(size) for c in counts], size, val_fraction, seed)
        smaller = size // 2
        if val_fraction <= 0 or smaller < fine or smaller % fine:
            break
        share = split.val_counts.sum() / max(1, split.train_counts.sum() + split.val_counts.sum())
        if split.has_validation and share <= COARSE * val_fraction:
            break
        size = smaller
    if size != block:
        notes.append(f"The labels lie in few blocks of {block} px, so the validation split uses blocks of {size} px "
                     "(validation labels then sit closer to training ones; set split_block to choose).")
    split.notes = notes
    return split
