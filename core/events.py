"""Plain event objects that long jobs yield; any front (CLI, QgsTask, tests) consumes them."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any


@dataclass
class Event:
    """Base of all events; ``to_dict`` gives a JSON-ready form."""

    def to_dict(self) -> dict[str, Any]:
        return {"event": type(self).__name__, **asdict(self)}


@dataclass
class StartEvent(Event):
    """A job starts: what it will do, in numbers a progress bar needs."""

    total_epochs: int = 0
    steps_per_epoch: int = 0
    train_tiles: int = 0
    val_tiles: int = 0
    device: str = "cpu"
    message: str = ""


@dataclass
class StepEvent(Event):
    """One optimiser step done. ``loss`` is the mean loss of the step's batches; ``tiles_per_s`` its speed."""

    epoch: int
    step: int
    loss: float
    lr: float
    tiles_per_s: float


@dataclass
class EpochEvent(Event):
    """An epoch done, with validation results (``metrics`` as ConfusionMatrix.compute gives them)."""

    epoch: int
    train_loss: float
    val_loss: float | None
    metrics: dict[str, Any] = field(default_factory=dict)
    seconds: float = 0.0


@dataclass
class CheckpointEvent(Event):
    """A checkpoint or package was written to ``path``; ``kind`` is 'last' or 'best'."""

    path: str
    kind: str
    epoch: int


@dataclass
class ProgressEvent(Event):
    """Progress of a job without epochs (prediction): ``done`` of ``total`` units."""

    done: int
    total: int
    message: str = ""


@dataclass
class WarningEvent(Event):
    """Something the user should see; the job goes on."""

    message: str


@dataclass
class FinishedEvent(Event):
    """The job ended well; ``path`` is its main output, ``summary`` its final numbers."""

    path: str
    summary: dict[str, Any] = field(default_factory=dict)


@dataclass
class CancelledEvent(Event):
    """The user cancelled; ``path`` is what was kept (last good package) or '' when nothing was."""

    path: str = ""
    message: str = ""
