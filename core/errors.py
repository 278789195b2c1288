"""geofm's one exception family. Every message names the file, the problem and the fix."""

from __future__ import annotations

import errno
import os
import warnings
from collections.abc import Callable


class GeoFMError(Exception):
    """Base of every error geofm raises on purpose; its text is meant for the user, not a developer."""

    def __init__(self, problem: str, *, path: str | os.PathLike | None = None, fix: str | None = None):
        self.path = os.fspath(path) if path is not None else None
        self.problem = problem
        self.fix = fix
        parts = [f"{self.path}: {problem}" if self.path else problem]
        if fix:
            parts.append(f"Fix: {fix}")
        super().__init__("\n".join(parts))


class InputError(GeoFMError):
    """A file is missing, unreadable, corrupt or not the kind of file expected."""


class GridError(GeoFMError):
    """Image and labels do not line up: CRS, extent, resolution or overlap."""


class LabelError(GeoFMError):
    """Label values, classes or fields are unusable."""


class DataError(GeoFMError):
    """Image pixels are unusable: constant bands, no valid pixel, non-finite values."""


class ConfigError(GeoFMError):
    """A parameter is out of range or inconsistent with another."""


class PackageError(GeoFMError):
    """A model package is unreadable, unsafe, of an unknown format or does not fit the input."""


class TrainingError(GeoFMError):
    """Training cannot go on: non-finite loss, out of memory, no valid tile."""


class PredictionError(GeoFMError):
    """Prediction cannot run or its output cannot be written."""


class OutputError(GeoFMError):
    """An output cannot be written: it would overwrite an input or another output, its folder is missing or not
    writable, it names a folder, or the disk is full. Nothing is left at the output path."""


class DiskFullError(OutputError, OSError):
    """The disk (or the quota) is full. Also an ``OSError`` with ``errno.ENOSPC``, so code that handles a failed
    write as an OSError (predict's outputs) still recognises it."""

    def __init__(self, problem: str, *, path: str | os.PathLike | None = None, fix: str | None = None):
        super().__init__(problem, path=path, fix=fix)
        self.errno, self.strerror = errno.ENOSPC, os.strerror(errno.ENOSPC)

    def __str__(self) -> str:
        return BaseException.__str__(self)


class Cancelled(GeoFMError):
    """The user cancelled the job; nothing partial was left behind."""


class GeoFMWarning(UserWarning):
    """Something the user should know, after which the job goes on (e.g. a sub-pixel CRS offset)."""


#: Where a function deep inside a job puts a note for the user: e.g. ``notes.append`` of a list the job drains
#: into :class:`~geofm.core.events.WarningEvent` s. Passed down explicitly, so two jobs in two threads never share it.
Warn = Callable[[str], None]


def warn(message: str, to: Warn | None = None, stacklevel: int = 2) -> None:
    """Tell the user ``message``: through the job's collector ``to`` when the caller gave one, else (a library
    call outside any job) as a :class:`GeoFMWarning`, attributed to the caller's caller."""
    if to is not None:
        to(message)
    else:
        warnings.warn(message, GeoFMWarning, stacklevel=stacklevel + 1)
