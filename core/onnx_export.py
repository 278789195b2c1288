"""Export a model package to ONNX, for prediction without torch and for other tools (Deepness, QGIS plugins, servers).

The graph takes **raw band values** float32 [batch, bands, tile, tile] and returns **softmax probabilities**
[batch, classes, tile, tile]: the package's normalisation (global statistics or per-tile) and the softmax are
inside it. A pixel that is NaN or infinite in any band (or equal to ``nodata`` in any band, when given) is invalid,
as in geofm: it is left out of per-tile statistics and fed to the network as 0 after normalisation. Its
probabilities are still computed; masking them is the consumer's job. The channel count is fixed, the batch is
dynamic; height and width are fixed to the tile size (Deepness reads the tile size from the input shape and refuses
a symbolic one) unless ``dynamic_size`` is set.

Metadata (``metadata_props``, every value JSON-encoded): the keys Deepness reads (``model_type``, ``class_names``,
``resolution`` in cm/px, ``tile_size``/``tiles_size``, ``tiles_overlap`` in per cent, ``standardization_mean``/
``standardization_std`` chosen so that Deepness, which divides inputs by 255 first, feeds raw values, and
``seg_thresh``) and geofm's own (``geofm_metadata``: the package's metadata.json, whole, which
:func:`.onnx_model.read_geofm_metadata` reads back). See docs/onnx.md.
"""

from __future__ import annotations

import copy
import io
import json
import os
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import torch
from rasterio.crs import CRS
from rasterio.errors import CRSError
from torch import nn

from .errors import ConfigError
from .events import Event, FinishedEvent, ProgressEvent
from .fileio import atomic_path
from .normalise import EPS, BandStats
from .onnx_model import (
    INPUT,
    KEY_FORMAT,
    KEY_INPUT,
    KEY_METADATA,
    KEY_NODATA,
    KEY_VERSION,
    ONNX_FORMAT,
    OUTPUT,
)
from .package import ModelPackage, geofm_version, load_package

#: onnxruntime 1.12 (the oldest Deepness allows: onnxruntime-gpu>=1.12.1,<=1.17.0) loads opsets up to 17 and IR
#: version 8; the exporter writes IR 8 for opset 17.
OPSET = 17
OPSETS = range(13, 21)
DEFAULT_OVERLAP = 0.5  # what geofm predict uses; written as Deepness's tiles_overlap (per cent)


class ExportGraph(nn.Module):
    """Raw bands -> validity -> normalisation -> network -> softmax, in torch ops the ONNX exporter knows."""

    def __init__(self, model: nn.Module, normalisation: str, stats: BandStats | None, nodata: float | None = None):
        super().__init__()
        self.model = model
        self.mode = normalisation
        self.nodata = None if nodata is None else float(nodata)
        if normalisation == "global":
            if stats is None:
                raise ConfigError("global normalisation needs band statistics, and the package has none",
                                  fix="train the model again (the statistics are saved with it)")
            as_buffer = lambda v: torch.tensor(v, dtype=torch.float32).view(1, -1, 1, 1)  # noqa: E731
            self.register_buffer("mean", as_buffer(stats.mean))
            self.register_buffer("std", as_buffer(stats.std))
            self.clip = stats.low is not None and stats.high is not None
            if self.clip:
                self.register_buffer("low", as_buffer(stats.low))
                self.register_buffer("high", as_buffer(stats.high))
        elif normalisation != "per_tile":
            raise ConfigError(f"unknown normalisation mode {normalisation!r}", fix="use 'global' or 'per_tile'")

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        bad = torch.isnan(x) | torch.isinf(x)
        if self.nodata is not None:
            bad = bad | (x == self.nodata)
        valid = bad.sum(dim=1, keepdim=True) == 0  # [B,1,H,W]: no band is invalid
        zero = torch.zeros_like(x)
        x = torch.where(valid, x, zero)
        if self.mode == "global":
            if self.clip:
                x = torch.minimum(torch.maximum(x, self.low), self.high)
            x = (x - self.mean) / self.std
        else:  # per tile, per band, over the valid pixels (population std, as numpy's)
            weight = valid.to(x.dtype)
            count = weight.sum(dim=(2, 3), keepdim=True).clamp(min=1.0)
            mean = (x * weight).sum(dim=(2, 3), keepdim=True) / count
            centred = (x - mean) * weight
            std = torch.sqrt((centred * centred).sum(dim=(2, 3), keepdim=True) / count)
            x = (x - mean) / (std + EPS)
        x = torch.where(valid, x, zero)
        return torch.softmax(self.model(x), dim=1)


