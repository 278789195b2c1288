"""Confusion matrix over valid pixels -> overall accuracy, per-class IoU / F1 / precision / recall, mean IoU."""

from __future__ import annotations

import os
from collections.abc import Sequence
from typing import Any

import numpy as np
import torch
import torch.distributed as dist

from .errors import LabelError
from .fileio import write_json


class ConfusionMatrix:
    """Pixel counts ``matrix[target, prediction]`` ([K, K] int64) for ``num_classes`` classes."""

    def __init__(self, num_classes: int, names: Sequence[str] | None = None):
        self.num_classes = num_classes
        self.names = list(names) if names is not None else [str(i) for i in range(num_classes)]
        if len(self.names) != num_classes:
            raise ValueError(f"{len(self.names)} names for {num_classes} classes")
        self.matrix = torch.zeros(num_classes, num_classes, dtype=torch.int64)

    def update(self, pred: torch.Tensor | np.ndarray, target: torch.Tensor | np.ndarray) -> None:
        """Count pixels. ``pred``: class indices [...] or logits [B, K, H, W]; ``target``: indices [...] with -1
        (any negative value) ignored. Torch tensors stay on their device for the counting."""
        pred = torch.as_tensor(pred)
        target = torch.as_tensor(target).to(pred.device)
        if pred.dim() == target.dim() + 1:
            pred = pred.argmax(dim=1)
        if pred.shape != target.shape:
            raise ValueError(f"prediction shape {tuple(pred.shape)} differs from target shape {tuple(target.shape)}")
        keep = target >= 0
        pred, target = pred[keep].long(), target[keep].long()
        k = self.num_classes
        if target.numel() and (int(target.max()) >= k or int(pred.max()) >= k or int(pred.min()) < 0):
            raise LabelError(
                f"class index out of range 0..{k - 1} (target max {int(target.max())}, prediction range "
                f"{int(pred.min())}..{int(pred.max())})",
                fix="map label values to 0..K-1 with the class map and mark ignored pixels -1",
            )
        counts = torch.bincount(target * k + pred, minlength=k * k)
        self.matrix += counts.reshape(k, k).cpu()

    def merge(self, other: ConfusionMatrix) -> ConfusionMatrix:
        """Add another matrix's counts (same classes) to this one; returns self."""
        if other.num_classes != self.num_classes:
            raise ValueError(f"cannot merge {other.num_classes} classes into {self.num_classes}")
        self.matrix += other.matrix
        return self

    def all_reduce(self) -> ConfusionMatrix:
        """Sum the counts over all DDP ranks (no-op unless torch.distributed is initialised); returns self."""
        if dist.is_available() and dist.is_initialized():
            device = torch.device("cuda", torch.cuda.current_device()) if dist.get_backend() == "nccl" else "cpu"
            total = self.matrix.to(device)
            dist.all_reduce(total, op=dist.ReduceOp.SUM)
            self.matrix = total.cpu()
        return self

    def compute(self) -> dict[str, Any]:
        """Scores as a JSON-ready dict; ratios in 0..1, None where undefined (a zero denominator).

        ``mean_iou`` averages the IoU over the classes present in the target or the prediction (classes
        absent from both have no IoU); ``mean_f1`` likewise. ``per_class[i]['pixels']`` is the class's
        count in the target. ``confusion_matrix`` rows are target classes, columns predicted ones.
        """
        m = self.matrix.double()
        tp = m.diag()
        in_target, in_pred = m.sum(1), m.sum(0)
        total = float(m.sum())
        per_class = []
        for i, name in enumerate(self.names):
            t, p, hit = float(in_target[i]), float(in_pred[i]), float(tp[i])
            per_class.append(
                {
                    "index": i,
                    "name": name,
                    "iou": _ratio(hit, t + p - hit),
                    "f1": _ratio(2 * hit, t + p),
                    "precision": _ratio(hit, p),
                    "recall": _ratio(hit, t),
                    "pixels": int(t),
                }
            )
        ious = [c["iou"] for c in per_class if c["iou"] is not None]
        f1s = [c["f1"] for c in per_class if c["f1"] is not None]
        return {
            "overall_accuracy": _ratio(float(tp.sum()), total),
            "mean_iou": sum(ious) / len(ious) if ious else None,
            "mean_f1": sum(f1s) / len(f1s) if f1s else None,
            "pixels": int(total),
            "per_class": per_class,
            "confusion_matrix": self.matrix.tolist(),
        }

    def write_json(self, path: str | os.PathLike) -> None:
        """Write :meth:`compute` to ``path`` as indented JSON, atomically."""
        write_json(path, self.compute())


def _ratio(num: float, den: float) -> float | None:
    return num / den if den > 0 else None
