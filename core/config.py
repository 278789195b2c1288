"""The training and prediction settings, each declared once (see :mod:`.schema`); every front derives from them.

Defaults are chosen by measurement (docs/defaults.md). Nothing here imports torch.
"""

from __future__ import annotations

import json
import os
from dataclasses import asdict, dataclass, replace
from pathlib import Path
from typing import Any

from .errors import ConfigError
from .schema import check_values, setting, upgrade

VECTOR_SUFFIXES = (".shp", ".gpkg", ".geojson", ".json", ".fgb", ".kml", ".gml", ".sqlite")
TRAIN_SCHEMA = 4
PREDICT_SCHEMA = 2


@dataclass
class TrainConfig:
    """Everything one training run needs."""

    images: list[str] = setting(
        default_factory=list, kind="paths", label="Image", flags=("--image",),
        help="Image raster(s) to learn from; repeat --image for several scenes.",
        cli=True, dialog=True, processing=True, saved=False)
    labels: list[str] = setting(
        default_factory=list, kind="paths", label="Labels", flags=("--labels",),
        help="One label source per image: a class raster, or a vector file of polygons or points.",
        cli=True, dialog=True, processing=True, saved=False)
    label_field: str | None = setting(
        None, kind="str", label="Class field", nullable=True,
        help="The attribute of vector labels that holds each feature's class (a name or a number).",
        cli=True, dialog=True, processing=True, saved=False)
    classes: list[dict[str, Any]] | None = setting(
        None, kind="classes", label="Classes", nullable=True,
        help='Class values with names and colours, e.g. [{"value": 1, "name": "water", "colour": "#1f78b4"}]; '
             "empty: read from the labels.",
        cli=True, dialog=True, processing=False, saved=False)
    ignore_values: list[float] = setting(
        default_factory=list, kind="floats", label="Ignore values",
        help="Label values that mean 'not labelled' (besides the label raster's nodata).",
        cli=True, dialog=False, processing=False, saved=False)
    background: bool = setting(
        False, kind="bool", label="Unlabelled area is background",
        help="Vector labels: pixels outside every polygon become a 'background' class.",
        cli=True, dialog=False, processing=True, saved=False)
    align_labels: bool = setting(
        False, kind="bool", label="Align the labels to the image grid when needed",
        help="Warp label rasters onto the image's pixel grid when the grid check asks for it.",
        cli=True, dialog=True, processing=True, saved=False)
    backbone: str = setting(
        "resnet18", kind="choice", choices="backbones", label="Backbone", advanced=True,
        help="The feature extractor. Deeper ones are slower and need more labels.",
        cli=True, dialog=True, processing=True, saved=True)
    weights: str = setting(
        "imagenet", kind="weights", choices="weight_sources", label="Pretrained weights",
        help="Where the backbone starts from: pretrained weights, none (from scratch) or a weights file.",
        cli=True, dialog=True, processing=True, saved=True)
    band_map: str | None = setting(
        None, kind="str", label="Band map", nullable=True, advanced=True,
        help="Published weights: the weights band each image band is, comma-separated (e.g. B2,B3,B4,B8); empty: "
             "placed by band description or wavelength.",
        cli=True, dialog=False, processing=True, saved=True)
    rgb_bands: list[int] = setting(
        default_factory=lambda: [0, 1, 2], kind="ints", label="Red, green, blue bands",
        help="The (0-based) bands holding red, green and blue, so RGB-pretrained weights see colours they know.",
        cli=True, dialog=False, processing=False, saved=False)
    decoder: str = setting(
        "fpn", kind="choice", choices="decoders", label="Decoder", advanced=True,
        help="How backbone features become a class map at the image's resolution.",
        cli=True, dialog=True, processing=True, saved=True)
    spectral_branch: bool = setting(
        True, kind="bool", label="Per-pixel spectral branch", advanced=True,
        help="Add class scores from each pixel's own band values (a small per-pixel network) to the map's: keeps "
             "spectral detail when labels are a few small polygons or points.",
        cli=True, dialog=True, processing=True, saved=True)
    pretrained_decoder: bool = setting(
        False, kind="bool", label="Decoder from the backbone package", advanced=True,
        help="When the weights are a backbone package from masked reconstruction, start the FPN decoder from its "
             "pretrained decoder too (all but the classifier), not only the backbone.",
        cli=True, dialog=True, processing=True, saved=True)
    tile_size: int = setting(
        128, kind="int", label="Tile size", unit="px", minimum=32, maximum=2048, flags=("--tile", "--tile-size"),
        help="Side of the square windows the model learns from; larger tiles see more context.",
        cli=True, dialog=True, processing=True, saved=True)
    overlap: float = setting(
        50.0, kind="float", label="Tile overlap", unit="%", minimum=0, maximum=90,
        help="How much of a tile its neighbour repeats; more overlap gives more (correlated) training tiles.",
        cli=True, dialog=True, processing=True, saved=True)
    normalisation: str = setting(
        "global", kind="choice", choices="normalisations", label="Normalisation", advanced=True,
        help="How band values are scaled before they reach the model.",
        cli=True, dialog=True, processing=True, saved=True)
    batch_size: int = setting(
        8, kind="int", label="Batch size", minimum=1, maximum=1024, flags=("--batch", "--batch-size"),
        help="Tiles per optimiser step; lower it when the GPU runs out of memory.",
        cli=True, dialog=True, processing=True, saved=True)
    epochs: int = setting(
        0, kind="int", label="Epochs", minimum=0, maximum=10000, zero_means="automatic",
        help="Passes over the training tiles; 0: automatic (about 2,400 tiles seen in all, 5 to 100 epochs).",
        cli=True, dialog=True, processing=True, saved=True)
    lr: float = setting(
        1e-3, kind="float", label="Learning rate", minimum=1e-6, maximum=1.0, advanced=True,
        help="Step size of the AdamW optimiser.",
        cli=True, dialog=True, processing=True, saved=True)
    lr_schedule: str = setting(
        "cosine", kind="choice", choices="lr_schedules", label="Learning-rate schedule", advanced=True,
        help="How the learning rate changes over the epochs: cosine falls to a hundredth of it by the last epoch, "
             "so the last epoch (kept when no labels are held out) is the calmest.",
        cli=True, dialog=True, processing=True, saved=True)
    weight_decay: float = setting(
        1e-3, kind="float", label="Weight decay", minimum=0.0, maximum=1.0, advanced=True,
        help="AdamW's pull of the weights toward zero; more of it resists over-fitting small data.",
        cli=True, dialog=True, processing=True, saved=True)
    class_weights: str = setting(
        "sqrt", kind="choice", choices="class_weightings", label="Weight rare classes", advanced=True,
        help="Weight the loss so rare classes count more: square root of inverse frequency (gentle) or inverse "
             "frequency (strong); helps rare classes, may cost overall accuracy.",
        cli=True, dialog=True, processing=True, saved=True)
    augment: bool = setting(
        True, kind="bool", label="Augment (flips and 90° turns)", advanced=True,
        help="Random flips and quarter turns of each training batch.",
        cli=True, dialog=True, processing=True, saved=True)
    band_jitter: float = setting(
        0.0, kind="float", label="Band jitter", minimum=0.0, maximum=1.0, percent=True, zero_means="off",
        advanced=True,
        help="Random gain and offset of each band of each training tile, as a share of the band's spread (0.1 = "
             "10 %): a model that does not hang on exact band values, as haze, season and sensor shift them. 0: off.",
        cli=True, dialog=True, processing=True, saved=True)
    accumulate: int = setting(
        1, kind="int", label="Gradient accumulation", minimum=1, maximum=128, advanced=True,
        help="Batches summed per optimiser step: a larger effective batch on a small GPU.",
        cli=True, dialog=True, processing=True, saved=True)
    freeze_backbone_epochs: int = setting(
        0, kind="int", label="Frozen-backbone epochs", unit="epochs", minimum=0, maximum=10000, advanced=True,
        help="Train only the decoder for this many first epochs (useful with pretrained weights).",
        cli=True, dialog=True, processing=True, saved=True)
    backbone_lr: float = setting(
        1.0, kind="float", label="Pretrained backbone's learning rate", minimum=0.01, maximum=1.0, percent=True,
        advanced=True,
        help="The learning rate of a backbone that starts from pretrained weights, as a share of the learning rate: "
             "lower keeps more of what pretraining learned. No effect on a backbone trained from scratch.",
        cli=True, dialog=True, processing=True, saved=True)
    patience: int = setting(
        0, kind="int", label="Early-stopping patience", unit="epochs", minimum=0, maximum=10000, advanced=True,
        zero_means="never stop early",
        help="Stop after this many epochs without a better validation score; 0 never stops early.",
        cli=True, dialog=True, processing=True, saved=True)
    val_fraction: float = setting(
        0.0, kind="float", label="Validation share", minimum=0.0, maximum=0.9, flags=("--val-share",), percent=True,
        zero_means="none held out",
        help="Share of the labelled area held out (in spatial blocks) to score every epoch and keep the best; 0: "
             "every labelled pixel trains (better on few polygons or points) and the run has no held-out score.",
        cli=True, dialog=True, processing=True, saved=True)
    split_block: int = setting(
        0, kind="int", label="Split block", unit="px", minimum=0, maximum=100000, advanced=True,
        zero_means="twice the tile size",
        help="Side of the spatial blocks that go wholly to training or validation; 0: twice the tile size.",
        cli=True, dialog=True, processing=True, saved=True)
    seed: int = setting(
        0, kind="int", label="Random seed", minimum=0, maximum=2**31 - 1, advanced=True,
        help="Makes the split, initial weights and tile order repeatable.",
        cli=True, dialog=True, processing=True, saved=True)
    device: str = setting(
        "auto", kind="choice", choices="devices", label="Device",
        help="Where the model runs.",
        cli=True, dialog=True, processing=True, saved=True)
    num_workers: int | None = setting(
        None, kind="int", label="Loader workers", minimum=0, maximum=64, nullable=True, flags=("--workers",),
        help="Processes reading tiles; empty: chosen for the device.",
        cli=True, dialog=False, processing=False, saved=False)
    output: str = setting(
        "model.geofm", kind="path", label="Save model as", flags=("--out",),
        help="The model package to write (.geofm); a .last.ckpt for resuming is written beside it while it trains.",
        cli=True, dialog=True, processing=True, saved=True)
    resume: str | None = setting(
        None, kind="path", label="Resume from", nullable=True,
        help="The .last.ckpt of an interrupted run with the same data settings.",
        cli=True, dialog=False, processing=False, saved=False)
    keep_checkpoint: bool = setting(
        False, kind="bool", label="Keep the checkpoint", advanced=True,
        help="Keep the .last.ckpt (about 3 times the model's size) after a finished run, to continue training it "
             "later; a cancelled or failed run always keeps it.",
        cli=True, dialog=True, processing=True, saved=True)

    def validate(self) -> TrainConfig:
        """Raise :class:`ConfigError` for anything out of range or inconsistent; return self so calls chain."""
        check_values(TrainConfig, self.to_dict())  # the types and ranges, as for a loaded config
        if not self.images:
            raise ConfigError("no image raster given", fix="pass at least one image (--image)")
        if len(self.labels) != len(self.images):
            raise ConfigError(f"{len(self.images)} image(s) but {len(self.labels)} label source(s)",
                              fix="give one label raster or vector file per image")
        if any(is_vector(p) for p in self.labels) and not self.label_field:
            raise ConfigError("vector labels need the name of their class field",
                              fix="pass --label-field with the attribute that holds the class")
        if self.weights not in _weight_sources() and not Path(self.weights).is_file():
            raise ConfigError("the weights file does not exist", path=self.weights,
                              fix=f"pass one of {', '.join(_weight_sources())} or the path of a weights file")
        if len(self.rgb_bands) != 3:
            raise ConfigError("rgb_bands needs three band indices (red, green, blue)", fix="e.g. 0 1 2")
        if not str(self.output).endswith(".geofm"):
            raise ConfigError("the model package name must end in .geofm", path=self.output,
                              fix=f"use {Path(self.output).with_suffix('.geofm')}")
        return self

    @property
    def stride(self) -> int:
        """Pixels between training tiles, from the overlap."""
        return stride_for(self.tile_size, self.overlap)

    @property
    def effective_split_block(self) -> int:
        return self.split_block or 2 * self.tile_size

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    def to_stored(self) -> dict[str, Any]:
        """The dict stored in packages and checkpoints: the settings and their schema version."""
        return {"schema_version": TRAIN_SCHEMA, **self.to_dict()}

    @classmethod
    def from_dict(cls, data: Any, source: str = "the training config", version_if_missing: int = TRAIN_SCHEMA
                  ) -> TrainConfig:
        """A config from a dict, upgraded from its ``schema_version`` (stored configs of geofm 0.1 have none: pass
        ``version_if_missing=1``); ConfigError for unknown keys or wrong types."""
        if isinstance(data, dict):
            data = upgrade(data, TRAIN_SCHEMA, _TRAIN_UPGRADES, "training config", source, version_if_missing)
        return cls(**check_values(cls, data, source))

    @classmethod
    def from_json(cls, path: str | os.PathLike) -> TrainConfig:
        return cls.from_dict(read_json(path), source=str(path))