def export_onnx(
    package: ModelPackage | str | os.PathLike,
    out: str | os.PathLike,
    opset: int = OPSET,
    *,
    nodata: float | None = None,
    dynamic_size: bool = False,
    overlap: float = DEFAULT_OVERLAP,
) -> Path:
    """Write ``package`` (a loaded package or a .geofm path) to the ONNX file ``out`` atomically; return ``out``.

    ``nodata``: a raw value that marks invalid pixels inside the graph (for consumers such as Deepness that feed raw
    values; geofm itself passes NaN). ``dynamic_size``: symbolic height and width (Deepness cannot load that).
    ``overlap``: the share of a tile neighbouring windows should repeat, recorded for Deepness.
    """
    out = Path(out)
    source = Path(package.path) if isinstance(package, ModelPackage) and package.path else None
    if not isinstance(package, ModelPackage):
        source = Path(package)
    _check_output(out, source)
    if opset not in OPSETS:
        raise ConfigError(f"opset {opset} is not supported", fix=f"use {OPSET} (the default) or another of "
                                                                  f"{OPSETS.start}..{OPSETS.stop - 1}")
    if not 0 <= overlap <= 0.9:
        raise ConfigError(f"overlap {overlap!r} must lie between 0 and 0.9", fix="use 0.5 (the default)")
    onnx = _import_onnx()
    pkg = package if isinstance(package, ModelPackage) else load_package(package, "cpu")
    model = copy.deepcopy(pkg.model).cpu().eval()
    graph = ExportGraph(model, pkg.normalisation, pkg.stats, nodata).eval()
    tile, bands, k = pkg.tile_size, pkg.in_channels, pkg.classes.num_classes
    axes = {0: "batch", 2: "height", 3: "width"} if dynamic_size else {0: "batch"}
    buffer = io.BytesIO()
    with torch.no_grad():  # (the CLI hides the exporter's deprecation notes; no process-wide filter swap here)
        torch.onnx.export(graph, (torch.zeros(2, bands, tile, tile),), buffer, dynamo=False, opset_version=opset,
                          input_names=[INPUT], output_names=[OUTPUT], dynamic_axes={INPUT: axes, OUTPUT: axes},
                          do_constant_folding=True)
    proto = onnx.load_from_string(buffer.getvalue())
    dims = proto.graph.output[0].type.tensor_type.shape.dim
    dims[1].dim_value = k  # the class axis is known; the exporter leaves it symbolic after Resize
    if not dynamic_size:
        dims[2].dim_value = dims[3].dim_value = tile
    proto.producer_name, proto.producer_version = "geofm", geofm_version()
    proto.doc_string = _describe(pkg, nodata)
    for key, value in onnx_metadata(pkg, nodata, overlap).items():
        entry = proto.metadata_props.add()
        entry.key, entry.value = key, json.dumps(value)
    onnx.checker.check_model(proto)
    with atomic_path(out) as tmp:
        onnx.save_model(proto, str(tmp))
    return out


def export_job(package: ModelPackage | str | os.PathLike, out: str | os.PathLike, **options: Any) -> Iterator[Event]:
    """:func:`export_onnx` as an engine job for the fronts (a QgsTask, Processing): a ProgressEvent, then a
    FinishedEvent whose summary gives the file's size and the seconds it took."""
    started = time.perf_counter()
    yield ProgressEvent(0, 1, "exporting to ONNX")
    path = export_onnx(package, out, **options)
    yield ProgressEvent(1, 1, "exported")
    yield FinishedEvent(str(path), {"bytes": path.stat().st_size, "seconds": round(time.perf_counter() - started, 3),
                                    "opset": options.get("opset", OPSET)})


