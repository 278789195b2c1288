"""Backbone weights: ImageNet (torchvision), none, a local torchvision-format state dict, or a geofm backbone
package (``geofm pretrain``) whose first conv already takes the image's bands."""

from __future__ import annotations

import os
import socket
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import urlparse

import torch

from .errors import ConfigError, InputError
from .normalise import BandStats
from .registries import BACKBONES

StateDict = dict[str, torch.Tensor]

#: Seconds the download server (or the proxy) gets to accept a connection before geofm gives up on fetching
#: weights: behind a firewall that drops packets, a plain download would wait minutes before failing.
CONNECT_TIMEOUT_S = 10.0


@dataclass
class Pretrained:
    """Weights to start a backbone from. ``native``: the first conv already takes the image's bands, in the image's
    order (no RGB adaptation); ``stats``: the normalisation the weights expect (None: the image's own);
    ``record``: what the model package says about where the weights came from (name, licence); ``decoder``: a
    pretrained decoder's name and weights (a backbone package of masked reconstruction), else None."""

    state: StateDict
    native: bool = False
    stats: BandStats | None = None
    record: dict[str, Any] = field(default_factory=dict)
    decoder: tuple[str, StateDict] | None = None


def load_pretrained(backbone: str, weights: str | os.PathLike, in_channels: int,
                    band_names: list[str] | None = None, band_map: str | None = None) -> Pretrained | None:
    """The weights a segmentation model of ``in_channels`` bands (named ``band_names`` when known) starts from.

    A geofm backbone package must be of the same backbone and bands (count, and names when both have them);
    its first conv is used as it is. Published weights (a key of :data:`.published_weights.PUBLISHED`, or a file
    recognised by its SHA-256) get a first conv built from their kernels for the image's bands, placed by
    :func:`.published_weights.map_bands` (``band_map`` overrides). Anything else goes through :func:`load_backbone_weights` (3-band kernels the
    model adapts). ``None`` for ``'none'``.
    """
    if str(weights) not in ("none", "imagenet") and _is_backbone_package(weights):
        package = load_backbone_for(backbone, weights, in_channels, band_names)
        return Pretrained(package.state, native=True, stats=package.stats, record=backbone_record(package),
                          decoder=(package.decoder, package.decoder_state) if package.decoder else None)
    entry = published_entry(weights)
    if entry is not None:
        return load_published(entry, backbone, weights, in_channels, band_names, band_map)
    state = load_backbone_weights(backbone, weights)
    if state is None:
        return None
    return Pretrained(state, record={"weights": str(weights) if str(weights) == "imagenet" else Path(weights).name})


def load_backbone_for(backbone: str, path: str | os.PathLike, in_channels: int, band_names: list[str] | None,
                      image: str | None = None):
    """A backbone package checked against the run: the same backbone, the same band count, the same band names
    when both have them. ConfigError naming both otherwise."""
    from .package import load_backbone_package

    package = load_backbone_package(path)
    fix = "pretrain the backbone again with geofm pretrain"
    if package.backbone in BACKBONES.names():
        conv = package.state.get("conv1.weight")
        first = {"conv1.weight": conv[:, :3]} if conv is not None and conv.ndim == 4 else {}
        _check_architecture(package.backbone, {**package.state, **first}, Path(path), fix)
    where = f" of {image}" if image else ""
    if package.backbone != backbone:
        raise ConfigError(f"the backbone package holds a {package.backbone}, but this run trains a {backbone}",
                          path=path, fix=f"train with --backbone {package.backbone}")
    if package.in_channels != in_channels:
        raise ConfigError(f"the backbone was pretrained on {package.in_channels} band(s)"
                          f"{_names(package.band_names)}, but the image{where} has {in_channels}{_names(band_names)}",
                          path=path, fix="fine-tune on images with the bands the backbone was pretrained on, or "
                                         "pretrain a backbone on these images")
    if package.band_names and band_names and [n.lower() for n in package.band_names] != [
            n.lower() for n in band_names]:
        raise ConfigError(f"the backbone was pretrained on bands {_names(package.band_names).strip()}, but the "
                          f"image{where} has bands {_names(band_names).strip()}", path=path,
                          fix="use an image with the same bands in the same order (or clear its band descriptions "
                              "if only the names differ)")
    return package


def backbone_record(package) -> dict[str, Any]:
    trained = package.metadata.get("trained_on") or {}
    return {"weights": Path(package.path).name, "kind": "backbone", "licence": package.licence,
            "method": trained.get("method"), "trained_on": [f.get("name") for f in trained.get("files", [])]}


def _names(names: list[str] | None) -> str:
    return f" ({', '.join(names)})" if names else ""


