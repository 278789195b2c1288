"""Semantic segmentation: labelled rasters in, a model package (``.geofm``) and its metrics JSON out."""

from __future__ import annotations

import os
from collections.abc import Iterator
from typing import Any

import torch
from torch import nn

from ..augment import augment_batch, jitter_bands
from ..checkpoint import metrics_path
from ..config import TrainConfig
from ..errors import Cancelled
from ..events import Event
from ..fileio import write_json
from ..metrics import ConfusionMatrix
from ..model import build_model
from ..package import save_package
from ..training_data import TrainingData, package_metadata_for, prepare_training_data
from ..weights import pretrained_for_images
from . import CancelFlag, Task


class SegmentationTask(Task):
    """Per-pixel classes from a :class:`TrainConfig`; the best epoch is the one with the highest validation mIoU."""

    name = "segmentation"
    monitor = "mean_iou"
    mode = "max"
    history_metrics = ("mean_iou", "overall_accuracy")
    nonfinite_causes = ("a band with extreme or unmasked nodata values (check the image's nodata value and use "
                        "global normalisation), label values outside the classes")

    def __init__(self, config: TrainConfig):
        self.config = config
        self.source = config.images[0] if config.images else None
        self.data: TrainingData | None = None
        self._loss: nn.CrossEntropyLoss | None = None
        self.notes: list[str] = []
        self._matrix: ConfusionMatrix | None = None

    # -- data ---------------------------------------------------------------------------------------------------
    def prepare(self, cancel: CancelFlag | None) -> Iterator[Event]:
        fixed = self._pretrained_stats()  # before reading any data: wrong bands fail at once
        try:  # progress, warnings (e.g. a tolerated CRS difference) and cancellation arrive as events
            self.data = yield from prepare_training_data(self.config, cancel, stats=fixed)
        except Cancelled:
            return  # the loop sees the cancel flag and says nothing was written
        self._loss = nn.CrossEntropyLoss(weight=self.data.class_weights, ignore_index=-1)
        self.summary = self.data.summary

    def _pretrained_stats(self):
        """A backbone package's or published weights' normalisation statistics, after checking (or placing) the
        image's bands against theirs; None for other weights (the run computes its own)."""
        cfg = self.config
        stats, self.pretrained, self.band_map = pretrained_for_images(cfg.backbone, cfg.weights, cfg.images[0],
                                                                      cfg.band_map)
        if stats is not None and cfg.normalisation != "global":
            self.notes.append(f"the pretrained weights expect their own input scaling (global); this run uses "
                              f"{cfg.normalisation} normalisation, which they have not seen")
            return None
        return stats

    def train_dataset(self):
        return self.data.train

    def val_dataset(self):
        return self.data.val

    # -- model, loss, metrics -----------------------------------------------------------------------------------
    def build_model(self) -> nn.Module:
        cfg, data = self.config, self.data
        return build_model(cfg.backbone, cfg.decoder, data.in_channels, data.classes.num_classes, cfg.weights,
                           cfg.rgb_bands, notes=self.notes, band_names=data.band_names,
                           band_map=getattr(self, "band_map", None) or cfg.band_map,  # offline ImageNet: from scratch, with a note
                           spectral_branch=cfg.spectral_branch, pretrained_decoder=cfg.pretrained_decoder)

    def parameter_groups(self, model: nn.Module) -> list[tuple[list[nn.Parameter], float]]:
        """A pretrained backbone at ``backbone_lr`` of the learning rate, the rest at all of it."""
        scale = self.config.backbone_lr
        if scale == 1.0 or not model.pretrained_backbone:
            return super().parameter_groups(model)
        ours = {id(p) for p in model.backbone.parameters()}
        params = list(model.parameters())  # in order: the optimiser state of a one-group run carries over
        return [([p for p in params if id(p) in ours], scale), ([p for p in params if id(p) not in ours], 1.0)]

    def training_step(self, model: nn.Module, batch: Any, rng: torch.Generator) -> torch.Tensor:
        x, y = batch
        if self.config.augment:
            x, y = augment_batch(x, y, rng)
        if self.config.band_jitter:
            x = jitter_bands(x, self.config.band_jitter, rng)
        loss = self._loss_on(y.device)
        logits, pixel = model(x, parts=True)
        if pixel is None:
            return loss(logits, y)
        return loss(logits, y) + loss(pixel, y)  # the spectral branch must classify pixels on its own too

    def validation_step(self, model: nn.Module, batch: Any) -> torch.Tensor | None:
        x, y = batch
        logits = model(x)
        self._confusion().update(logits.argmax(1), y)
        return self._loss_on(y.device)(logits.float(), y) if (y >= 0).any() else None

    def epoch_metrics(self) -> dict[str, Any]:
        matrix, self._matrix = self._confusion(), None  # created here too, so every DDP process joins the reduce
        return matrix.all_reduce().compute()

    def _confusion(self) -> ConfusionMatrix:
        if self._matrix is None:
            self._matrix = ConfusionMatrix(self.data.classes.num_classes, self.data.classes.names)
        return self._matrix

    def _loss_on(self, device: torch.device) -> nn.CrossEntropyLoss:
        return self._loss.to(device)  # moves the class weights once; a no-op afterwards

    # -- outputs and identity -----------------------------------------------------------------------------------
    def save_best(self, path: str, model: nn.Module, epoch: int, metrics: dict[str, Any],
                  history: list[dict[str, Any]]) -> None:
        meta = package_metadata_for(self.config, self.data, metrics, history, epoch)
        if getattr(self, "pretrained", None):
            meta["pretrained"] = self.pretrained  # which weights it started from, and their licence
        save_package(path, model, meta)
        write_json(metrics_path(path), meta["metrics"])

    def fingerprint(self) -> dict[str, Any]:
        return run_fingerprint(self.config)

    def stored_config(self) -> dict[str, Any]:
        return self.config.to_stored()

    def fingerprint_of(self, stored_config: dict[str, Any], source: str) -> dict[str, Any]:
        # Stored configs without schema_version are geofm 0.1's (version 1); a newer one is refused.
        return run_fingerprint(TrainConfig.from_dict(stored_config, source=source, version_if_missing=1))


def run_fingerprint(config: TrainConfig) -> dict[str, Any]:
    """The settings that define a segmentation run: which pixels, labels and classes, how they are tiled, split
    and scaled, and the model's shape. A run continues only with the same values.

    Left out, as settings a resumed run may change: the optimisation (learning rate, batch, accumulation, epochs,
    patience, class weights, augmentation), where it runs, and the starting weights (``weights``, ``rgb_bands``),
    which the checkpoint's weights replace. Class names and colours may change too; their values may not.
    """
    classes = [int(c["value"]) for c in config.classes] if config.classes else None
    return {
        "images": [os.path.abspath(p) for p in config.images],
        "labels": [os.path.abspath(p) for p in config.labels],
        "label_field": config.label_field,
        "classes": classes,
        "ignore_values": [float(v) for v in config.ignore_values],
        "background": config.background,
        "tile_size": config.tile_size,
        "overlap": float(config.overlap),
        "split_block": config.effective_split_block,
        "val_fraction": float(config.val_fraction),
        "seed": config.seed,
        "normalisation": config.normalisation,
        "backbone": config.backbone,
        "decoder": config.decoder,
        "spectral_branch": config.spectral_branch,
    }
