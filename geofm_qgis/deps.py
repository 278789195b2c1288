"""Checking and installing geofm's Python dependencies without importing them (or geofm.core) first."""

from __future__ import annotations

import importlib.metadata
import importlib.util
import ntpath
import os
import posixpath
import re
import shutil
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

#: module name -> (distribution name, minimum version); the pins (PINS) match the Makefile's.
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
TORCH_PACKAGES = ("torch", "torchvision")
#: few retries and a short timeout: offline, pip gives up in seconds instead of retrying for minutes
PIP_OPTIONS = ["--retries", "2", "--timeout", "30", "--disable-pip-version-check", "--no-input"]
#: download / disk MB, measured on Linux x86-64 with Python 3.11 wheels (Nov 2026): CPU = torch 2.13.0+cpu
#: (192 MB wheel, 699 MB unpacked) + torchvision 0.29.1 (7 MB, 19 MB) + sympy, networkx, pillow, jinja2, fsspec,
#: filelock, mpmath (16 MB); CUDA = torch 2.14.1 (555 MB) + its nvidia-* libraries (2.3 GB) + triton (250 MB),
#: 5.3 GB installed in this project's venv; onnx = onnxruntime 1.30 (24 MB wheel, 78 MB installed) + rasterio (its
#: wheel bundles GDAL: an estimate of 25 MB, not measured here). Windows wheels are of similar size.
SIZES_MB = {"cpu": (220, 800), "cuda": (3100, 5300), "onnx": (50, 150)}


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


def _interpreter_version(path: str) -> tuple[int, int] | None:
    """(major, minor) of the Python at ``path``, or None when it does not run."""
    flags = getattr(subprocess, "CREATE_NO_WINDOW", 0) if sys.platform.startswith("win") else 0
    try:
        out = subprocess.run([path, "-c", "import sys; print('%d %d' % sys.version_info[:2])"], capture_output=True,
                             text=True, timeout=30, creationflags=flags)
        major, minor = out.stdout.split()
        return int(major), int(minor)
    except (OSError, ValueError, subprocess.SubprocessError):
        return None


def _qgis_prefix() -> str:
    try:
        from qgis.core import QgsApplication
    except ImportError:
        return ""
    return QgsApplication.prefixPath()


def python_candidates(platform: str, exec_prefix: str, executable: str, base_executable: str,
                      qgis_prefix: str) -> list[str]:
    """Where QGIS's Python may be, most likely first. Only programs named python…: the QGIS binary itself
    (``sys.executable`` inside QGIS on Windows, macOS and Linux) would open a second QGIS."""
    version = f"python{sys.version_info.major}.{sys.version_info.minor}"
    join = ntpath.join if platform.startswith("win") else posixpath.join
    found = [executable, base_executable]
    if platform.startswith("win"):
        found += [join(exec_prefix, n) for n in ("python.exe", "python3.exe")]
        if qgis_prefix:  # OSGeo4W: <root>\apps\qgis → <root>\bin\python3.exe
            root = ntpath.dirname(ntpath.dirname(qgis_prefix))
            found += [join(qgis_prefix, "bin", "python3.exe"), join(root, "bin", "python3.exe"),
                      join(root, "bin", "python.exe")]
    else:
        found += [join(exec_prefix, "bin", n) for n in (version, "python3", "python")]
        if qgis_prefix:
            found += [join(qgis_prefix, "bin", n) for n in (version, "python3")]
    names = (ntpath.basename if platform.startswith("win") else posixpath.basename)
    unique: list[str] = []
    for path in found:
        if path and names(path).lower().startswith("python") and path not in unique:
            unique.append(path)
    return unique


def qgis_python(
    platform: str = sys.platform,
    exec_prefix: str = sys.exec_prefix,
    executable: str = sys.executable,
    exists=os.path.exists,
    version_of=_interpreter_version,
    base_executable: str = getattr(sys, "_base_executable", ""),
    qgis_prefix: str | None = None,
) -> str | None:
    """The Python interpreter QGIS runs on, as a program pip can be run with; None when none is found.

    A candidate (``python_candidates``) is taken only when it exists and runs as the same Python version as
    QGIS (``sys.version_info[:2]``): packages built for another version would not load in QGIS.
    """
    prefix = _qgis_prefix() if qgis_prefix is None else qgis_prefix
    for candidate in python_candidates(platform, exec_prefix, executable, base_executable, prefix):
        if exists(candidate) and version_of(candidate) == tuple(sys.version_info[:2]):
            return candidate
    return None


def has_nvidia_gpu() -> bool:
    """True when the NVIDIA driver's tool is on the PATH (a CUDA build of torch can use the GPU)."""
    return shutil.which("nvidia-smi") is not None


def install_commands(
    target: Path,
    packages: list[str],
    python: str | None,
    cuda: bool = False,
    platform: str = sys.platform,
) -> list[list[str]]:
    """The pip commands that install ``packages`` into ``target`` with QGIS's Python (``python``; None: a
    placeholder ``python3`` for the command shown to copy).

    torch and torchvision come alone from PyTorch's index (CPU build unless ``cuda``; macOS: PyPI, whose wheels
    include Apple MPS), the rest from PyPI. Two retries and a 30 s timeout: offline, pip fails in seconds.
    """
    base = [python or "python3", "-m", "pip", "install", "--upgrade", "--target", str(target), *PIP_OPTIONS]
    torch = [p for p in packages if _name(p) in TORCH_PACKAGES]
    rest = [p for p in packages if _name(p) not in TORCH_PACKAGES]
    commands = []
    if torch:
        index = [] if platform.startswith("darwin") else ["--index-url", CUDA_INDEX if cuda else CPU_INDEX]
        commands.append(base + index + torch)
    if rest:
        commands.append(base + rest)
    return commands


def _name(requirement: str) -> str:
    return re.split(r"[=<>!~ ;\[]", requirement, maxsplit=1)[0].lower()


def download_size(packages: list[str], cuda: bool = False) -> str:
    """The download and disk space ``packages`` need, in words (see SIZES_MB)."""
    torch = any(_name(p) in TORCH_PACKAGES for p in packages)
    kind = ("cuda" if cuda else "cpu") if torch else "onnx"
    download, disk = SIZES_MB[kind]
    return f"about {_mb(download)} to download, {_mb(disk)} on disk"


def _mb(size: int) -> str:
    return f"{size / 1000:.1f} GB" if size >= 1000 else f"{size} MB"


def packages_for(missing: list[Missing]) -> list[str]:
    """The pip requirement strings that fix ``missing``."""
    return [PINS.get(m.module, m.module) for m in missing]


def shell_text(commands: list[list[str]]) -> str:
    """``commands`` as one line to paste into a terminal (OSGeo4W shell, Terminal or bash)."""
    return " && ".join(" ".join(f'"{part}"' if (" " in part or ">" in part or "<" in part) else part
                                for part in cmd) for cmd in commands)


def staging_dir(target: Path) -> Path:
    """Where pip installs first; its packages reach ``target`` only once every pip command succeeded."""
    return target.with_name(target.name + ".partial")


def move_into(staging: Path, target: Path) -> None:
    """Move everything pip put in ``staging`` into ``target`` (replacing older copies), then remove ``staging``."""
    target.mkdir(parents=True, exist_ok=True)
    for entry in staging.iterdir():
        dest = target / entry.name
        if dest.is_dir() and not dest.is_symlink():
            shutil.rmtree(dest)
        elif dest.exists() or dest.is_symlink():
            dest.unlink()
        os.replace(entry, dest)
    shutil.rmtree(staging, ignore_errors=True)
