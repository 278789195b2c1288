"""The one training configuration: built by the dialog, the Processing algorithm and the CLI alike."""

from __future__ import annotations

import json
import os
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path
from typing import Any

from .errors import ConfigError

BACKBONES = ("resnet18", "resnet34", "resnet50", "resnet101")
DECODERS = ("simple", "fpn")
NORMALISATIONS = ("global", "per_tile")
VECTOR_SUFFIXES = (".shp", ".gpkg", ".geojson", ".json", ".fgb", ".kml", ".gml", ".sqlite")


@dataclass
class TrainConfig:
    """Everything one training run needs; defaults chosen by measurement (see docs/defaults.md)."""

    images: list[str] = field(default_factory=list)
    labels: list[str] = field(default_factory=list)  # one per image: a class raster or a vector file
    label_field: str | None = None  # class attribute when labels are vector polygons
    classes: list[dict[str, Any]] | None = None  # [{value, name, colour}]; None: read from the labels
    ignore_values: list[float] = field(default_factory=list)  # label values that mean "unlabelled"
    background: bool = False  # vector labels: pixels outside every polygon become a 'background' class
    align_labels: bool = False  # warp labels onto the image grid when the grid check asks for it
    backbone: str = "resnet18"
    weights: str = "imagenet"  # 'imagenet' | 'none' | path to a torchvision state dict
    rgb_bands: list[int] = field(default_factory=lambda: [0, 1, 2])
    decoder: str = "fpn"
    tile_size: int = 128
    stride: int | None = None  # default tile_size // 2
    normalisation: str = "global"
    batch_size: int = 8
    epochs: int = 30
    lr: float = 1e-3
    weight_decay: float = 1e-3
    class_weights: bool = False  # inverse-frequency weights cost 5 mIoU points on the real scene (docs/defaults.md)
    augment: bool = True
    accumulate: int = 1
    freeze_backbone_epochs: int = 0
    patience: int | None = None
    val_fraction: float = 0.2
    split_block: int | None = None  # pixels; default 2 × tile_size
    seed: int = 0
    device: str = "auto"
    num_workers: int | None = None  # None: chosen for the device
    output: str = "model.geofm"
    resume: str | None = None  # a '.ckpt' written by an earlier run of the same config

    def validate(self) -> TrainConfig:
        """Raise :class:`ConfigError` for anything out of range; return self so calls chain."""
        if not self.images:
            raise ConfigError("no image raster given", fix="pass at least one image (--image)")
        if len(self.labels) != len(self.images):
            raise ConfigError(f"{len(self.images)} image(s) but {len(self.labels)} label source(s)",
                              fix="give one label raster or vector file per image")
        if any(is_vector(p) for p in self.labels) and not self.label_field:
            raise ConfigError("vector labels need the name of their class field",
                              fix="pass --label-field with the attribute that holds the class")
        _choice("backbone", self.backbone, BACKBONES)
        _choice("decoder", self.decoder, DECODERS)
        _choice("normalisation", self.normalisation, NORMALISATIONS)
        if self.weights not in ("imagenet", "none") and not Path(self.weights).is_file():
            raise ConfigError("the weights file does not exist", fix="pass 'imagenet', 'none' or a .pth file",
                              path=self.weights)
        _positive(tile_size=self.tile_size, batch_size=self.batch_size, epochs=self.epochs,
                  accumulate=self.accumulate)
        if self.tile_size < 32:
            raise ConfigError(f"tile size {self.tile_size} is too small", fix="use at least 32 pixels")
        if self.stride is not None and not 0 < self.stride <= self.tile_size:
            raise ConfigError(f"stride {self.stride} must lie in 1..{self.tile_size}", fix="use tile_size // 2")
        if not 0 <= self.val_fraction < 1:
            raise ConfigError(f"validation share {self.val_fraction} must lie in [0, 1)", fix="use 0.2")
        if not self.lr > 0:
            raise ConfigError(f"learning rate {self.lr} must be positive", fix="use 1e-3")
        if len(self.rgb_bands) != 3:
            raise ConfigError("rgb_bands needs three band indices (red, green, blue)", fix="e.g. 0 1 2")
        if not str(self.output).endswith(".geofm"):
            raise ConfigError("the model package name must end in .geofm", path=self.output,
                              fix=f"use {Path(self.output).with_suffix('.geofm')}")
        return self

    @property
    def effective_stride(self) -> int:
        return self.stride or self.tile_size // 2

    @property
    def effective_split_block(self) -> int:
        return self.split_block or 2 * self.tile_size

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> TrainConfig:
        return cls(**known_settings(cls, data))

    @classmethod
    def from_json(cls, path: str | os.PathLike) -> TrainConfig:
        try:
            data = json.loads(Path(path).read_text())
        except (OSError, ValueError) as err:
            raise ConfigError(f"cannot read this JSON config ({err})", path=path, fix="check the file") from err
        return cls.from_dict(data)


def known_settings(cls: type, data: dict[str, Any]) -> dict[str, Any]:
    """A copy of ``data`` after checking that every key is a field of the config dataclass ``cls``."""
    known = {f.name for f in fields(cls)}
    unknown = sorted(set(data) - known)
    if unknown:
        raise ConfigError(f"unknown setting(s): {', '.join(unknown)}", fix=f"use only: {', '.join(sorted(known))}")
    return dict(data)


def is_vector(path: str | os.PathLike) -> bool:
    """True for file types that hold vector features rather than pixels."""
    return Path(path).suffix.lower() in VECTOR_SUFFIXES


def _choice(name: str, value: str, options: tuple[str, ...]) -> None:
    if value not in options:
        raise ConfigError(f"unknown {name} '{value}'", fix=f"choose one of: {', '.join(options)}")


def _positive(**values: int) -> None:
    for name, value in values.items():
        if not isinstance(value, int) or value < 1:
            raise ConfigError(f"{name} must be a whole number of at least 1 (got {value!r})", fix=f"set {name} ≥ 1")
