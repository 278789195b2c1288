"""Batch augmentation: image and labels shift, turn and flip together, repeatably for a given generator."""

import torch

from geofm.core.augment import augment_batch, shift_batch


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


def test_shifted_tiles_move_image_and_labels_together_and_keep_a_label():
    """Cuts of 8 px out of 16 px items (an 8 px tile with 4 px of context) land at different places, image and
    labels alike; an item labelled only at its tile's corner pixel still has that label in its cut."""
    y = torch.randint(0, 5, (32, 16, 16))
    y[0] = -1
    y[0, 4, 4] = 3  # the tile's top-left pixel; most cuts miss it
    x = y[:, None].float()
    sx, sy = shift_batch(x, y, 8, torch.Generator().manual_seed(0))
    assert sx.shape == (32, 1, 8, 8) and torch.equal(sx[:, 0].long(), sy)
    assert (sy[0] == 3).any()
    starts = {(r, c) for k in range(1, 32) for r in range(9) for c in range(9) if torch.equal(sy[k], y[k, r:r + 8, c:c + 8])}
    assert len(starts) > 10
    same = shift_batch(x, y, 8, torch.Generator().manual_seed(0))
    assert torch.equal(same[1], sy)
    assert shift_batch(x, y, 16, torch.Generator())[1] is y  # no margin: nothing to cut
