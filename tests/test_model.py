"""Model: N-band first conv from RGB kernels, every registered backbone and decoder, tile sizes, freezing,
rebuild from architecture. Parametrised over the registries: a new entry is tested without a new test."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
import torch.nn.functional as F

from geofm.core.errors import ConfigError
from geofm.core.model import build_model
from geofm.core.registries import BACKBONES, DECODERS


def rgb_kernels(path: Path) -> torch.Tensor:
    return torch.load(path, weights_only=True)["conv1.weight"]


@pytest.mark.parametrize("decoder", DECODERS.names())
@pytest.mark.parametrize("bands", [1, 3, 4, 13])
def test_band_adaptation_keeps_rgb_kernels_and_tile_shape(resnet18_weights, bands, decoder) -> None:
    model = build_model("resnet18", decoder, in_channels=bands, num_classes=3, weights=resnet18_weights).eval()
    with torch.no_grad():
        logits = model(torch.randn(1, bands, 64, 64))
    assert logits.shape == (1, 3, 64, 64)
    rgb = rgb_kernels(resnet18_weights)
    conv = model.backbone.conv1.weight.detach()
    assert conv.shape == (64, bands, 7, 7)
    scale = 3 / bands
    if bands >= 3:
        torch.testing.assert_close(conv[:, :3], rgb * scale)  # R, G, B kernels survive, scaled
    for band in range(3 if bands >= 3 else 0, bands):
        torch.testing.assert_close(conv[:, band], rgb.mean(1) * scale)


@pytest.mark.parametrize("bands", [1, 4, 13])
def test_adapted_conv_keeps_activation_magnitude(resnet18_weights, bands) -> None:
    """The same value in every band gives the same first-conv response as that value in R, G and B."""
    multi = build_model("resnet18", "simple", in_channels=bands, weights=resnet18_weights).backbone.conv1
    image = torch.rand(1, 1, 32, 32)
    expected = F.conv2d(image.expand(1, 3, 32, 32), rgb_kernels(resnet18_weights), stride=2, padding=3)
    with torch.no_grad():
        torch.testing.assert_close(multi(image.expand(1, bands, 32, 32)), expected)


def test_rgb_bands_mapping(resnet18_weights) -> None:
    model = build_model("resnet18", "simple", in_channels=4, weights=resnet18_weights, rgb_bands=(3, 2, 1))
    conv, rgb = model.backbone.conv1.weight.detach(), rgb_kernels(resnet18_weights)
    for j, band in enumerate((3, 2, 1)):
        torch.testing.assert_close(conv[:, band], rgb[:, j] * 3 / 4)
    torch.testing.assert_close(conv[:, 0], rgb.mean(1) * 3 / 4)
    assert model.architecture["rgb_bands"] == [3, 2, 1]


@pytest.mark.parametrize("rgb_bands", [(0, 1), (0, 0, 1), (0, 1, 4)])
def test_bad_rgb_bands(rgb_bands) -> None:
    with pytest.raises(ConfigError, match="rgb_bands"):
        build_model("resnet18", "simple", in_channels=4, rgb_bands=rgb_bands)


def test_random_init_n_bands() -> None:
    model = build_model("resnet18", "fpn", in_channels=5, num_classes=4, weights="none")
    assert model.backbone.conv1.weight.shape == (64, 5, 7, 7)
    assert model(torch.randn(1, 5, 64, 64)).shape == (1, 4, 64, 64)


def test_simple_decoder_upsamples_by_measured_stride_without_interpolation(monkeypatch) -> None:
    model = build_model("resnet18", "simple", in_channels=3, num_classes=2).eval()
    assert model.decoder.up.stride == (32, 32) and model.decoder.up.kernel_size == (32, 32)

    def no_interpolation(*args, **kwargs):
        raise AssertionError("interpolation used for a tile divisible by 32")

    monkeypatch.setattr(F, "interpolate", no_interpolation)
    with torch.no_grad():
        assert model(torch.randn(1, 3, 96, 64)).shape == (1, 2, 96, 64)


@pytest.mark.parametrize("decoder", DECODERS.names())
@pytest.mark.parametrize("backbone", BACKBONES.names())
def test_every_backbone_and_decoder_gives_logits_at_the_tile_size(backbone, decoder) -> None:
    """Also for tiles not divisible by the backbone's stride of 32."""
    model = build_model(backbone, decoder, in_channels=5, num_classes=3).eval()
    with torch.no_grad():
        assert model(torch.randn(2, 5, 100, 68)).shape == (2, 3, 100, 68)
        assert model(torch.randn(1, 5, 64, 64)).shape == (1, 3, 64, 64)