PRETRAIN_SCHEMA = 2
#: The files a folder given as pretraining images stands for.
RASTER_SUFFIXES = (".tif", ".tiff", ".vrt", ".img", ".jp2")


@dataclass
class PretrainConfig:
    """Self-supervised pretraining of a backbone on unlabelled rasters (see :mod:`.tasks.pretrain`)."""

    images: list[str] = setting(
        default_factory=list, kind="paths", label="Images", flags=("--image",),
        help="Unlabelled rasters of your area, all with the same bands; repeat --image for several (e.g. dates). A "
             "folder stands for every raster file in it (" + ", ".join(RASTER_SUFFIXES) + ").",
        cli=True, dialog=True, processing=True, saved=False)
    bbox: tuple[float, float, float, float] | None = setting(
        None, kind="bbox", label="Extent", nullable=True,
        help="Pretrain only on the part of the images inside minx miny maxx maxy (in --bbox-crs); images it misses "
             "are left out; empty: the whole images.",
        cli=True, dialog=True, processing=True, saved=False)
    bbox_crs: str | None = setting(
        None, kind="str", label="Extent CRS", nullable=True,
        help="The CRS of the extent (EPSG code or WKT); empty: the first image's.",
        cli=True, dialog=True, processing=True, saved=False)
    backbone: str = setting(
        "resnet18", kind="choice", choices="backbones", label="Backbone",
        help="The feature extractor to pretrain; fine-tune with the same backbone.",
        cli=True, dialog=True, processing=True, saved=True)
    method: str = setting(
        "masked", kind="choice", choices="pretrain_methods", label="Method", advanced=True,
        help="What the backbone learns from: filling in hidden patches of every band (masked reconstruction), or "
             "agreeing on two altered views of a crop (SimSiam; the method for two dates as the pair).",
        cli=True, dialog=True, processing=True, saved=True)
    minutes: float = setting(
        0.0, kind="float", label="Time budget", unit="min", minimum=0, maximum=100000,
        help="Train for about this long (whole epochs, estimated from a timed step); 0: run the given epochs.",
        cli=True, dialog=True, processing=True, saved=True)
    epochs: int = setting(
        20, kind="int", label="Epochs", minimum=1, maximum=100000,
        help="Passes of steps-per-epoch batches (when no time budget is given).",
        cli=True, dialog=False, processing=True, saved=True)
    steps_per_epoch: int = setting(
        50, kind="int", label="Steps per epoch", minimum=1, maximum=100000, advanced=True,
        help="Batches of random crops per epoch; a checkpoint is written after each epoch.",
        cli=True, dialog=True, processing=True, saved=True)
    crop_size: int = setting(
        64, kind="int", label="Crop size", unit="px", minimum=32, maximum=1024, flags=("--crop", "--crop-size"),
        help="Side of the random crops the two views are cut from.",
        cli=True, dialog=True, processing=True, saved=True)
    batch_size: int = setting(
        16, kind="int", label="Batch size", minimum=2, maximum=1024, flags=("--batch", "--batch-size"),
        help="Crops per step (at least 2: the projector's batch norm needs a batch).",
        cli=True, dialog=True, processing=True, saved=True)
    lr: float = setting(
        1e-3, kind="float", label="Learning rate", minimum=1e-6, maximum=1.0, advanced=True,
        help="Step size of the AdamW optimiser.",
        cli=True, dialog=True, processing=True, saved=True)
    weight_decay: float = setting(
        1e-4, kind="float", label="Weight decay", minimum=0.0, maximum=1.0, advanced=True,
        help="AdamW's pull of the weights toward zero.",
        cli=True, dialog=True, processing=True, saved=True)
    temporal_pairs: bool = setting(
        False, kind="bool", label="Two dates as the positive pair (SimSiam)", advanced=True,
        help="With several images on the same grid, the two views of a crop come from two different images "
             "(dates) of the same place; a SimSiam setting.",
        cli=True, dialog=True, processing=True, saved=True)
    seed: int = setting(
        0, kind="int", label="Random seed", minimum=0, maximum=2**31 - 1, advanced=True,
        help="Makes the crops, augmentations and initial weights repeatable.",
        cli=True, dialog=True, processing=True, saved=True)
    device: str = setting(
        "auto", kind="choice", choices="devices", label="Device", help="Where the model runs.",
        cli=True, dialog=True, processing=True, saved=True)
    num_workers: int | None = setting(
        None, kind="int", label="Loader workers", minimum=0, maximum=64, nullable=True, flags=("--workers",),
        help="Processes reading crops; empty: chosen for the device.",
        cli=True, dialog=False, processing=False, saved=False)
    licence: str = setting(
        "", kind="str", label="Licence", advanced=True,
        help="The licence you give the backbone (e.g. CC-BY-4.0); recorded in the package.",
        cli=True, dialog=True, processing=True, saved=True)
    output: str = setting(
        "backbone.geofm", kind="path", label="Save backbone as", flags=("--out",),
        help="The backbone package to write (.geofm); a .last.ckpt for resuming is written beside it.",
        cli=True, dialog=True, processing=True, saved=True)
    resume: str | None = setting(
        None, kind="path", label="Resume from", nullable=True,
        help="The .last.ckpt of an interrupted pretraining run with the same data settings.",
        cli=True, dialog=False, processing=False, saved=False)

    def validate(self) -> PretrainConfig:
        """Raise :class:`ConfigError` for anything out of range or inconsistent; return self so calls chain."""
        checked = PretrainConfig(**check_values(PretrainConfig, self.to_dict(), "the pretraining settings"))
        self.bbox = _checked_bbox(checked.bbox)
        if not self.images:
            raise ConfigError("no image raster given", fix="pass at least one image (--image)")
        self.images = raster_files(self.images)
        if self.temporal_pairs and self.method != "simsiam":
            raise ConfigError(f"two dates as the pair is a SimSiam setting; the {self.method!r} method uses one image "
                              "per crop", fix="choose --method simsiam, or leave out --temporal-pairs")
        if self.temporal_pairs and len(self.images) < 2:
            raise ConfigError("two-date positive pairs need at least two images of the same place",
                              fix="pass a second --image of another date, or leave out --temporal-pairs")
        if not str(self.output).endswith(".geofm"):
            raise ConfigError("the backbone package name must end in .geofm", path=self.output,
                              fix=f"use {Path(self.output).with_suffix('.geofm')}")
        return self

    def to_dict(self) -> dict[str, Any]:
        data = asdict(self)
        data["bbox"] = list(self.bbox) if self.bbox is not None else None
        return data

    def to_stored(self) -> dict[str, Any]:
        return {"schema_version": PRETRAIN_SCHEMA, **self.to_dict()}

    @classmethod
    def from_dict(cls, data: Any, source: str = "the pretraining settings") -> PretrainConfig:
        if isinstance(data, dict):
            data = upgrade(data, PRETRAIN_SCHEMA, _PRETRAIN_UPGRADES, "pretraining settings", source, PRETRAIN_SCHEMA)
        return cls(**check_values(cls, data, source))


