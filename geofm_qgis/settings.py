"""Training parameters remembered between QGIS sessions (QgsSettings), with the engine's defaults."""

from __future__ import annotations

from typing import Any

from qgis.core import QgsSettings

PREFIX = "geofm/train/"
#: Parameters the train dialog remembers; defaults come from TrainConfig, the one place they live.
KEYS = ("backbone", "decoder", "weights", "tile_size", "overlap", "batch_size", "epochs", "lr", "val_fraction",
        "device", "output_folder")


def defaults() -> dict[str, Any]:
    """The engine's defaults, plus the dialog's own (overlap as a share of the tile, weights file)."""
    from ..core.config import TrainConfig

    cfg = TrainConfig()
    return {"backbone": cfg.backbone, "decoder": cfg.decoder, "weights": cfg.weights, "tile_size": cfg.tile_size,
            "overlap": 0.5, "batch_size": cfg.batch_size, "epochs": cfg.epochs, "lr": cfg.lr,
            "val_fraction": cfg.val_fraction, "device": cfg.device, "output_folder": ""}


def load() -> dict[str, Any]:
    """Remembered values, each of the default's type; defaults where nothing is remembered."""
    settings = QgsSettings()
    out = {}
    for key, default in defaults().items():
        value = settings.value(PREFIX + key, default)
        try:
            out[key] = type(default)(value)
        except (TypeError, ValueError):
            out[key] = default
    return out


def save(values: dict[str, Any]) -> None:
    """Remember ``values`` (only the known keys)."""
    settings = QgsSettings()
    for key in KEYS:
        if key in values:
            settings.setValue(PREFIX + key, values[key])
