"""Plain event objects that long jobs yield; any front (CLI, QgsTask, Processing, the panel, tests) consumes them.

Fronts derive from :class:`EventHandler`; how far a job is (a 0..1 fraction and an ETA) is worked out once, here,
by :class:`Progress`, from the events alone.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Generator
from dataclasses import asdict, dataclass, field
from typing import Any, TypeVar

T = TypeVar("T")

#: The named steps of data preparation, in order (``ProgressEvent.phase``).
PREPARATION_PHASES = ("checking the grid", "reading classes", "tiling", "band statistics")
#: Share of a training run's progress bar that data preparation fills.
PREPARATION_SHARE = 0.05
#: A validation tile costs about this much of a training tile (forward pass only), until validation is timed.
VALIDATION_COST = 0.35
#: The highest fraction before a job has finished well.
NOT_DONE = 0.999


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
    """Progress of a job without epochs (prediction), or of a preparation step: ``done`` of ``total`` units.

    ``phase`` names a step of data preparation (one of :data:`PREPARATION_PHASES`); '' is the job's main work.
    """

    done: int
    total: int
    message: str = ""
    phase: str = ""


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


def result_of(steps: Generator[Any, Any, T]) -> T:
    """Run a generator to its end, dropping what it yields; return what it returns."""
    try:
        while True:
            next(steps)
    except StopIteration as stop:
        return stop.value


class Progress:
    """How far a job is, from its events alone: ``fraction`` (0..1, never decreasing, 1.0 only once the job has
    finished well), ``eta`` (seconds left; None while unknown) and ``phase`` (what it does now, in words).

    Training: data preparation fills the first :data:`PREPARATION_SHARE` (its four phases a quarter each, by
    done / total); then every epoch counts as its steps, its validation and its saving, each timed on the epochs
    seen so far (during the first, validation is estimated from the tile counts). So the ETA includes validation
    and saving, not only steps. A job without epochs (prediction) counts ``ProgressEvent.done / total``.
    ``update(event, now)`` takes the time (seconds, ``clock()`` by default) the event arrived.
    """

    def __init__(self, clock: Callable[[], float] = time.monotonic) -> None:
        self.clock = clock
        self.fraction = 0.0
        self.eta: float | None = None
        self.phase = ""
        self.finished = False
        self._start: StartEvent | None = None
        self._work: tuple[float, int] | None = None  # (time, done) of the first main-work ProgressEvent
        self._first_epoch: int | None = None
        self._epochs_done = 0
        self._epoch: int | None = None  # the epoch in progress (None between epochs)
        self._epoch_at = 0.0  # when the current (or next) epoch began
        self._step = 0
        self._steps_at: float | None = None  # time of the current epoch's last step
        self._validated_at: float | None = None  # time of the current epoch's EpochEvent
        self._timings: list[tuple[float, float, float]] = []  # seconds of steps, validation, saving per epoch

    def update(self, event: Event, now: float | None = None) -> None:
        """Take one event into account."""
        handler = getattr(self, f"_{type(event).__name__}", None)
        if handler is not None:
            handler(event, self.clock() if now is None else now)

    # -- events ------------------------------------------------------------------------------------------------
    def _ProgressEvent(self, event: ProgressEvent, now: float) -> None:  # noqa: N802
        part = min(1.0, max(0.0, event.done / event.total)) if event.total else 0.0
        if event.phase:
            phases = PREPARATION_PHASES
            k = phases.index(event.phase) if event.phase in phases else len(phases) - 1
            self.phase = event.phase
            self._set(PREPARATION_SHARE * (k + part) / len(phases))
            return
        self.phase = event.message or self.phase
        if self._work is None:
            self._work = (now, event.done)
        self._set(part)
        began, done0 = self._work
        if event.total and event.done > done0:
            self.eta = (now - began) / (event.done - done0) * max(event.total - event.done, 0)

    def _StartEvent(self, event: StartEvent, now: float) -> None:  # noqa: N802
        self._start = event
        self._epoch_at = now
        self.phase = "training"
        self._set(PREPARATION_SHARE)

    def _StepEvent(self, event: StepEvent, now: float) -> None:  # noqa: N802
        if self._start is None:
            return
        if self._epoch is not None and event.epoch != self._epoch:
            self._end_epoch(now)  # no 'last' checkpoint came (a torchrun rank other than 0)
        if self._first_epoch is None:
            self._first_epoch = event.epoch  # > 1 when resumed
        self._epoch, self._step, self._steps_at = event.epoch, event.step, now
        self.phase = f"epoch {event.epoch}"
        self._training(now)

    def _EpochEvent(self, event: EpochEvent, now: float) -> None:  # noqa: N802
        if self._epoch is None:
            return
        self._validated_at = now
        self.phase = f"saving epoch {event.epoch}"
        self._training(now)

    def _CheckpointEvent(self, event: CheckpointEvent, now: float) -> None:  # noqa: N802
        if event.kind == "last":
            self._end_epoch(now)
            self._training(now)

    def _FinishedEvent(self, event: FinishedEvent, now: float) -> None:  # noqa: N802
        self.fraction, self.eta, self.finished, self.phase = 1.0, 0.0, True, "finished"

    def _CancelledEvent(self, event: CancelledEvent, now: float) -> None:  # noqa: N802
        self.eta, self.phase = None, "cancelled"

    # -- arithmetic --------------------------------------------------------------------------------------------
    def _set(self, fraction: float) -> None:
        self.fraction = max(self.fraction, min(fraction, NOT_DONE))

    def _end_epoch(self, now: float) -> None:
        if self._epoch is None:
            return
        stepped = self._steps_at if self._steps_at is not None else now
        validated = self._validated_at if self._validated_at is not None else stepped
        self._timings.append((stepped - self._epoch_at, validated - stepped, now - validated))
        self._epochs_done += 1
        self._epoch, self._step, self._steps_at, self._validated_at, self._epoch_at = None, 0, None, None, now

    def _epoch_seconds(self) -> tuple[float, float, float] | None:
        """Estimated seconds of one epoch's steps, validation and saving; None before the first step."""
        if self._timings:
            recent = self._timings[-3:]  # a frozen backbone makes the first epochs faster than the later ones
            return tuple(sum(t[i] for t in recent) / len(recent) for i in range(3))  # type: ignore[return-value]
        if self._start is None or self._epoch is None or not self._step or self._steps_at is None:
            return None
        steps = (self._steps_at - self._epoch_at) / self._step * max(1, self._start.steps_per_epoch)
        if self._validated_at is not None:
            validation = self._validated_at - self._steps_at
        else:
            validation = steps * VALIDATION_COST * self._start.val_tiles / max(1, self._start.train_tiles)
        return steps, validation, 0.0

    def _training(self, now: float) -> None:
        start = self._start
        if start is None:
            return
        first = self._first_epoch or 1
        epochs = max(1, start.total_epochs - first + 1)
        steps_per_epoch = max(1, start.steps_per_epoch)
        seconds = self._epoch_seconds()
        in_epoch = 0.0  # share of the current epoch done
        if self._epoch is not None:
            if seconds is not None and sum(seconds) > 0:
                s, v, c = seconds
                done = s + v if self._validated_at is not None else s * min(1.0, self._step / steps_per_epoch)
                in_epoch = done / (s + v + c)
            else:
                in_epoch = min(1.0, self._step / steps_per_epoch)
        share = min(1.0, (self._epochs_done + in_epoch) / epochs)
        self._set(PREPARATION_SHARE + (1 - PREPARATION_SHARE) * share)
        if seconds is not None:
            self.eta = max(0.0, (epochs - self._epochs_done - in_epoch) * sum(seconds))


class EventHandler:
    """Base of every front (the CLI printer, the QgsTask relay, the Processing feedback, the training panel).

    ``handle(event)`` first moves ``self.tracker`` (a :class:`Progress`: fraction, ETA, phase), then calls the
    subclass's ``on_<EventName>(event)`` when it has one (``on_StepEvent``, ``on_WarningEvent``, …). Fronts show
    ``self.tracker.fraction`` and ``.eta`` rather than working them out again. The tracker is made on first use,
    so a Qt class can mix this in without a cooperative ``__init__``.
    """

    @property
    def tracker(self) -> Progress:
        tracker = getattr(self, "_event_tracker", None)
        if tracker is None:
            tracker = self._event_tracker = Progress()
        return tracker

    def handle(self, event: Event) -> None:
        """Take one engine event: progress first, then the ``on_<EventName>`` method, if any."""
        self.tracker.update(event)
        method = getattr(self, f"on_{type(event).__name__}", None)
        if method is not None:
            method(event)