def onnx_metadata(pkg: ModelPackage, nodata: float | None = None, overlap: float = DEFAULT_OVERLAP) -> dict[str, Any]:
    """The metadata_props to write (values before JSON encoding): Deepness's keys, then geofm's."""
    bands, tile = pkg.in_channels, pkg.tile_size
    meta: dict[str, Any] = {
        "model_type": "Segmentor",
        "class_names": {str(i): name for i, name in enumerate(pkg.classes.names)},
        "tile_size": tile,
        "tiles_size": tile,
        "tiles_overlap": round(overlap * 100),
        # Deepness computes (x / 255 - mean) / std: with these the graph receives x, the raw band values.
        "standardization_mean": [0.0] * bands,
        "standardization_std": [1.0 / 255.0] * bands,
        "seg_thresh": 0.0,  # geofm takes the most probable class, with no threshold
    }
    cm = resolution_cm(pkg.resolution, pkg.crs)
    if cm is not None:
        meta["resolution"] = cm
    meta.update({
        KEY_FORMAT: ONNX_FORMAT,
        KEY_VERSION: geofm_version(),
        KEY_INPUT: "raw band values float32 [batch, bands, tile, tile]; NaN or infinite in any band (or equal to "
                   "geofm_nodata) marks an invalid pixel; output: softmax probabilities [batch, classes, tile, tile]",
        KEY_NODATA: nodata,
        "geofm_bands": pkg.metadata.get("bands") or {"count": bands, "names": None},
        "geofm_classes": pkg.classes.to_list(),
        "geofm_tile_size": tile,
        "geofm_normalisation": {"mode": pkg.normalisation, "stats": pkg.stats.to_dict() if pkg.stats else None},
        "geofm_resolution": list(pkg.resolution) if pkg.resolution else None,
        "geofm_crs": pkg.crs,
        KEY_METADATA: pkg.metadata,
    })  # fmt: skip
    return meta


def resolution_cm(resolution: tuple[float, float] | None, crs: str | None) -> float | None:
    """The pixel size in centimetres (mean of x and y), or None when it is unknown or in degrees."""
    if not resolution or not crs:
        return None
    try:
        parsed = CRS.from_user_input(crs)
        if parsed.is_geographic:
            return None
        metres = parsed.linear_units_factor[1]
    except (CRSError, ValueError):
        return None
    return round((abs(resolution[0]) + abs(resolution[1])) / 2 * metres * 100, 6)


def _describe(pkg: ModelPackage, nodata: float | None) -> str:
    arch = pkg.metadata.get("architecture") or {}
    names = (pkg.metadata.get("bands") or {}).get("names")
    bands = f"{pkg.in_channels} bands" + (f" ({', '.join(names)})" if names else "")
    invalid = "NaN" if nodata is None else f"NaN or {nodata:g}"
    return (f"geofm segmentation model: {arch.get('backbone', '?')} + {arch.get('decoder', '?')} decoder, {bands}, "
            f"classes {', '.join(pkg.classes.names)}; tile {pkg.tile_size} px; {pkg.normalisation} normalisation "
            f"inside the graph. Input '{INPUT}': raw band values; {invalid} marks nodata. Output '{OUTPUT}': softmax "
            "probabilities.")


def _check_output(out: Path, source: Path | None) -> None:
    if out.is_dir():
        raise ConfigError("the ONNX output is a folder", path=out, fix="give a file name ending in .onnx")
    if source is not None and out.resolve() == source.resolve():
        raise ConfigError("the ONNX output is the input package itself", path=out,
                          fix="write the ONNX model to a new file ending in .onnx")
    if out.suffix.lower() != ".onnx":
        raise ConfigError("the ONNX output's name does not end in .onnx", path=out,
                          fix="name it e.g. model.onnx: geofm predict and Deepness recognise ONNX models by it")
    folder = out.parent
    if not folder.is_dir():
        raise ConfigError("the output folder does not exist", path=folder, fix="create it, or pick another")
    if not os.access(folder, os.W_OK | os.X_OK):
        raise ConfigError("the output folder is not writable", path=folder, fix="pick a folder you can write to")


def _import_onnx() -> Any:
    try:
        import onnx
    except ImportError as err:
        raise ConfigError(f"exporting to ONNX needs the onnx package, which is not installed ({err})",
                          fix="pip install onnx onnxruntime (or pip install 'geofm[onnx]')") from err
    return onnx
