"""A geofm model exported to ONNX (see :mod:`.onnx_export`), run with onnxruntime: prediction without torch.

:class:`OnnxModel` offers what prediction needs from a loaded package (classes, tile size, bands, statistics,
resolution, CRS, path) plus :meth:`OnnxModel.probabilities`, which replaces normalise + model + softmax: the graph
takes raw band values, NaN marking invalid pixels, and returns softmax probabilities. This module imports neither
torch nor (until a model is loaded) onnxruntime; :func:`read_onnx_metadata` and :func:`read_geofm_metadata` need
neither, nor rasterio: they read the file's ``metadata_props`` themselves (the plugin's Model info uses them).
"""

from __future__ import annotations

import io
import json
import os
from pathlib import Path
from typing import Any

import numpy as np

from .errors import ConfigError, GeoFMError, PackageError
from .normalise import BandStats

ONNX_FORMAT = 1  # version of the geofm_* keys below
INPUT = "raw_bands"
OUTPUT = "probabilities"
# metadata_props keys geofm writes (every value JSON-encoded, as Deepness expects of its own keys)
KEY_FORMAT = "geofm_onnx_format"
KEY_METADATA = "geofm_metadata"  # the package's metadata.json, whole
KEY_INPUT = "geofm_input"  # how the graph reads its input: raw values, NaN (and the nodata value) = invalid
KEY_NODATA = "geofm_nodata"
KEY_VERSION = "geofm_version"
_NO_GEOFM = "export the model with `geofm export --model model.geofm --out model.onnx`, or predict with the .geofm"


def read_onnx_metadata(path: str | os.PathLike) -> dict[str, str]:
    """The ``metadata_props`` of the ONNX file at ``path`` (key -> raw string), read without onnx or onnxruntime.

    Only the model's top-level protobuf fields are walked; the graph (the weights) is skipped, not read.
    PackageError when the file is missing or not an ONNX model.
    """
    path = Path(path)
    if not path.is_file():
        raise PackageError("the ONNX model does not exist", path=path, fix="check the path, or export the model again")
    props: dict[str, str] = {}
    try:
        size = path.stat().st_size
        with open(path, "rb") as f:
            seen_ir_version = False
            while (key := _varint(f)) is not None:
                field, wire = key >> 3, key & 7
                if wire == 0:
                    value = _varint(f)
                    if value is None:
                        raise ValueError("truncated")
                    seen_ir_version |= field == 1
                elif wire in (1, 5):
                    f.seek(8 if wire == 1 else 4, os.SEEK_CUR)
                elif wire == 2:
                    length = _varint(f)
                    if length is None or f.tell() + length > size:
                        raise ValueError("a field runs past the end of the file")
                    if field == 14:  # ModelProto.metadata_props: StringStringEntryProto {1: key, 2: value}
                        entry = _strings(f.read(length))
                        props[entry.get(1, "")] = entry.get(2, "")
                    else:
                        f.seek(length, os.SEEK_CUR)
                else:
                    raise ValueError(f"unexpected protobuf wire type {wire}")
            if not seen_ir_version:
                raise ValueError("no ONNX IR version")
    except (OSError, ValueError, UnicodeDecodeError) as err:
        raise PackageError(f"this is not a readable ONNX model ({err})", path=path,
                           fix="pick a .onnx file written by geofm export; if it is one, export it again") from err
    return props


def read_geofm_metadata(path: str | os.PathLike) -> dict[str, Any]:
    """The package metadata (metadata.json of the .geofm it came from) stored in a geofm-exported ONNX file.

    The extra key ``onnx`` describes the export: format, input convention, nodata value, exporting geofm version.
    PackageError when the file is not ONNX or was not exported by geofm (e.g. a model made for another tool).
    """
    props = read_onnx_metadata(path)
    if KEY_METADATA not in props:
        raise PackageError("this ONNX model carries no geofm metadata (classes, bands, normalisation), so geofm "
                           "cannot tell how to feed it or what its outputs mean", path=path, fix=_NO_GEOFM)
    try:
        metadata = json.loads(props[KEY_METADATA])
        fmt = json.loads(props.get(KEY_FORMAT, "1"))
        extra = {"format": fmt, "input": json.loads(props.get(KEY_INPUT, "null")),
                 "nodata": json.loads(props.get(KEY_NODATA, "null")),
                 "geofm_version": json.loads(props.get(KEY_VERSION, "null"))}
    except ValueError as err:
        raise PackageError(f"the model's geofm metadata is damaged ({err})", path=path, fix=_NO_GEOFM) from err
    if not isinstance(metadata, dict) or not isinstance(fmt, int) or fmt > ONNX_FORMAT:
        raise PackageError(f"unknown geofm ONNX metadata (format {fmt!r})", path=path,
                           fix="update geofm to the version that exported the model, or export it again")
    return {**metadata, "onnx": extra}


def import_onnxruntime() -> Any:
    """onnxruntime, or a ConfigError saying how to install it."""
    try:
        import onnxruntime
    except ImportError as err:
        raise ConfigError(f"predicting with an ONNX model needs onnxruntime, which is not installed ({err})",
                          fix="pip install onnxruntime (into the Python that runs geofm)") from err
    return onnxruntime