@dataclass
class PredictConfig:
    """Settings of one prediction: how windows overlap, where it runs, what else is written, which extent."""

    overlap: float = setting(
        50.0, kind="float", label="Window overlap", unit="%", minimum=0, maximum=90,
        help="How much of a window its neighbour repeats; overlapping windows are blended so seams never show.",
        cli=True, dialog=False, processing=True, saved=False)
    batch_size: int = setting(
        8, kind="int", label="Batch size", minimum=1, maximum=1024, flags=("--batch",),
        help="Windows per forward pass; lower it when the GPU runs out of memory.",
        cli=True, dialog=False, processing=True, saved=False)
    device: str = setting(
        "auto", kind="choice", choices="devices", label="Device", help="Where the model runs.",
        cli=True, dialog=True, processing=True, saved=False)
    test_time_flips: bool = setting(
        False, kind="bool", label="Average over flips and turns", flags=("--flips",),
        help="Predict every window in its eight flips and quarter turns and average them: steadier maps, eight "
             "times the prediction time.",
        cli=True, dialog=True, processing=True, saved=False)
    probabilities: str | None = setting(
        None, kind="path", label="Probabilities raster", nullable=True,
        help="Also write one probability band per class to this GeoTIFF.",
        cli=True, dialog=False, processing=False, saved=False)
    confidence: bool = setting(
        False, kind="bool", label="Also write a confidence raster",
        help="Also write the highest class probability to <output>_confidence.tif.",
        cli=True, dialog=True, processing=True, saved=False)
    bbox: tuple[float, float, float, float] | None = setting(
        None, kind="bbox", label="Extent", nullable=True,
        help="Predict only inside minx miny maxx maxy (in --bbox-crs); empty: the whole raster.",
        cli=True, dialog=True, processing=True, saved=False)
    bbox_crs: str | None = setting(
        None, kind="str", label="Extent CRS", nullable=True,
        help="The CRS of the extent (EPSG code or WKT); empty: the raster's.",
        cli=True, dialog=True, processing=True, saved=False)
    polygon: dict[str, Any] | None = setting(
        None, kind="geojson", label="Extent polygon", nullable=True,
        help="Predict only inside these GeoJSON polygons.",
        cli=False, dialog=True, processing=False, saved=False)
    polygon_crs: str | None = setting(
        None, kind="str", label="Polygon CRS", nullable=True,
        help="The CRS of the extent polygon; empty: the raster's.",
        cli=False, dialog=True, processing=False, saved=False)
    resample_to_training: bool = setting(
        False, kind="bool", label="Read at the training resolution", flags=("--resample",),
        help="Resample the raster to the model's training pixel size when they differ by more than 25 %.",
        cli=True, dialog=False, processing=True, saved=False)

    def validate(self) -> PredictConfig:
        """Raise :class:`ConfigError` for anything out of range; return self so calls chain."""
        checked = PredictConfig(**check_values(PredictConfig, self.to_dict(), "the prediction settings"))
        if self.bbox is not None and self.polygon is not None:
            raise ConfigError("both a bounding box and a polygon were given", fix="give one extent, not both")
        self.bbox = _checked_bbox(checked.bbox)
        return self

    def to_dict(self) -> dict[str, Any]:
        data = asdict(self)
        data["bbox"] = list(self.bbox) if self.bbox is not None else None
        return data

    @classmethod
    def from_dict(cls, data: Any, source: str = "the prediction settings") -> PredictConfig:
        if isinstance(data, dict):
            data = upgrade(data, PREDICT_SCHEMA, _PREDICT_UPGRADES, "prediction settings", source, PREDICT_SCHEMA)
        return cls(**check_values(cls, data, source))