def _is_backbone_package(path: str | os.PathLike) -> bool:
    from .package import is_backbone_package

    return Path(path).is_file() and is_backbone_package(path)


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
        if not cached.is_file():
            check_reachable(enum.url)
        return enum.get_state_dict(progress=False)
    except Exception as err:  # no network, proxy, full disk, corrupt cache: the same advice applies
        reason = str(getattr(err, "reason", "") or err) or type(err).__name__
        raise WeightsUnavailable(
            f"could not get the ImageNet weights for {backbone} (not in {cached.parent}, and the download failed: "
            f"{reason})",
            fix=f"on a machine with internet, download {enum.url} and either copy it to {cached} (geofm then finds "
            "it) or pass the file as the weights; or use weights 'none'",
        ) from err


def check_reachable(url: str, seconds: float = CONNECT_TIMEOUT_S) -> None:
    """Raise OSError unless the server of ``url`` — or the proxy the environment names for it — accepts a
    connection within ``seconds``."""
    parsed = urlparse(url)
    proxy = urllib.request.getproxies().get(parsed.scheme)
    if proxy and urllib.request.proxy_bypass(parsed.hostname or ""):  # NO_PROXY names the server
        proxy = None
    target = urlparse(proxy if "://" in proxy else f"http://{proxy}") if proxy else parsed
    default_port = 443 if target.scheme == "https" else 80
    host, port = target.hostname or "", target.port or default_port
    try:
        socket.create_connection((host, port), timeout=seconds).close()
    except (socket.timeout, TimeoutError) as err:  # one class from Python 3.10 on
        raise OSError(f"{host} did not answer within {seconds:g} s") from err


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


# -- published geospatial backbones ---------------------------------------------------------------------------------
_HASHES: dict[tuple[str, int, int], str] = {}


def published_entry(weights: str | os.PathLike):
    """The :class:`~.published_weights.PublishedWeights` that ``weights`` names (a key) or is (a file whose SHA-256
    starts with an entry's hash prefix); None for anything else. A file that looks like published weights (a
    multispectral first conv of an entry's band count) but whose hash matches none is an InputError."""
    from .published_weights import PUBLISHED

    if str(weights) in PUBLISHED:
        return PUBLISHED[str(weights)]
    path = Path(weights)
    if not path.is_file() or _is_backbone_package(path):
        return None
    digest = file_sha256(path)
    for entry in PUBLISHED.values():
        if entry.sha256 == digest or (entry.sha256_prefix and digest.startswith(entry.sha256_prefix)):
            return entry
    return None


def file_sha256(path: Path) -> str:
    import hashlib

    stat = path.stat()
    key = (str(path.resolve()), stat.st_size, stat.st_mtime_ns)
    if key not in _HASHES:
        h = hashlib.sha256()
        with open(path, "rb") as f:
            for block in iter(lambda: f.read(1 << 20), b""):
                h.update(block)
        _HASHES[key] = h.hexdigest()
    return _HASHES[key]


def published_file(entry) -> Path:
    """The entry's file in the torch cache, downloaded once and verified against its hash prefix."""
    cached = Path(torch.hub.get_dir()) / "checkpoints" / entry.file_name
    if not cached.is_file():
        try:
            cached.parent.mkdir(parents=True, exist_ok=True)
            check_reachable(entry.url)
            torch.hub.download_url_to_file(entry.url, str(cached), hash_prefix=entry.sha256_prefix, progress=False)
        except Exception as err:  # no network, proxy, full disk, a hash mismatch (the partial file is removed)
            reason = str(getattr(err, "reason", "") or err) or type(err).__name__
            raise WeightsUnavailable(
                f"could not get the {entry.label} weights (not in {cached.parent}, and the download failed: "
                f"{reason})",
                fix=f"on a machine with internet, download {entry.url} and pass the file as the weights (geofm "
                    f"recognises and verifies it), or copy it to {cached}; or use weights 'none'") from err
    _verify(entry, cached)
    return cached


def _verify(entry, path: Path) -> None:
    digest = file_sha256(path)
    if not digest.startswith(entry.sha256_prefix) or (entry.sha256 and digest != entry.sha256):
        raise InputError(f"this file is not the published {entry.label} weights: its SHA-256 starts with "
                         f"{digest[:8]}, the published file's with {entry.sha256_prefix}", path=path,
                         fix=f"download it again from {entry.url}")