@pytest.mark.parametrize("decoder", DECODERS.names())
def test_every_decoder_learns_a_pixel_rule(decoder) -> None:
    """A class decided by each pixel's own band value (a checkerboard of single pixels) is learnt in a few steps
    only by decoders that keep full resolution; the others must at least lower the loss."""
    torch.manual_seed(0)
    model = build_model("resnet18", decoder, in_channels=2, num_classes=2)
    x = torch.randn(2, 2, 32, 32)
    y = (x[:, 0] > 0).long()
    optimiser = torch.optim.Adam(model.parameters(), lr=1e-2)
    losses = []
    for _ in range(30):
        loss = F.cross_entropy(model(x), y)
        optimiser.zero_grad()
        loss.backward()
        optimiser.step()
        losses.append(loss.item())
    assert losses[-1] < losses[0]
    if decoder == "unet":
        with torch.no_grad():  # batch statistics, as in training (running ones lag behind after 30 steps)
            accuracy = (model(x).argmax(1) == y).float().mean().item()
        assert accuracy > 0.95


def test_unknown_backbone_and_decoder() -> None:
    with pytest.raises(ConfigError, match="(?s)unknown backbone 'resnet7'.*resnet18, resnet34, resnet50, resnet101"):
        build_model("resnet7")
    with pytest.raises(ConfigError, match="(?s)unknown decoder 'segformer'.*fpn, unet, simple"):
        build_model("resnet18", "segformer")
    with pytest.raises(ConfigError, match="at least one band"):
        build_model("resnet18", "simple", in_channels=0)


def test_freeze_backbone() -> None:
    model = build_model("resnet18", "simple", in_channels=4, num_classes=2)
    model.freeze_backbone()
    model.train()
    assert not any(p.requires_grad for p in model.backbone.parameters())
    assert all(p.requires_grad for p in model.decoder.parameters())
    assert not model.backbone.bn1.training and model.decoder.block[1].training
    before = model.backbone.bn1.running_mean.clone()
    model(torch.randn(2, 4, 64, 64)).mean().backward()
    assert torch.equal(model.backbone.bn1.running_mean, before)
    assert model.backbone.conv1.weight.grad is None and model.decoder.up.weight.grad is not None
    model.freeze_backbone(False)
    assert all(p.requires_grad for p in model.parameters()) and model.backbone.bn1.training


def test_architecture_rebuilds_the_model(resnet18_weights) -> None:
    model = build_model("resnet18", "fpn", in_channels=4, num_classes=3, weights=resnet18_weights).eval()
    assert model.architecture == {
        "backbone": "resnet18",
        "decoder": "fpn",
        "in_channels": 4,
        "num_classes": 3,
        "rgb_bands": [0, 1, 2],
    }
    again = build_model(**model.architecture, weights="none").eval()
    again.load_state_dict(model.state_dict())
    x = torch.randn(1, 4, 64, 64)
    with torch.no_grad():
        torch.testing.assert_close(again(x), model(x))


def test_spectral_branch_lets_a_coarse_decoder_learn_a_pixel_rule() -> None:
    """With the per-pixel branch, the FPN (stride 4, bilinear logits) learns a class decided by each pixel's own
    band value; its branch alone classifies the pixels too, and the package's description rebuilds it."""
    torch.manual_seed(0)
    model = build_model("resnet18", "fpn", in_channels=2, num_classes=2, spectral_branch=True)
    x = torch.randn(2, 2, 32, 32)
    y = (x[:, 0] > 0).long()
    optimiser = torch.optim.Adam(model.parameters(), lr=1e-2)
    for _ in range(30):
        logits, pixel = model(x, parts=True)
        loss = F.cross_entropy(logits, y) + F.cross_entropy(pixel, y)
        optimiser.zero_grad()
        loss.backward()
        optimiser.step()
    with torch.no_grad():
        logits, pixel = model(x, parts=True)
    assert (logits.argmax(1) == y).float().mean().item() > 0.95
    assert (pixel.argmax(1) == y).float().mean().item() > 0.95
    again = build_model(**model.architecture, weights="none")
    assert model.architecture["spectral_branch"] and again.spectral is not None
    again.load_state_dict(model.state_dict())
