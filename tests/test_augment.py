"""Batch augmentation: image and labels turn and flip together, repeatably for a given generator."""

import torch

from geofm.core.augment import augment_batch


def test_image_and_labels_get_the_same_flip_and_turn():
    y = torch.randint(0, 5, (16, 8, 8))
    x = torch.stack([y.float(), -y.float()], dim=1)  # the image carries its labels
    ax, ay = augment_batch(x, y, torch.Generator().manual_seed(0))
    assert torch.equal(ax[:, 0].long(), ay) and torch.equal(ax[:, 1].long(), -ay)
    assert not torch.equal(ay, y)  # something moved
    assert sorted(ay.flatten().tolist()) == sorted(y.flatten().tolist())


def test_same_generator_seed_gives_the_same_batch():
    y = torch.randint(0, 5, (8, 6, 6))
    x = y[:, None].float()
    a = augment_batch(x, y, torch.Generator().manual_seed(3))
    b = augment_batch(x, y, torch.Generator().manual_seed(3))
    assert torch.equal(a[0], b[0]) and torch.equal(a[1], b[1])
