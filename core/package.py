"""Model package: one ``.geofm`` zip holding ``weights.pt`` (a tensor-only state dict) and ``metadata.json``.

Everything needed to run the model travels with it: architecture, bands, normalisation statistics, classes,
tile size, resolution, CRS, the training config, metrics and software versions. Loading never executes code
from the file: weights are read with ``torch.load(weights_only=True)``, metadata with ``json``.
"""

from __future__ import annotations

import importlib.metadata
import io
import json
import math
import os
import pickle
import platform
import re
import zipfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
import torchvision
from torch import nn

from .classes import ClassMap, check_class_list
from .errors import ConfigError, GeoFMError, LabelError, PackageError
from .fileio import atomic_path
from .model import build_model
from .normalise import BandStats

FORMAT_VERSION = 1
METADATA = "metadata.json"
WEIGHTS = "weights.pt"
NORMALISATIONS = ("global", "per_tile")


@dataclass
class ModelPackage:
    """A loaded package; ``model`` is in eval mode on the requested device."""

    model: nn.Module
    metadata: dict[str, Any]
    classes: ClassMap
    stats: BandStats | None
    normalisation: str
    tile_size: int
    in_channels: int
    resolution: tuple[float, float] | None
    crs: str | None
    path: str = ""


def package_metadata(
    *,
    classes: ClassMap,
    band_count: int,
    tile_size: int,
    normalisation: str = "global",
    stats: BandStats | None = None,
    band_names: list[str] | None = None,
    resolution: tuple[float, float] | None = None,
    crs: str | None = None,
    train_config: dict[str, Any] | None = None,
    metrics: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """The metadata dict :func:`save_package` expects (``resolution`` in CRS units per pixel, x then y;
    ``crs`` as WKT). ``format_version``, ``architecture`` and ``versions`` are added when saving."""
    if normalisation not in NORMALISATIONS:
        raise ConfigError(f"unknown normalisation {normalisation!r}", fix=f"choose one of {', '.join(NORMALISATIONS)}")
    return {
        "bands": {"count": int(band_count), "names": list(band_names) if band_names else None},
        "normalisation": {"mode": normalisation, "stats": stats.to_dict() if stats is not None else None},
        "classes": classes.to_list(),
        "tile_size": int(tile_size),
        "resolution": [float(r) for r in resolution] if resolution is not None else None,
        "crs": crs,
        "train_config": train_config or {},
        "metrics": metrics or {},
    }


def save_package(path: str | os.PathLike, model: nn.Module, metadata: dict[str, Any]) -> None:
    """Write ``model`` (a :func:`.model.build_model` model, possibly DDP- or compile-wrapped) and ``metadata``
    (see :func:`package_metadata`) to ``path`` atomically."""
    for wrapper in ("module", "_orig_mod"):
        model = getattr(model, wrapper, model)
    architecture = dict(model.architecture)
    if (
        metadata["bands"]["count"] != architecture["in_channels"]
        or len(metadata["classes"]) != architecture["num_classes"]
    ):
        raise PackageError(
            f"the metadata ({metadata['bands']['count']} bands, {len(metadata['classes'])} classes) does not match "
            f"the model ({architecture['in_channels']} bands, {architecture['num_classes']} classes)",
            path=path,
            fix="build the metadata from the same bands and classes the model was built for",
        )
    full = {"format_version": FORMAT_VERSION, "architecture": architecture, **metadata, "versions": versions()}
    buffer = io.BytesIO()
    torch.save({k: v.detach().cpu().contiguous() for k, v in model.state_dict().items()}, buffer)
    with atomic_path(path) as tmp, zipfile.ZipFile(tmp, "w") as zf:
        zf.writestr(METADATA, json.dumps(full, indent=2), compress_type=zipfile.ZIP_DEFLATED)
        zf.writestr(WEIGHTS, buffer.getvalue(), compress_type=zipfile.ZIP_STORED)


def load_package(path: str | os.PathLike, device: str | torch.device = "cpu") -> ModelPackage:
    """Read a package written by :func:`save_package`; PackageError for anything unreadable, unsafe or unknown."""
    path = Path(path)
    metadata, state = _read_package(path)
    if metadata.get("kind") == BACKBONE:
        raise PackageError("this is a pretrained backbone, not a segmentation model: it cannot predict",
                           path=path, fix=f"fine-tune a model from it: geofm train --weights {path} …")
    _check_metadata(metadata, path)
    try:
        model = build_model(**metadata["architecture"], weights="none")
        model.load_state_dict(state)
        stats = metadata["normalisation"]["stats"]
        resolution = metadata.get("resolution")
        package = ModelPackage(
            model=model.to(device).eval(),
            metadata=metadata,
            classes=ClassMap.from_list(metadata["classes"], path),
            stats=BandStats.from_dict(stats) if stats else None,
            normalisation=str(metadata["normalisation"]["mode"]),
            tile_size=int(metadata["tile_size"]),
            in_channels=int(metadata["architecture"]["in_channels"]),
            resolution=(float(resolution[0]), float(resolution[1])) if resolution else None,
            crs=metadata.get("crs"),
            path=str(path),
        )
    except (KeyError, TypeError, ValueError, RuntimeError, ConfigError, LabelError) as err:
        raise PackageError(
            f"the package's metadata or weights are inconsistent ({type(err).__name__}: {err})",
            path=path,
            fix=_REEXPORT,
        ) from err
    return package


def refused_pickle_reason(err: BaseException) -> str:
    """What a weights-only ``torch.load`` refused, without torch's advice to retry with ``weights_only=False`` (which
    would run the file's code) or to allow-list globals: 'unsupported GLOBAL posix.system …'."""
    keep = []
    for part in re.split(r"(?<=[.!?])\s+|\n+", str(err)):
        part = part.strip()
        low = part.lower()
        if not part or any(w in low for w in ("weights_only", "weights only", "trusted source", "add_safe_globals",
                                              "safe_globals", "documentation", "arbitrary code", "pytorch 2.6")):
            continue
        keep.append(part.replace("WeightsUnpickler error: ", ""))
    return " ".join(keep) or "objects that are not tensors"


BACKBONE = "backbone"


@dataclass
class BackbonePackage:
    """A pretrained backbone (``kind: "backbone"``): torchvision-named weights for ``in_channels`` bands, the
    normalisation statistics it was trained with, and where it came from."""

    state: dict[str, torch.Tensor]
    metadata: dict[str, Any]
    backbone: str
    in_channels: int
    band_names: list[str] | None
    stats: BandStats | None
    licence: str
    path: str = ""
    decoder: str | None = None  # the pretrained decoder's name, when the package carries one
    decoder_state: dict[str, torch.Tensor] = field(default_factory=dict)


#: Prefix of a pretrained decoder's weights among a backbone package's.
DECODER_PREFIX = "decoder."


def backbone_metadata(*, backbone: str, band_count: int, band_names: list[str] | None, stats: BandStats | None,
                      trained_on: dict[str, Any], licence: str = "", config: dict[str, Any] | None = None
                      ) -> dict[str, Any]:
    """The metadata :func:`save_backbone_package` expects."""
    return {
        "kind": BACKBONE,
        "backbone": backbone,
        "bands": {"count": int(band_count), "names": list(band_names) if band_names else None},
        "normalisation": {"mode": "global", "stats": stats.to_dict() if stats is not None else None},
        "trained_on": trained_on,
        "licence": licence or "",
        "pretrain_config": config or {},
    }


def save_backbone_package(path: str | os.PathLike, state: dict[str, torch.Tensor], metadata: dict[str, Any],
                          decoder: tuple[str, dict[str, torch.Tensor]] | None = None) -> None:
    """Write a backbone package (the same zip layout as a model package) atomically; ``decoder`` (name, weights)
    adds a pretrained decoder."""
    conv = state.get("conv1.weight")
    if conv is None or conv.shape[1] != metadata["bands"]["count"]:
        raise PackageError("the backbone's first convolution does not match its band count", path=path,
                           fix="build the metadata from the bands the backbone was trained on")
    full = {"format_version": FORMAT_VERSION, **metadata, "versions": versions()}
    if decoder is not None:
        full["decoder"] = decoder[0]
        state = {**state, **{DECODER_PREFIX + k: v for k, v in decoder[1].items()}}
    buffer = io.BytesIO()
    torch.save({k: v.detach().cpu().contiguous() for k, v in state.items()}, buffer)
    with atomic_path(path) as tmp, zipfile.ZipFile(tmp, "w") as zf:
        zf.writestr(METADATA, json.dumps(full, indent=2), compress_type=zipfile.ZIP_DEFLATED)
        zf.writestr(WEIGHTS, buffer.getvalue(), compress_type=zipfile.ZIP_STORED)


def is_backbone_package(path: str | os.PathLike) -> bool:
    """True for a readable zip whose metadata says ``kind: "backbone"`` (reads only the metadata)."""
    try:
        with zipfile.ZipFile(path) as zf:
            return json.loads(zf.read(METADATA).decode("utf-8")).get("kind") == BACKBONE
    except Exception:  # not a zip, no metadata, bad JSON: not a backbone package
        return False


def load_backbone_package(path: str | os.PathLike) -> BackbonePackage:
    """Read a backbone package (weights only as tensors); PackageError for anything else."""
    path = Path(path)
    metadata, state = _read_package(path)
    if metadata.get("kind") != BACKBONE:
        raise PackageError("this package is a segmentation model, not a pretrained backbone", path=path,
                           fix="pass a backbone package written by geofm pretrain")
    decoder = {k[len(DECODER_PREFIX):]: v for k, v in state.items() if k.startswith(DECODER_PREFIX)}
    try:
        stats = metadata["normalisation"]["stats"]
        return BackbonePackage(
            state={k: v for k, v in state.items() if not k.startswith(DECODER_PREFIX)}, metadata=metadata,
            backbone=str(metadata["backbone"]), in_channels=int(metadata["bands"]["count"]),
            band_names=metadata["bands"].get("names"), stats=BandStats.from_dict(stats) if stats else None,
            licence=str(metadata.get("licence") or ""), path=str(path),
            decoder=str(metadata["decoder"]) if decoder and metadata.get("decoder") else None, decoder_state=decoder)
    except (KeyError, TypeError, ValueError) as err:
        raise PackageError(f"the backbone package's metadata is incomplete ({type(err).__name__}: {err})",
                           path=path, fix="pretrain the backbone again") from err


def read_package_metadata(path: str | os.PathLike) -> dict[str, Any]:
    """The metadata of a model or backbone package, format-checked, weights read safely but not built."""
    return _read_package(Path(path))[0]


def _read_package(path: Path) -> tuple[dict[str, Any], dict[str, torch.Tensor]]:
    if path.is_dir():
        found = sorted(path.glob("*.geofm"))
        hint = f", e.g. {found[0]}" if found else " (.geofm)"
        raise PackageError("this is a folder, not a model package", path=path,
                           fix=f"give the model package file inside it{hint}")
    if not path.is_file():
        raise PackageError("the model package does not exist", path=path, fix="check the path, or train a model first")
    metadata, raw = _read_members(path)
    _check_format(metadata, path)
    try:
        state = torch.load(io.BytesIO(raw), map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as err:
        raise PackageError(
            f"refused to load the weights: they hold objects other than tensors, which could run code "
            f"({refused_pickle_reason(err)})",
            path=path,
            fix="only open packages written by geofm from a source you trust; re-export the model with geofm",
        ) from err
    except Exception as err:
        raise PackageError(f"the weights are damaged ({type(err).__name__}: {err})", path=path, fix=_REEXPORT) from err
    if not isinstance(state, dict) or not all(isinstance(v, torch.Tensor) for v in state.values()):
        raise PackageError("the package's weights are not a state dict (name -> tensor)", path=path, fix=_REEXPORT)
    return metadata, state


def versions() -> dict[str, str]:
    """Versions of geofm and the libraries that shape a model's results."""
    try:
        import rasterio

        rasterio_version = rasterio.__version__
    except ImportError:
        rasterio_version = "not installed"
    return {
        "geofm": geofm_version(),
        "torch": torch.__version__,
        "torchvision": torchvision.__version__,
        "rasterio": rasterio_version,
        "python": platform.python_version(),
    }


def geofm_version() -> str:
    """Installed geofm version; inside QGIS (not pip-installed) the plugin's metadata.txt; else 'unknown'."""
    try:
        return importlib.metadata.version("geofm")
    except importlib.metadata.PackageNotFoundError:
        txt = Path(__file__).resolve().parent.parent / "metadata.txt"
        found = re.search(r"^version\s*=\s*(\S+)", txt.read_text(encoding="utf-8"), re.M) if txt.is_file() else None
        return found.group(1) if found else "unknown"


_REEXPORT = "re-export the model with geofm, or train it again"
#: Problem and fix for a file that is no model at all (a raster, a text file…), for every front.
NOT_A_MODEL = "not a geofm model package (.geofm) or ONNX model (.onnx)"
CHOOSE_A_MODEL = "choose the .geofm file that training saved"


def _read_members(path: Path) -> tuple[dict[str, Any], bytes]:
    try:
        with zipfile.ZipFile(path) as zf:
            missing = {METADATA, WEIGHTS} - set(zf.namelist())
            if missing:
                raise PackageError(
                    f"not a complete geofm model package: {', '.join(sorted(missing))} missing",
                    path=path,
                    fix=_REEXPORT,
                )
            metadata = json.loads(zf.read(METADATA).decode("utf-8"))
            raw = zf.read(WEIGHTS)
    except GeoFMError:
        raise
    except zipfile.BadZipFile as err:
        raise PackageError(f"this is {NOT_A_MODEL}", path=path, fix=CHOOSE_A_MODEL) from err
    except (OSError, ValueError, zipfile.LargeZipFile, EOFError) as err:  # ValueError covers bad JSON / UTF-8
        raise PackageError(f"the package is damaged ({type(err).__name__}: {err})", path=path, fix=_REEXPORT) from err
    if not isinstance(metadata, dict):
        raise PackageError("the package's metadata.json is not an object", path=path, fix=_REEXPORT)
    return metadata, raw


def _check_format(metadata: dict[str, Any], path: Path) -> None:
    version = metadata.get("format_version")
    if not isinstance(version, int) or isinstance(version, bool) or version < 1:
        raise PackageError(f"unknown package format version {version!r}", path=path, fix=_REEXPORT)
    if version > FORMAT_VERSION:
        needed = (metadata.get("versions") or {}).get("geofm", "a newer version")
        raise PackageError(
            f"the package has format version {version}; this geofm ({geofm_version()}) reads format "
            f"{FORMAT_VERSION} at most",
            path=path,
            fix=f"update geofm to version {needed} or newer",
        )


def _check_metadata(metadata: dict[str, Any], path: Path) -> None:
    """The values a prediction relies on, checked on load so that a damaged or hand-edited package is refused
    naming the package and the value, rather than failing (or predicting nonsense) later."""
    def bad(problem: str) -> PackageError:
        return PackageError(f"the package's metadata is unusable: {problem}", path=path, fix=_REEXPORT)

    def number(v: Any) -> bool:
        return isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v)

    tile = metadata.get("tile_size")
    if not isinstance(tile, int) or isinstance(tile, bool) or tile < 1:
        raise bad(f"tile size {tile!r} (a whole number of pixels, 1 or more)")
    resolution = metadata.get("resolution")
    if resolution is not None and (not isinstance(resolution, list) or len(resolution) != 2
                                   or not all(number(r) and r > 0 for r in resolution)):
        raise bad(f"resolution {resolution!r} (two pixel sizes above 0, or null)")
    architecture = metadata.get("architecture")
    bands = architecture.get("in_channels") if isinstance(architecture, dict) else None
    if not isinstance(bands, int) or isinstance(bands, bool) or bands < 1:
        raise bad(f"band count {bands!r} in 'architecture'")
    norm = metadata.get("normalisation")
    if not isinstance(norm, dict) or norm.get("mode") not in NORMALISATIONS:
        raise bad(f"normalisation {norm!r} (mode one of {', '.join(NORMALISATIONS)})")
    stats = norm.get("stats")
    if norm["mode"] == "global" and not isinstance(stats, dict):
        raise bad("global normalisation without band statistics")
    if isinstance(stats, dict):
        for key in ("mean", "std"):
            v = stats.get(key)
            if not isinstance(v, list) or len(v) != bands or not all(number(x) for x in v):
                raise bad(f"statistics {key} {v!r} (one finite number per band, {bands} bands)")
        zero = [b + 1 for b, x in enumerate(stats["std"]) if x <= 0]
        if zero:
            raise bad(f"band(s) {zero} have standard deviation {stats['std'][zero[0] - 1]!r}; it must be above 0 "
                      "(every value would be divided by it)")
    try:
        check_class_list(metadata.get("classes"), path)
    except LabelError as err:
        raise bad(err.problem) from err
