"""Segmentation model: a registered backbone adapted to N bands, with a registered decoder (see registries.py)."""

from __future__ import annotations

import os
from collections.abc import Sequence
from typing import Any

import torch
from torch import nn
from torchvision.models._utils import IntermediateLayerGetter

from .errors import ConfigError
from .registries import BACKBONES, DECODERS
from .weights import Pretrained, WeightsUnavailable, load_pretrained

#: Backbone stage names a decoder may use -> the torchvision ResNet child that yields it.
_STAGE_LAYERS = {"stem": "relu", "layer1": "layer1", "layer2": "layer2", "layer3": "layer3", "layer4": "layer4"}


def build_model(
    backbone: str = "resnet50",
    decoder: str = "fpn",
    in_channels: int = 3,
    num_classes: int = 2,
    weights: str | os.PathLike = "none",
    rgb_bands: Sequence[int] | None = (0, 1, 2),
    notes: list[str] | None = None,
    band_names: list[str] | None = None,
    band_map: str | None = None,
    spectral_branch: bool = False,
    pretrained_decoder: bool = False,
) -> SegmentationModel:
    """A segmentation network: float [B, in_channels, H, W] -> logits [B, num_classes, H, W].

    ``backbone`` and ``decoder`` are names in ``registries.BACKBONES`` and ``registries.DECODERS``; the decoder
    reads the backbone stages it names in ``uses`` (see :mod:`.decoders`).
    ``weights`` is ``'imagenet'``, ``'none'`` or a local state-dict path (see :mod:`.weights`);
    pretrained first-conv kernels are adapted to ``in_channels`` bands as :func:`adapt_first_conv` describes;
    with ``'none'`` an N-band first conv is initialised as torchvision initialises its convs. ``rgb_bands``
    names the (0-based) bands holding red, green and blue. Freeze the backbone with
    :meth:`SegmentationModel.freeze_backbone`. Given a ``notes`` list, pretrained weights that cannot be fetched
    (offline) are replaced by random ones and a note for the user is appended, instead of an error. A backbone
    package (``geofm pretrain``) brings a first conv for these very bands (checked against ``band_names``): it is
    used as it is, without RGB adaptation; published weights (:mod:`.published_weights`) get one built from the
    kernels of the bands ``band_names`` (or ``band_map``, weights band names) place the image's bands on.
    ``spectral_branch`` adds :class:`SpectralBranch`: per-pixel class scores from the band values alone, added to
    the decoder's. With ``pretrained_decoder`` the decoder too starts from the backbone package's, when it carries
    one of this kind (all but the classifier; otherwise a note says it starts from random weights). Rebuild a model
    from its description with ``build_model(**model.architecture, weights='none')``.
    """
    decoder_class = DECODERS.load(decoder)
    if in_channels < 1 or num_classes < 1:
        raise ConfigError(
            f"a model needs at least one band and one class (got {in_channels} bands, {num_classes} classes)",
            fix="check the image's bands and the label classes",
        )
    rgb = _check_rgb_bands(rgb_bands, in_channels)
    net = BACKBONES.load(backbone).build()
    try:
        pretrained = load_pretrained(backbone, weights, in_channels, band_names, band_map)
    except WeightsUnavailable as err:
        if notes is None:
            raise
        notes.append(f"{err.problem}. Training starts from random weights instead. To use them: {err.fix}.")
        pretrained = None
    state = pretrained.state if pretrained is not None else None
    if pretrained is not None and pretrained.native:
        net.conv1 = conv_like(net.conv1, in_channels, state["conv1.weight"])
        net.load_state_dict(state, strict=False)  # only fc.* is missing: weights.py checked the rest
    elif state is not None:
        net.load_state_dict(state, strict=False)  # only fc.* is missing: weights.py checked the rest
        if in_channels != 3 or rgb != (0, 1, 2):
            net.conv1 = conv_like(net.conv1, in_channels, adapt_first_conv(net.conv1.weight.data, in_channels, rgb))
    elif in_channels != 3:
        net.conv1 = conv_like(net.conv1, in_channels)
    body = IntermediateLayerGetter(net, return_layers={_STAGE_LAYERS[name]: name for name in decoder_class.uses})
    head = decoder_class(_probe(body, in_channels), in_channels, num_classes)
    if pretrained_decoder:
        _load_decoder(head, decoder, pretrained, notes)
    architecture = {
        "backbone": backbone,
        "decoder": decoder,
        "in_channels": in_channels,
        "num_classes": num_classes,
        "rgb_bands": list(rgb) if rgb is not None else None,
    }
    if spectral_branch:  # only then in the description: packages of earlier versions rebuild unchanged
        architecture["spectral_branch"] = True
    spectral = SpectralBranch(in_channels, num_classes) if spectral_branch else None
    return SegmentationModel(body, head, architecture, spectral, pretrained_backbone=pretrained is not None)


def adapt_first_conv(weight: torch.Tensor, in_channels: int, rgb_bands: Sequence[int] | None) -> torch.Tensor:
    """Turn pretrained RGB kernels [O, 3, k, k] into N-band kernels [O, N, k, k].

    Band ``rgb_bands[j]`` keeps the pretrained kernel of RGB channel j; every other band starts from the mean
    RGB kernel. All kernels are then scaled by 3/N so that, for bands of similar values, the conv's output
    keeps the magnitude it had on 3-band input (one band gets the sum of the RGB kernels). With
    ``rgb_bands=None`` (or fewer than 3 bands) every band starts from the mean kernel.
    """
    new = weight.mean(dim=1, keepdim=True).repeat(1, in_channels, 1, 1)
    for j, band in enumerate(rgb_bands or ()):
        new[:, band] = weight[:, j]
    return new * (3.0 / in_channels)