def _checked_bbox(bbox: tuple[float, float, float, float] | None) -> tuple[float, float, float, float] | None:
    """``bbox`` (minx, miny, maxx, maxy) as a tuple; ConfigError when it is empty or inverted."""
    if bbox is not None and not (bbox[0] < bbox[2] and bbox[1] < bbox[3]):
        raise ConfigError(f"bounding box {list(bbox)!r} is empty or inverted", fix="give minx miny maxx maxy")
    return bbox


def raster_files(paths: list[str]) -> list[str]:
    """``paths`` with each folder replaced by the raster files in it (:data:`RASTER_SUFFIXES`, sorted by name);
    ConfigError for a folder that holds none."""
    found: list[str] = []
    for path in paths:
        if not os.path.isdir(path):
            found.append(path)
            continue
        inside = sorted(str(p) for p in Path(path).iterdir()
                        if p.is_file() and p.suffix.lower() in RASTER_SUFFIXES and not p.name.startswith("."))
        if not inside:
            raise ConfigError("the folder holds no raster file (" + ", ".join(RASTER_SUFFIXES) + ")", path=path,
                              fix="put the images in it, or give the image files themselves")
        found += inside
    return found


def continued(config: TrainConfig | PretrainConfig, checkpoint: str, epochs_run: int, more: int
              ) -> TrainConfig | PretrainConfig:
    """The settings that go on from ``checkpoint`` (a finished run of ``epochs_run`` epochs) for ``more`` epochs:
    a time budget would choose the epochs again, so it is dropped; early-stopping patience grows by ``more``, so
    the epochs asked for run even without a better score."""
    changes: dict[str, Any] = {"resume": checkpoint, "epochs": epochs_run + more}
    if getattr(config, "minutes", 0):
        changes["minutes"] = 0.0
    if getattr(config, "patience", 0):
        changes["patience"] = config.patience + more
    return replace(config, **changes)


