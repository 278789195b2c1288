"""The spatial split of labelled pixels: disjoint labels, every class validated where it can be, fallbacks."""

from __future__ import annotations

import numpy as np
import pytest
from rasterio.windows import Window

from geofm.core.split import TRAIN, VALIDATION, BlockCounts, choose_split, fine_cell


def _counts(labels: np.ndarray, block: int) -> list[BlockCounts]:
    counts = BlockCounts(labels.shape[1], labels.shape[0], fine_cell(block), int(labels.max()) + 1)
    counts.add(labels, Window(0, 0, labels.shape[1], labels.shape[0]))
    return [counts]


def _roles(split, labels: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    whole = Window(0, 0, labels.shape[1], labels.shape[0])
    labelled = labels >= 0
    return labelled & split.keep(0, whole, TRAIN), labelled & split.keep(0, whole, VALIDATION)


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_dense_labels_split_into_disjoint_pixels_with_every_class_in_both(seed):
    rng = np.random.default_rng(seed)
    labels = np.repeat(np.repeat(rng.integers(0, 5, (20, 30)), 16, axis=0), 16, axis=1)  # 320 × 480, 5 classes
    labels[:40, :40] = -1
    split = choose_split(_counts(labels, 64), 64, 0.2, seed)
    train, val = _roles(split, labels)
    assert not (train & val).any() and (train | val).sum() == (labels >= 0).sum()
    assert 0.15 <= val.sum() / (labels >= 0).sum() <= 0.3
    for cls in range(5):
        assert (labels[train] == cls).any() and (labels[val] == cls).any()
    assert split.train_counts.tolist() == np.bincount(labels[train], minlength=5).tolist()  # each pixel once
    assert f"{int(val.sum()):,} for validation" in split.summary()


def test_split_is_seeded_and_zero_share_keeps_everything_for_training():
    labels = np.repeat(np.repeat(np.random.default_rng(0).integers(0, 3, (10, 10)), 32, 0), 32, 1)
    a, b, c = (choose_split(_counts(labels, 64), 64, 0.2, s).val_blocks for s in (7, 7, 8))
    assert a == b and a != c
    split = choose_split(_counts(labels, 64), 64, 0.0, 0)
    assert not split.has_validation and split.train_counts.sum() == labels.size
    assert split.summary().startswith(f"No validation (validation share 0): all {labels.size:,} labelled pixels")


def test_a_few_points_get_validation_of_every_class():
    """91 points on a 318 × 235 scene (as the Peru scene): a tile-based split left no validation tile."""
    rng = np.random.default_rng(1)
    labels = np.full((235, 318), -1)
    labels[rng.integers(0, 235, 91), rng.integers(0, 318, 91)] = rng.integers(0, 4, 91)
    split = choose_split(_counts(labels, 256), 256, 0.2, 0)
    train, val = _roles(split, labels)
    assert split.has_validation and val.sum() >= 10 and train.sum() >= 50
    assert set(np.unique(labels[val])) == {0, 1, 2, 3}


def test_labels_in_one_block_are_split_with_smaller_blocks_and_said_so():
    labels = np.full((256, 256), -1)
    labels[64:128, 64:128] = np.random.default_rng(0).integers(0, 3, (64, 64))
    split = choose_split(_counts(labels, 64), 64, 0.2, 0)
    train, val = _roles(split, labels)
    assert split.has_validation and split.block < 64 and "blocks of" in split.notes[0]
    assert set(np.unique(labels[val])) == {0, 1, 2} and not (train & val).any()


def test_labels_in_one_small_patch_train_without_validation_and_say_so():
    labels = np.full((64, 64), -1)
    labels[3:5, 3:5] = [[0, 1], [1, 0]]
    split = choose_split(_counts(labels, 64), 64, 0.2, 0)
    assert not split.has_validation
    assert "No validation" in split.summary() and "keeps the last" in split.summary()


def test_a_rare_class_is_validated_from_where_it_is_least_so_training_keeps_most_of_it():
    labels = np.zeros((128, 256), int)
    labels[:, 128:] = 1
    labels[0:9, 0:10] = 2  # 90 px of the rare class in the first 64-px block …
    labels[70:72, 200:205] = 2  # … and 10 px in another
    split = choose_split(_counts(labels, 64), 64, 0.2, 0)
    train, val = _roles(split, labels)
    assert (labels[val] == 2).sum() == 10 and (labels[train] == 2).sum() == 90