class SpectralBranch(nn.Sequential):
    """A per-pixel classifier of the band values (1x1 convolutions: a small MLP applied to every pixel).

    On small labelled areas a backbone with a wide receptive field learns the polygons' surroundings; this branch
    sees only the pixel's own spectrum, as a pixel-wise classifier does, and its scores are added to the map's.
    """

    def __init__(self, in_channels: int, num_classes: int, width: int = 64):
        layers: list[nn.Module] = []
        for c_in in (in_channels, width):
            layers += [nn.Conv2d(c_in, width, 1, bias=False), nn.BatchNorm2d(width), nn.ReLU(inplace=True)]
        super().__init__(*layers, nn.Conv2d(width, num_classes, 1))


class SegmentationModel(nn.Module):
    """Backbone + decoder (+ an optional spectral branch); ``architecture`` is the dict that rebuilds it (see
    :func:`build_model`)."""

    def __init__(self, backbone: IntermediateLayerGetter, decoder: nn.Module, architecture: dict[str, Any],
                 spectral: SpectralBranch | None = None, pretrained_backbone: bool = False):
        super().__init__()
        self.backbone = backbone
        self.decoder = decoder
        self.spectral = spectral
        self.architecture = architecture
        self.backbone_frozen = False
        self.pretrained_backbone = pretrained_backbone  # the backbone started from weights (see parameter groups)

    def forward(self, x: torch.Tensor, parts: bool = False):
        """float [B, C, H, W] -> logits [B, K, H, W]; with ``parts``, (logits, the spectral branch's own logits)
        so that training can also teach the branch alone (None without a branch)."""
        logits, pixel = self.decoder(self.backbone(x), x), None
        if self.spectral is not None:
            pixel = self.spectral(x)
            logits = logits + pixel
        return (logits, pixel) if parts else logits

    def freeze_backbone(self, frozen: bool = True) -> None:
        """Stop (or resume) training the backbone: no gradients, batch-norm statistics kept as they are.

        Under DDP, wrap the model after the last change, or DDP will not synchronise re-enabled parameters.
        """
        self.backbone_frozen = frozen
        self.backbone.requires_grad_(not frozen)
        self.train(self.training)

    def train(self, mode: bool = True) -> SegmentationModel:
        super().train(mode)
        if self.backbone_frozen:
            self.backbone.eval()
        return self


def _load_decoder(head: nn.Module, decoder: str, pretrained: Pretrained | None, notes: list[str] | None) -> None:
    """Start ``head`` from the pretrained decoder when there is one of the same kind; a note when there is not."""
    name, state = pretrained.decoder if pretrained is not None and pretrained.decoder else (None, {})
    if name != decoder:
        if notes is not None:
            had = f"a {name} decoder" if name else "no decoder"
            notes.append(f"the pretrained weights carry {had}, so the {decoder} decoder starts from random weights")
        return
    missing, unexpected = head.load_state_dict(state, strict=False)
    if unexpected or any(not is_output_weight(head, k) for k in missing):
        raise ConfigError(f"the pretrained {name} decoder does not fit this model (missing {missing[:3]}, "
                          f"unexpected {unexpected[:3]})", fix="pretrain the backbone again with this geofm")


def is_output_weight(head: nn.Module, key: str) -> bool:
    """True for the weights of the decoder's last layer (the classifier, which pretraining does not provide)."""
    last = [name for name, module in head.named_modules() if isinstance(module, nn.Conv2d)][-1]
    return key.startswith(last + ".")


def conv_like(conv: nn.Conv2d, in_channels: int, weight: torch.Tensor | None = None) -> nn.Conv2d:
    """A copy of ``conv`` taking ``in_channels`` bands: given ``weight``, or initialised as torchvision does."""
    new = nn.Conv2d(in_channels, conv.out_channels, conv.kernel_size, conv.stride, conv.padding, bias=False)
    if weight is None:
        nn.init.kaiming_normal_(new.weight, mode="fan_out", nonlinearity="relu")
    else:
        new.weight.data.copy_(weight)
    return new


def _check_rgb_bands(rgb_bands: Sequence[int] | None, in_channels: int) -> tuple[int, ...] | None:
    """The RGB mapping to use: None when not given or when there are fewer than 3 bands."""
    if rgb_bands is None or in_channels < 3:
        return None
    rgb = tuple(int(b) for b in rgb_bands)
    if len(rgb) != 3 or len(set(rgb)) != 3 or not all(0 <= b < in_channels for b in rgb):
        raise ConfigError(
            f"rgb_bands must be three different band indices in 0..{in_channels - 1} (got {list(rgb_bands)})",
            fix="name the (0-based) bands that hold red, green and blue, e.g. [2, 1, 0]",
        )
    return rgb


def _probe(body: nn.Module, in_channels: int, size: int = 64) -> list[tuple[int, int]]:
    """(channels, output stride) of each returned stage, measured on meta tensors (shapes only, no compute)."""
    meta = {name: t.to("meta") for name, t in [*body.named_parameters(), *body.named_buffers()]}
    with torch.no_grad():
        features = torch.func.functional_call(body, meta, (torch.zeros(1, in_channels, size, size, device="meta"),))
    return [(f.shape[1], size // f.shape[-1]) for f in features.values()]
