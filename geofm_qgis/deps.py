"""Checking and installing geofm's Python dependencies without importing them (or geofm.core) first."""

from __future__ import annotations

import importlib.metadata
import importlib.util
import os
import shutil
import sys
from dataclasses import dataclass
from pathlib import Path

#: module name -> (distribution name, minimum version); the pins match the Makefile's.
REQUIREMENTS: dict[str, tuple[str, str]] = {
    "torch": ("torch", "2.0"),
    "torchvision": ("torchvision", "0.15"),
    "rasterio": ("rasterio", "1.3"),
}
#: what predicting with an .onnx model exported by geofm needs: the lighter install for colleagues who only predict
PREDICT_ONLY_REQUIREMENTS: dict[str, tuple[str, str]] = {
    "onnxruntime": ("onnxruntime", "1.12"),
    "rasterio": ("rasterio", "1.3"),
}
PINS: dict[str, str] = {"torch": "torch==2.14.1", "torchvision": "torchvision==0.29.1", "rasterio": "rasterio>=1.3",
                        "onnxruntime": "onnxruntime>=1.12"}
FULL, PREDICT_ONLY, NO_ENGINE = "full", "predict-only", "none"
CPU_INDEX = "https://download.pytorch.org/whl/cpu"
CUDA_INDEX = "https://download.pytorch.org/whl/cu128"


@dataclass
class Missing:
    """One dependency that cannot be used, and why in plain words."""

    module: str
    reason: str


def deps_dir(settings_dir: str | os.PathLike) -> Path:
    """The folder inside the QGIS profile where geofm installs its dependencies."""
    return Path(settings_dir) / "python" / "geofm-deps"


def add_deps_dir(folder: Path) -> None:
    """Put ``folder`` on ``sys.path`` (last, so QGIS's own numpy and GDAL keep priority)."""
    text = str(folder)
    if folder.is_dir() and text not in sys.path:
        sys.path.append(text)
        importlib.invalidate_caches()


def _version_tuple(text: str) -> tuple[int, ...]:
    parts = []
    for piece in text.split("+")[0].split(".")[:3]:
        digits = "".join(ch for ch in piece if ch.isdigit())
        if not digits:
            break
        parts.append(int(digits))
    return tuple(parts)


def _find(module: str):
    try:
        return importlib.util.find_spec(module)
    except (ImportError, ValueError):  # ValueError: blocked in sys.modules (set to None)
        return None


def missing_dependencies() -> list[Missing]:
    """Dependencies of the full engine that are not installed or too old, found without importing them."""
    return _missing(REQUIREMENTS)


def _missing(requirements: dict[str, tuple[str, str]]) -> list[Missing]:
    problems = []
    for module, (dist, minimum) in requirements.items():
        if _find(module) is None:
            problems.append(Missing(module, "not installed"))
            continue
        try:
            version = importlib.metadata.version(dist)
        except importlib.metadata.PackageNotFoundError:
            continue  # importable but installed without metadata (e.g. a distribution package): accept it
        if _version_tuple(version) < _version_tuple(minimum):
            problems.append(Missing(module, f"version {version} is too old (need {minimum} or newer)"))
    return problems


def missing_for_prediction() -> list[Missing]:
    """What predicting with an exported .onnx model still lacks (onnxruntime, rasterio)."""
    return _missing(PREDICT_ONLY_REQUIREMENTS)


def engine_mode() -> str:
    """FULL (train, predict, export), PREDICT_ONLY (onnxruntime and rasterio but not torch: predict with .onnx
    models only) or NO_ENGINE."""
    if not missing_dependencies():
        return FULL
    return PREDICT_ONLY if not missing_for_prediction() else NO_ENGINE


def qgis_python(
    platform: str = sys.platform,
    exec_prefix: str = sys.exec_prefix,
    executable: str = sys.executable,
    exists=os.path.exists,
) -> str:
    """The Python interpreter QGIS runs on, as a program pip can be run with.

    Inside QGIS ``sys.executable`` is often the QGIS binary itself (macOS, Windows), so the interpreter is
    looked for under ``sys.exec_prefix``: ``python.exe`` / ``python3.exe`` on Windows (OSGeo4W and the
    standalone installer), ``bin/python3`` on macOS and Linux.
    """
    name = os.path.basename(executable).lower()
    if name.startswith("python") and exists(executable):
        return executable
    version = f"python{sys.version_info.major}.{sys.version_info.minor}"
    if platform.startswith("win"):
        candidates = [os.path.join(exec_prefix, n) for n in ("python.exe", "python3.exe")]
    else:
        candidates = [os.path.join(exec_prefix, "bin", n) for n in (version, "python3", "python")]
    for candidate in candidates:
        if exists(candidate):
            return candidate
    found = shutil.which(version) or shutil.which("python3")
    return found or candidates[0]


def has_nvidia_gpu() -> bool:
    """True when the NVIDIA driver's tool is on the PATH (a CUDA build of torch can use the GPU)."""
    return shutil.which("nvidia-smi") is not None


def install_command(
    target: Path,
    packages: list[str],
    python: str | None = None,
    cuda: bool | None = None,
    platform: str = sys.platform,
) -> list[str]:
    """The pip command that installs ``packages`` into ``target`` with QGIS's Python.

    torch and torchvision come from PyTorch's CUDA index when an NVIDIA GPU is present, from its CPU index
    otherwise (macOS: PyPI, whose wheels include Apple MPS).
    """
    cmd = [python or qgis_python(), "-m", "pip", "install", "--upgrade", "--target", str(target)]
    wants_torch = any(p.split("=")[0].split(">")[0] in ("torch", "torchvision") for p in packages)
    if wants_torch and not platform.startswith("darwin"):
        use_cuda = has_nvidia_gpu() if cuda is None else cuda
        cmd += ["--extra-index-url", CUDA_INDEX if use_cuda else CPU_INDEX]
    return cmd + packages


def packages_for(missing: list[Missing]) -> list[str]:
    """The pip requirement strings that fix ``missing``."""
    return [PINS.get(m.module, m.module) for m in missing]


def shell_text(cmd: list[str]) -> str:
    """``cmd`` as one line to paste into a terminal (OSGeo4W shell, Terminal or bash)."""
    return " ".join(f'"{part}"' if (" " in part or ">" in part or "<" in part) else part for part in cmd)