def providers_for(device: str, available: list[str]) -> list[str]:
    """onnxruntime execution providers for a geofm device name ('auto', 'cpu', 'cuda', 'cuda:N')."""
    if device == "cpu":
        return ["CPUExecutionProvider"]
    if device == "auto":
        return [p for p in ("CUDAExecutionProvider",) if p in available] + ["CPUExecutionProvider"]
    if device.startswith("cuda"):
        if "CUDAExecutionProvider" not in available:
            raise ConfigError("CUDA was asked for, but this onnxruntime cannot use a GPU",
                              fix="use --device cpu or auto, or install onnxruntime-gpu")
        return ["CUDAExecutionProvider", "CPUExecutionProvider"]
    raise ConfigError(f"device '{device}' is not available for ONNX models", fix="use auto, cpu or cuda")


class OnnxModel:
    """A geofm-exported ONNX model: the package's description plus an onnxruntime session.

    Attributes match :class:`.package.ModelPackage` where prediction reads them: ``metadata``, ``classes``,
    ``stats``, ``normalisation``, ``tile_size``, ``in_channels``, ``resolution``, ``crs``, ``path``;
    ``runtime`` names the execution provider in use.
    """

    def __init__(self, path: str | os.PathLike, metadata: dict[str, Any], session: Any) -> None:
        self.path = str(path)
        self.metadata = metadata
        self.session = session
        from .classes import ClassMap  # imports rasterio, which reading metadata alone does not need

        try:
            stats = metadata["normalisation"]["stats"]
            resolution = metadata.get("resolution")
            self.classes = ClassMap.from_list(metadata["classes"])
            self.stats = BandStats.from_dict(stats) if stats else None
            self.normalisation = str(metadata["normalisation"]["mode"])
            self.tile_size = int(metadata["tile_size"])
            self.in_channels = int(metadata["bands"]["count"])
            self.resolution = (float(resolution[0]), float(resolution[1])) if resolution else None
            self.crs = metadata.get("crs")
        except (KeyError, TypeError, ValueError, GeoFMError) as err:
            raise PackageError(f"the model's geofm metadata is inconsistent ({type(err).__name__}: {err})",
                               path=path, fix=_NO_GEOFM) from err
        self.runtime = session.get_providers()[0] if session is not None else "none"
        self.device = f"onnxruntime ({self.runtime})"

    @classmethod
    def load(cls, path: str | os.PathLike, device: str = "auto") -> OnnxModel:
        """Read the geofm metadata, then open an onnxruntime session (PackageError / ConfigError in plain words)."""
        metadata = read_geofm_metadata(path)
        ort = import_onnxruntime()
        providers = providers_for(device, ort.get_available_providers())
        options = ort.SessionOptions()
        options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
        try:
            session = ort.InferenceSession(str(path), sess_options=options, providers=providers)
        except Exception as err:  # noqa: BLE001 - onnxruntime raises its own untyped errors
            raise PackageError(f"onnxruntime cannot load the model ({err})", path=path,
                               fix="export it again with geofm export; update onnxruntime if it is older than "
                                   "1.12") from err
        model = cls(path, metadata, session)
        shape = session.get_inputs()[0].shape
        if shape[1] != model.in_channels:
            raise PackageError(f"the graph takes {shape[1]} bands but its metadata says {model.in_channels}",
                               path=path, fix=_NO_GEOFM)
        return model

    def probabilities(self, raw_tiles: np.ndarray, valid: np.ndarray | None = None) -> np.ndarray:
        """Raw band values [B, C, T, T] float32 and their validity [B, T, T] -> probabilities [B, K, T, T]; without
        ``valid``, NaN (and the export's nodata value) in ``raw_tiles`` mark invalid pixels.

        The graph normalises (as the package does), treats NaN (and the export's nodata value) as invalid, runs the
        network and applies softmax. Invalid pixels still get probabilities; the caller masks them.
        """
        x = raw_tiles if valid is None else np.where(valid[:, None], raw_tiles, np.float32(np.nan))
        x = x.astype(np.float32, copy=False)
        return self.session.run([OUTPUT], {INPUT: np.ascontiguousarray(x)})[0]


def is_onnx(model: Any) -> bool:
    """Whether ``model`` (a loaded model or a path) is an ONNX model that :class:`OnnxModel` runs."""
    if isinstance(model, OnnxModel):
        return True
    return isinstance(model, (str, os.PathLike)) and Path(model).suffix.lower() == ".onnx"


def _varint(f) -> int | None:
    """A protobuf varint read from ``f``; None at the end of the file."""
    result = shift = 0
    while True:
        byte = f.read(1)
        if not byte:
            if shift:
                raise ValueError("truncated")
            return None
        result |= (byte[0] & 0x7F) << shift
        if byte[0] < 0x80:
            return result
        shift += 7
        if shift > 63:
            raise ValueError("a varint is too long")


def _strings(data: bytes) -> dict[int, str]:
    """The length-delimited fields of a small protobuf message, as UTF-8 strings by field number."""
    f = io.BytesIO(data)
    out: dict[int, str] = {}
    while (key := _varint(f)) is not None:
        if key & 7 != 2:
            raise ValueError("unexpected field in a metadata entry")
        length = _varint(f)
        if length is None or f.tell() + length > len(data):
            raise ValueError("truncated metadata entry")
        out[key >> 3] = f.read(length).decode("utf-8")
    return out