def stride_for(tile: int, overlap: float) -> int:
    """Pixels between window starts for an overlap in per cent: the one place a stride comes from."""
    return max(1, round(tile * (1 - overlap / 100)))


def is_vector(path: str | os.PathLike) -> bool:
    """True for file types that hold vector features rather than pixels."""
    return Path(path).suffix.lower() in VECTOR_SUFFIXES


def read_json(path: str | os.PathLike) -> Any:
    """A JSON file's content; ConfigError naming the file when it cannot be read."""
    try:
        return json.loads(Path(path).read_text(encoding="utf-8"))
    except (OSError, ValueError) as err:
        raise ConfigError(f"cannot read this JSON file ({err})", path=path, fix="check the file") from err


def _weight_sources() -> tuple[str, ...]:
    from .registries import WEIGHT_SOURCES

    return WEIGHT_SOURCES.names()


def _train_v1_to_v2(data: dict[str, Any]) -> dict[str, Any]:
    """v1 stored a stride in pixels (None: half a tile) and None for 'no early stopping' / 'automatic block'."""
    tile = data.get("tile_size", 128)
    stride = data.pop("stride", None)
    if stride and isinstance(tile, int) and tile > 0:
        data["overlap"] = round(100 * (1 - stride / tile), 3)
    for key in ("patience", "split_block"):
        if key in data and data[key] is None:
            data[key] = 0
    return data


