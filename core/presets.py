"""Named sets of training settings the dialog offers: a quick test, the shipped defaults, the best models.

A preset sets only the settings it names; everything else keeps its value. Nothing here imports torch.
"""

from __future__ import annotations

from typing import Any

from .config import TrainConfig
from .schema import default_of

#: the settings a preset sets
PRESET_SETTINGS = ("backbone", "decoder", "tile_size", "epochs", "patience", "val_fraction")


def _defaults() -> dict[str, Any]:
    return {name: default_of(TrainConfig, name) for name in PRESET_SETTINGS}


#: name → (label, help, values). Balanced is the shipped defaults; Best trades time for accuracy: a deeper
#: backbone (ResNet-50, about 2× ResNet-18's time per tile) and up to 100 epochs, stopped after 15 without a better
#: score on the 20 % of labels it holds out; Quick test checks the data and the setup in a few minutes, not for a
#: useful model.
PRESETS: dict[str, tuple[str, str, dict[str, Any]]] = {
    "quick": ("Quick test", "Two epochs of the small backbone: checks data and settings in minutes; the model is "
              "not meant for use.", {**_defaults(), "epochs": 2, "patience": 0}),
    "balanced": ("Balanced", "geofm's defaults: ResNet-18 with an FPN decoder and a per-pixel spectral branch, "
                 "every label trains, epochs chosen from the number of tiles.", _defaults()),
    "best": ("Best", "A deeper backbone (ResNet-50) and up to 100 epochs, holding 20 % of the labels out and "
             "stopping after 15 epochs without progress on them: for large labelled areas, several times slower.",
             {**_defaults(), "backbone": "resnet50", "epochs": 100, "patience": 15, "val_fraction": 0.2}),
}


def preset_of(values: dict[str, Any]) -> str:
    """The name of the preset ``values`` match in every preset setting, or '' (custom)."""
    for name, (_label, _help, preset) in PRESETS.items():
        if all(values.get(key) == value for key, value in preset.items()):
            return name
    return ""