def load_published(entry, backbone: str, weights: str | os.PathLike, in_channels: int,
                   band_names: list[str] | None, band_map: str | None) -> Pretrained:
    """Published weights for an image of ``in_channels`` bands: the first conv's kernels of the weights bands the
    image's bands are placed on (scaled by weights bands / image bands, so a subset keeps the activation's size),
    the input scaling the weights expect as normalisation statistics, and the licence."""
    from .published_weights import map_bands

    if entry.backbone != backbone:
        raise ConfigError(f"the {entry.label} weights are for a {entry.backbone}, but this run trains a {backbone}",
                          fix=f"train with --backbone {entry.backbone}")
    placed = map_bands(entry, band_names, in_channels, band_map=band_map)
    if str(weights) == entry.key:
        path = published_file(entry)  # downloaded once, verified
    else:
        path = Path(weights)
        _verify(entry, path)
    fix = f"download the file again from {entry.url}"
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as err:
        raise InputError(f"cannot read the weights file ({type(err).__name__}: {err})", path=path, fix=fix) from err
    if not isinstance(state, dict) or not all(isinstance(v, torch.Tensor) for v in state.values()):
        raise InputError("the file does not hold a state dict (name -> tensor)", path=path, fix=fix)
    state = _strip_fc(_torchvision_names(state))
    conv = state.get("conv1.weight")
    if conv is None or conv.ndim != 4 or conv.shape[1] != entry.in_channels:
        raise InputError(f"the weights' first conv does not take the {entry.in_channels} bands of {entry.label}",
                         path=path, fix=fix)
    _check_architecture(backbone, {**state, "conv1.weight": conv[:, :3]}, path, fix)
    state["conv1.weight"] = conv[:, placed] * (entry.in_channels / in_channels)
    stats = BandStats([entry.offset[k] for k in placed], [entry.scale[k] for k in placed])
    record = {"weights": entry.key, "label": entry.label, "licence": entry.licence, "url": entry.url,
              "sha256_prefix": entry.sha256_prefix, "scaling": entry.scaling,
              "band_map": [entry.bands[k].name for k in placed]}
    return Pretrained(state, native=True, stats=stats, record=record)


def _torchvision_names(state: StateDict) -> StateDict:
    """timm's ResNet keys are torchvision's already; prefixes some exports add (``module.``, ``encoder.``,
    ``backbone.``, ``model.``) are removed."""
    out = {}
    for key, value in state.items():
        for prefix in ("module.", "encoder.", "backbone.", "model."):
            if key.startswith(prefix):
                key = key[len(prefix):]
        out[key] = value
    return out


def band_wavelengths(src) -> list[float | None]:
    """Each band's centre wavelength in nm from GDAL metadata (``WAVELENGTH``/``wavelength``, nm or µm, or the
    IMAGERY domain's ``CENTRAL_WAVELENGTH_UM``), None where unknown."""
    found: list[float | None] = []
    for b in range(1, src.count + 1):
        tags = {k.lower(): v for k, v in {**src.tags(b), **src.tags(b, ns="IMAGERY")}.items()}
        value = tags.get("central_wavelength_um") or tags.get("wavelength")
        try:
            nm = float(value) if value is not None else None
        except ValueError:
            nm = None
        found.append(nm * 1000 if nm is not None and nm < 30 else nm)
    return found


def pretrained_for_images(backbone: str, weights: str, image: str, band_map: str | None = None
                          ) -> tuple[BandStats | None, dict[str, Any] | None, str | None]:
    """Before any data is read: for a backbone package or published weights, the statistics the run must normalise
    with, the record the model package keeps, and the band map (weights band names) that places the image's bands;
    all None for other weights. Wrong bands fail here, naming both sides."""
    from .raster import open_raster

    if weights in ("none", "imagenet"):
        return None, None, None
    with open_raster(image) as src:
        names = [d or "" for d in src.descriptions]
        count, wavelengths = src.count, band_wavelengths(src)
    names_or_none = names if any(names) else None
    if _is_backbone_package(weights):
        package = load_backbone_for(backbone, weights, count, names_or_none, image)
        return package.stats, backbone_record(package), None
    entry = published_entry(weights)
    if entry is None:
        return None, None, None
    from .published_weights import map_bands

    if entry.backbone != backbone:
        raise ConfigError(f"the {entry.label} weights are for a {entry.backbone}, but this run trains a {backbone}",
                          fix=f"train with --backbone {entry.backbone}")
    placed = map_bands(entry, names_or_none, count, wavelengths, band_map)
    resolved = ",".join(entry.bands[k].name for k in placed)
    stats = BandStats([entry.offset[k] for k in placed], [entry.scale[k] for k in placed])
    record = {"weights": entry.key, "label": entry.label, "licence": entry.licence, "url": entry.url,
              "sha256_prefix": entry.sha256_prefix, "scaling": entry.scaling, "band_map": resolved.split(",")}
    return stats, record, resolved
