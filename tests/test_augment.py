"""Batch augmentation: image and labels turn and flip together, bands jitter per tile, repeatably for a given
generator."""

import torch

from geofm.core.augment import augment_batch, jitter_bands


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


def test_band_jitter_shifts_each_band_of_each_tile_and_keeps_the_pixels_order():
    x = torch.randn(6, 4, 8, 8, generator=torch.Generator().manual_seed(1))
    jittered = jitter_bands(x, 0.1, torch.Generator().manual_seed(2))
    assert jittered.shape == x.shape and not torch.allclose(jittered, x)
    for tile, band in [(0, 0), (3, 2), (5, 3)]:  # one gain and one offset per band of a tile: a straight line
        fit = torch.linalg.lstsq(torch.stack([x[tile, band].flatten(), torch.ones(64)], 1),
                                 jittered[tile, band].flatten()[:, None]).solution.flatten()
        assert torch.allclose(x[tile, band] * fit[0] + fit[1], jittered[tile, band], atol=1e-5)
        assert 0.5 < float(fit[0]) < 1.5 and abs(float(fit[1])) < 0.5  # about 10 %, not a new image
    change = (jittered - x).mean(dim=(2, 3))
    assert change.std() > 0.01  # tiles and bands differ from each other
    again = jitter_bands(x, 0.1, torch.Generator().manual_seed(2))
    assert torch.equal(jittered, again)
