"""Backbone weights: ImageNet (torchvision), none, or a local torchvision-format state dict."""

from __future__ import annotations

import os
from pathlib import Path

import torch

from .errors import ConfigError, InputError
from .registries import BACKBONES

StateDict = dict[str, torch.Tensor]


def load_backbone_weights(backbone: str, weights: str | os.PathLike) -> StateDict | None:
    """State dict of a 3-band torchvision ResNet without its ``fc`` head, or None for ``'none'``.

    ``weights`` is ``'imagenet'`` (torchvision's ``ResNet*_Weights.DEFAULT``, downloaded once into the torch
    cache), ``'none'`` (random initialisation) or the path of a local file holding a torchvision-format state
    dict (``torch.load(weights_only=True)``: it never runs code from the file). ``fc.*`` keys are dropped.
    """
    BACKBONES.get(backbone)
    if str(weights) == "none":
        return None
    if str(weights) == "imagenet":
        return _strip_fc(_download_imagenet(backbone))
    return _strip_fc(_load_file(backbone, Path(weights)))


class WeightsUnavailable(ConfigError):
    """Pretrained weights could not be fetched (offline, proxy, full disk); training may go on without them."""


def _download_imagenet(backbone: str) -> StateDict:
    """torchvision's ImageNet weights from the torch cache, downloaded there once when online."""
    enum = BACKBONES.load(backbone).imagenet.DEFAULT
    cached = Path(torch.hub.get_dir()) / "checkpoints" / Path(enum.url).name
    try:
        return enum.get_state_dict(progress=False)
    except Exception as err:  # no network, proxy, full disk, corrupt cache: the same advice applies
        reason = str(getattr(err, "reason", "") or err) or type(err).__name__
        raise WeightsUnavailable(
            f"could not get the ImageNet weights for {backbone} (not in {cached.parent}, and the download failed: "
            f"{reason})",
            fix=f"on a machine with internet, download {enum.url} and either copy it to {cached} (geofm then finds "
            "it) or pass the file as the weights; or use weights 'none'",
        ) from err


def _load_file(backbone: str, path: Path) -> StateDict:
    fix = f"pass 'imagenet', 'none' or the path of a torchvision {backbone} state dict (.pth)"
    if not path.is_file():
        raise InputError("the weights file does not exist", path=path, fix=fix)
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as err:  # garbled, truncated, or pickled code that weights_only refuses
        raise InputError(f"cannot read the weights file ({type(err).__name__}: {err})", path=path, fix=fix) from err
    if not isinstance(state, dict) or not all(isinstance(v, torch.Tensor) for v in state.values()):
        raise InputError("the file does not hold a state dict (name -> tensor)", path=path, fix=fix)
    _check_architecture(backbone, _strip_fc(state), path, fix)
    return state


def _check_architecture(backbone: str, state: StateDict, path: Path, fix: str) -> None:
    with torch.device("meta"):
        expected = {k: v.shape for k, v in _strip_fc(BACKBONES.load(backbone).build().state_dict()).items()}
    missing = sorted(set(expected) - set(state))
    unexpected = sorted(set(state) - set(expected))
    wrong = sorted(k for k in set(expected) & set(state) if state[k].shape != expected[k])
    if missing or unexpected or wrong:
        details = "; ".join(
            f"{what}: {', '.join(keys[:3])}{' …' if len(keys) > 3 else ''}"
            for what, keys in (("missing", missing), ("unexpected", unexpected), ("wrong shape", wrong))
            if keys
        )
        raise InputError(f"the weights do not fit a torchvision {backbone} ({details})", path=path, fix=fix)


def _strip_fc(state: StateDict) -> StateDict:
    return {k: v for k, v in state.items() if not k.startswith("fc.")}
