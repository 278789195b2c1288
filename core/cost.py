"""How long training will take, said before it starts: tiles × epochs × measured seconds per tile.

Nothing here imports torch: the train dialog estimates while the engine is still loading.
"""

from __future__ import annotations

import os

from .config import stride_for

#: Automatic epochs: about this many training items seen in all (a CPU budget of minutes, not hours) …
AUTO_ITEMS_SEEN = 2400
#: … in this many epochs at least and at most (few items: many short epochs; many items: a few long ones).
AUTO_EPOCHS = (5, 100)

#: CPU seconds one training tile of MEASURED_TILE px costs on ONE core (forward, loss, backward, AdamW; batch 8,
#: 5 bands), per (backbone, decoder). Measured by benchmarks/bench_cost.py (process CPU time, 1 torch thread) on
#: this project's machine: x86_64, 2 cores, torch 2.14.1, 2026-11-27.
CPU_SECONDS_PER_TILE: dict[tuple[str, str], float] = {
    ('resnet18', 'fpn'): 0.138,
    ('resnet18', 'unet'): 0.286,
    ('resnet18', 'simple'): 0.109,
    ('resnet34', 'fpn'): 0.182,
    ('resnet34', 'unet'): 0.33,
    ('resnet34', 'simple'): 0.187,
    ('resnet50', 'fpn'): 0.281,
    ('resnet50', 'unet'): 0.366,
    ('resnet50', 'simple'): 0.205,
    ('resnet101', 'fpn'): 0.408,
    ('resnet101', 'unet'): 0.61,
    ('resnet101', 'simple'): 0.314,
}
MEASURED_TILE = 128
#: Validation runs the network forward only on each validation tile: about a third of a training step (the usual
#: forward : backward ratio, not measured here).
VALIDATION_COST = 1 / 3
#: The share of a MEASURED_TILE tile's cost that does not shrink or grow with the tile's area (per-tile work, and
#: convolutions that run less efficiently on small feature maps). Whole training runs on the bundled scene (ResNet-18
#: + FPN, 3 epochs, batch 8, 1 thread, process CPU time, 2026-11-27) took 4.5 s per epoch at 128 px (33 + 4 tiles;
#: the table predicts 4.7 s) and 10.7 s at 64 px (165 + 14 tiles): a 64 px tile costs 0.45 of a 128 px one, not
#: 0.25, hence 0.27 fixed + 0.73 × area.
FIXED_SHARE = 0.27
#: Share of ideal speed-up per extra core torch computes on (not measured: a usual figure for convolutions).
PARALLEL_EFFICIENCY = 0.7


def auto_epochs(items: int) -> int:
    """Epochs for ``items`` training items when the user leaves the number to geofm."""
    low, high = AUTO_EPOCHS
    return int(min(high, max(low, round(AUTO_ITEMS_SEEN / max(items, 1)))))


def _offsets(size: int, tile: int, stride: int) -> int:
    return 0 if size < tile else (size - tile) // stride + 1 + (1 if (size - tile) % stride else 0)


def window_count(width: int, height: int, tile: int, overlap: float) -> int:
    """How many tile windows cover a ``width`` × ``height`` px area (as ``tiles.tile_windows`` lays them)."""
    stride = stride_for(tile, overlap)
    return _offsets(width, tile, stride) * _offsets(height, tile, stride)


def training_threads() -> int:
    """The threads training computes on inside QGIS: all cores but the one kept for the window."""
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)
    return max(1, cores - 1)


def training_seconds(windows: int, val_fraction: float, epochs: int, backbone: str, decoder: str, tile: int,
                     threads: int = 1) -> tuple[float, int]:
    """(seconds, epochs) a CPU training run of ``windows`` labelled tiles takes on ``threads`` cores: ``epochs``
    0 is the automatic number."""
    train = max(1, round(windows * (1 - val_fraction)))
    val = windows - train if val_fraction else 0
    epochs = epochs or auto_epochs(train)
    scale = FIXED_SHARE + (1 - FIXED_SHARE) * (tile / MEASURED_TILE) ** 2
    per_tile = CPU_SECONDS_PER_TILE[(backbone, decoder)] * scale
    speed_up = 1 + PARALLEL_EFFICIENCY * (threads - 1)
    return (train + val * VALIDATION_COST) * per_tile * epochs / speed_up, epochs


def duration_text(seconds: float) -> str:
    """'about 40 s', 'about 12 min', 'about 3.5 h'."""
    if seconds < 90:
        return f"about {max(10, round(seconds, -1)):.0f} s"
    if seconds < 90 * 60:
        return f"about {round(seconds / 60):.0f} min"
    return f"about {seconds / 3600:.1f} h"
