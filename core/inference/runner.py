"""The model seam: what inference needs from a model, whatever runs it (torch here, onnxruntime elsewhere).

A runner is any object with the package facts below and ``probabilities``; :class:`.torch_runner.TorchRunner`
wraps a :class:`..package.ModelPackage`. This module imports no torch, so a runner built without it plugs in:
pass it to ``predict`` / ``evaluate`` in place of a package.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from typing import TYPE_CHECKING, Any, Protocol

import numpy as np

from ..errors import ConfigError, PackageError

if TYPE_CHECKING:
    from ..classes import ClassMap
    from ..normalise import BandStats


class Runner(Protocol):
    """A model ready to run, with the facts of its package.

    ``classes`` (K classes), ``tile_size`` (px), ``in_channels`` (bands), ``normalisation`` ('global' | 'per_tile')
    and ``stats``, training ``resolution`` (x, y; None if unknown) and ``crs`` (WKT or None), ``path`` (of the
    package, '' if none). Optional: ``metadata`` (the package's metadata.json; ``train_config`` and ``bands`` are
    read) and ``device`` (where it runs, in words: 'cpu', 'cuda', 'onnxruntime (CPUExecutionProvider)'); read them
    with :func:`metadata_of` and :func:`device_of`.
    """

    classes: ClassMap
    tile_size: int
    in_channels: int
    normalisation: str
    stats: BandStats | None
    resolution: tuple[float, float] | None
    crs: str | None
    path: str

    def probabilities(self, raw_tiles: np.ndarray, valid: np.ndarray) -> np.ndarray:
        """Raw band values float32 [B, C, T, T] and their validity [B, T, T] -> softmax probabilities float32
        [B, K, T, T]. The runner normalises (as the package says); invalid pixels get probabilities all the same
        (the caller masks them)."""
        ...


def metadata_of(runner: Runner) -> dict[str, Any]:
    """The runner's package metadata ({} when it has none)."""
    metadata = getattr(runner, "metadata", None)
    return metadata if isinstance(metadata, dict) else {}


def device_of(runner: Runner) -> str:
    """Where the runner runs, in words (its class name when it does not say)."""
    return str(getattr(runner, "device", None) or type(runner).__name__)


def is_runner(model: Any) -> bool:
    """Whether ``model`` is a runner already (rather than a package or a path to load)."""
    return callable(getattr(model, "probabilities", None))


def runner_loader(model: Any, device: str = "auto") -> Callable[[], Runner]:
    """A function that returns the runner for ``model``: a runner as it is, an onnxruntime runner for a .onnx
    path, or a torch runner for a :class:`..package.ModelPackage` or a .geofm path on ``device``.

    The device is checked now (ConfigError); the package loads when the function is called, in the job's thread.
    """
    if is_runner(model):
        return lambda: model
    if isinstance(model, (str, os.PathLike)) and os.fspath(model).lower().endswith(".onnx"):
        from ..onnx_model import OnnxModel, import_onnxruntime, providers_for

        providers_for(device, import_onnxruntime().get_available_providers())  # the device is checked now
        return lambda: OnnxModel.load(model, device)
    try:
        from ..device import resolve_device
        from .torch_runner import TorchRunner
    except ImportError as err:
        path = model if isinstance(model, (str, os.PathLike)) else None
        raise ConfigError(f"a .geofm model package needs torch, which cannot be imported here ({err})", path=path,
                          fix="install torch (see README), or predict with a runner that needs no torch") from err
    torch_device = resolve_device(device)
    return lambda: TorchRunner.load(model, torch_device)


def check_bands(runner: Runner, raster_band_count: int, path: str | os.PathLike) -> None:
    """PackageError when the raster at ``path`` has a different band count than the model needs."""
    need = runner.in_channels
    if raster_band_count != need:
        names = (metadata_of(runner).get("bands") or {}).get("names")
        which = f" ({', '.join(names)})" if names else ""
        raise PackageError(
            f"the model needs {need} bands but the raster has {raster_band_count}",
            path=path,
            fix=f"use a raster with the same {need} bands{which}, in the same order, as the training image "
            "(e.g. build a virtual raster or stack the bands), or train a model on this raster's bands",
        )