def _train_v2_to_v3(data: dict[str, Any]) -> dict[str, Any]:
    """v2 configs stored before these settings existed ran without them; v3 made them the defaults."""
    data.setdefault("spectral_branch", False)
    data.setdefault("lr_schedule", "constant")
    return data


def _predict_v1_to_v2(data: dict[str, Any]) -> dict[str, Any]:
    """v1 gave the overlap as a share of the window (0.5), v2 in per cent (50)."""
    if isinstance(data.get("overlap"), (int, float)):
        data["overlap"] = data["overlap"] * 100
    return data


def _train_v3_to_v4(data: dict[str, Any]) -> dict[str, Any]:
    """v3 had class weights on or off (on: inverse frequency; off by default); v4 names the weighting."""
    data.setdefault("class_weights", False)
    if isinstance(data["class_weights"], bool):
        data["class_weights"] = "inverse" if data["class_weights"] else "none"
    return data


_TRAIN_UPGRADES = {1: _train_v1_to_v2, 2: _train_v2_to_v3, 3: _train_v3_to_v4}
_PREDICT_UPGRADES = {1: _predict_v1_to_v2}


def _pretrain_v1_to_v2(data: dict[str, Any]) -> dict[str, Any]:
    """Version 2 added the method; every version-1 run was SimSiam."""
    return {**data, "method": "simsiam"}


_PRETRAIN_UPGRADES = {1: _pretrain_v1_to_v2}
