"""Which torch device runs a job, and how to name it for a user."""

from __future__ import annotations

import os

import torch

from .errors import ConfigError


def resolve_device(name: str = "auto") -> torch.device:
    """'auto' picks CUDA, then Apple MPS, then the CPU; a named device must exist."""
    if name == "auto":
        if torch.cuda.is_available():
            return torch.device("cuda")
        if torch.backends.mps.is_available():
            return torch.device("mps")
        return torch.device("cpu")
    try:
        device = torch.device(name)
    except RuntimeError as err:
        raise ConfigError(f"unknown device '{name}'", fix="use auto, cpu, cuda, cuda:N or mps") from err
    if device.type == "cuda" and not torch.cuda.is_available():
        raise ConfigError("CUDA was asked for but no NVIDIA GPU is usable here", fix="use --device cpu or auto")
    if device.type == "mps" and not torch.backends.mps.is_available():
        raise ConfigError("Apple MPS was asked for but is not available here", fix="use --device cpu or auto")
    return device


def describe_device(name: str = "auto") -> str:
    """'NVIDIA <model>', 'Apple MPS' or 'CPU only': what the dialogs and the CLI show."""
    device = resolve_device(name)
    if device.type == "cuda":
        return f"NVIDIA {torch.cuda.get_device_name(device).removeprefix('NVIDIA ')}"
    if device.type == "mps":
        return "Apple MPS"
    return "CPU only"


def usable_cpus() -> int:
    """CPU cores this process may run on (its affinity where the OS tells it)."""
    return len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)


def amp_dtype(device: torch.device) -> torch.dtype | None:
    """bf16 autocast on GPUs that support it, fp16 (with GradScaler) on older ones, none on CPU/MPS."""
    if device.type != "cuda":
        return None
    return torch.bfloat16 if torch.cuda.is_bf16_supported() else torch.float16


def default_workers(device: torch.device) -> int:
    """DataLoader worker processes: several on a GPU box, none on a small CPU (they would compete)."""
    cpus = usable_cpus()
    if device.type == "cuda":
        return min(8, max(1, cpus - 1))
    return 0 if cpus <= 4 else 2


def reserve_cpu_cores(cores: int = 1) -> int:
    """Let torch compute on all CPU cores but ``cores`` (at least one thread); returns the threads it may use.

    A desktop front (QGIS) calls this so its own thread keeps a core and the window stays responsive.
    """
    threads = max(1, usable_cpus() - cores)
    torch.set_num_threads(threads)
    return threads
