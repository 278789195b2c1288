"""Training a segmentation model: the segmentation task run by the shared loop (:mod:`.loop`, :mod:`.tasks`)."""

from __future__ import annotations

from collections.abc import Iterator

from .config import TrainConfig
from .events import Event
from .fileio import check_train_outputs
from .loop import Loop, LoopSettings
from .tasks import CancelFlag
from .tasks.segmentation import SegmentationTask

__all__ = ["CancelFlag", "train"]


def train(config: TrainConfig, cancel: CancelFlag | None = None) -> Iterator[Event]:
    """Train a segmentation model as ``config`` says, yielding events; the package lands at ``config.output``.

    Under ``torchrun`` every process runs this; rank 0 alone writes files. Raises a
    :class:`~geofm.core.errors.GeoFMError` with a fix for every failure a user can act on.
    """
    config.validate()  # inside the generator, as every error: a front sees them where it consumes the events
    check_train_outputs(config)  # before any data is read: no output may be an input, every folder writable
    yield from Loop(SegmentationTask(config), LoopSettings.from_config(config), cancel).run()
