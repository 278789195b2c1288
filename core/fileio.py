"""Writing files so that a crash, a cancel or a full disk never leaves a half-written one behind, and checking,
before any work, that no output of a run is one of its inputs or another of its outputs."""

from __future__ import annotations

import contextlib
import errno
import json
import os
import shutil
import tempfile
from collections.abc import Iterable, Iterator, Mapping
from pathlib import Path
from typing import Any, Union

from .errors import DiskFullError, InputError, OutputError

#: errno values that mean "no room left": a full disk, or a full quota.
DISK_FULL = (errno.ENOSPC, errno.EDQUOT)
PathLike = Union[str, os.PathLike]  # noqa: UP007 - evaluated at run time (Python 3.9)


@contextlib.contextmanager
def gdal_messages() -> Iterator[list[str]]:
    """Collect the errors GDAL reports in this thread (instead of printing 'ERROR 1: …' on stderr) into the
    yielded list, so that geofm can put them into its own message — or raise on them: GDAL reports a failed write
    (a full disk, a lost network share) this way and carries on, leaving a damaged file."""
    found: list[str] = []
    try:
        from osgeo import gdal
    except ImportError:  # no GDAL Python bindings: GDAL keeps printing its messages
        yield found
        return

    def handler(level: int, number: int, message: str) -> None:
        if level >= gdal.CE_Failure:
            found.append(str(message).strip())

    gdal.PushErrorHandler(handler)
    try:
        yield found
    finally:
        gdal.PopErrorHandler()


@contextlib.contextmanager
def atomic_path(final: str | os.PathLike) -> Iterator[Path]:
    """Yield a temporary path beside ``final``; on success it replaces ``final``, on any error it is removed.

    Every error of the block is an error of the write: one that GDAL reported without raising raises
    :class:`OutputError`, and a full disk (however the writer says so) becomes :class:`OutputError` 'the disk is
    full … nothing was written'. Either way nothing is left at ``final`` (an older file there is kept).
    """
    final = Path(final)
    folder = final.parent if str(final.parent) else Path(".")
    if not folder.is_dir():
        raise InputError("the output folder does not exist", path=folder, fix="create the folder or pick another")
    if not os.access(folder, os.W_OK):
        raise InputError("the output folder is not writable", path=folder, fix="pick a folder you can write to")
    try:
        fd, tmp = tempfile.mkstemp(prefix=f".{final.stem}.", suffix=f"{final.suffix}.part", dir=folder)
    except OSError as err:
        raise _write_error(err, final, folder) from err
    os.close(fd)
    tmp = Path(tmp)
    umask = os.umask(0)
    os.umask(umask)
    os.chmod(tmp, 0o666 & ~umask)  # mkstemp makes it private; the final file gets the usual permissions
    try:
        with gdal_messages() as gdal_errors:
            yield tmp
        if gdal_errors:
            full = any("no space left" in m.lower() for m in gdal_errors)
            if full:
                raise DiskFullError(_FULL, path=final, fix=_fix(folder, True))
            raise OutputError("GDAL could not write the file: " + "; ".join(gdal_errors[:3]) + ". Nothing was written",
                              path=final, fix=_fix(folder, False))
        os.replace(tmp, final)
    except (OSError, RuntimeError) as err:
        raise _write_error(err, final, folder) from err
    finally:
        if tmp.exists():
            tmp.unlink()


_FULL = "the disk is full, so the file could not be written; nothing was written"


def _fix(folder: Path, full: bool) -> str:
    if full:
        return f"free space on the disk of {folder.resolve()} (or write elsewhere), then run the command again"
    return "check the disk and the folder, then run the command again"


def _write_error(err: BaseException, final: Path, folder: Path) -> BaseException:
    """``err`` (raised while writing ``final``) as the user should see it: a full disk said in plain words."""
    if _disk_full(err, folder):
        return DiskFullError(_FULL, path=final, fix=_fix(folder, True))
    return err


def _disk_full(err: BaseException | None, folder: Path) -> bool:
    """Whether ``err`` (or an error it came from) means no room was left. torch.save says so only as
    'unexpected pos …' or 'file write failed', so a writer's RuntimeError counts when the disk has under 1 MiB."""
    seen = err
    while seen is not None:
        if isinstance(seen, OSError) and seen.errno in DISK_FULL:
            return True
        if "no space left" in str(seen).lower():
            return True
        seen = seen.__cause__ or seen.__context__
    if isinstance(err, RuntimeError):
        try:
            return shutil.disk_usage(folder).free < 1 << 20
        except OSError:
            return False
    return False


def write_json(path: str | os.PathLike, data: Any) -> None:
    """Write ``data`` as indented JSON, atomically."""
    with atomic_path(path) as tmp:
        tmp.write_text(json.dumps(data, indent=2) + "\n", encoding="utf-8")


# -- outputs against inputs ----------------------------------------------------------------------------------------
def same_file(a: PathLike, b: PathLike) -> bool:
    """True when ``a`` and ``b`` are one file: the same path after resolving symlinks and ``..``, or (both existing)
    the same inode — a hard link or a second mount of it."""
    try:
        if os.path.exists(a) and os.path.exists(b) and os.path.samefile(a, b):
            return True
    except OSError:
        pass
    return os.path.realpath(a) == os.path.realpath(b)


Paths = Union[PathLike, Iterable[PathLike], None]  # noqa: UP007 - evaluated at run time (Python 3.9)


def _each(paths: Paths) -> list[PathLike]:
    if paths is None:
        return []
    if isinstance(paths, (str, os.PathLike)):
        return [paths] if os.fspath(paths) else []
    return [p for p in paths if p is not None and os.fspath(p)]


def check_outputs(outputs: Mapping[str, Paths], inputs: Mapping[str, Paths]) -> None:
    """Refuse, before any work, a run whose output would overwrite one of its inputs or another of its outputs.

    ``outputs`` and ``inputs`` map what a file is to the user ('model package', 'image', …) to a path, a list of
    paths, or None. Symlinks, ``..`` and hard links count as the same file. Raises :class:`OutputError`.
    """
    seen: list[tuple[str, PathLike]] = []
    for what, paths in outputs.items():
        for out in _each(paths):
            for role, given in inputs.items():
                for inp in _each(given):
                    if same_file(out, inp):
                        raise OutputError(
                            f"the {what} would overwrite the {role} {os.fspath(inp)}",
                            path=out,
                            fix=f"write the {what} to a new file name; the inputs are never overwritten",
                        )
            for other, earlier in seen:
                if same_file(out, earlier):
                    raise OutputError(
                        f"the {what} and the {other} would be the same file",
                        path=out,
                        fix=f"give the {what} and the {other} their own file names",
                    )
            check_writable(out, what)
            seen.append((what, out))


def check_writable(path: PathLike, what: str = "output") -> None:
    """Raise :class:`OutputError` unless a file can be written at ``path``: not a folder, in an existing folder
    where a file can really be created (a probe file is made and removed: permissions, read-only mounts, /proc,
    a full disk)."""
    p = Path(path)
    if p.is_dir():
        raise OutputError(f"the {what} is a folder, not a file", path=p,
                          fix=f"give a file name, e.g. {p / ('output' + _suffix_for(what))}")
    folder = p.parent if str(p.parent) else Path(".")
    if not folder.exists():
        raise OutputError(f"the folder of the {what} does not exist", path=folder,
                          fix="create the folder first, or choose an existing one")
    if not folder.is_dir():
        raise OutputError(f"the {what} is to go inside {folder}, which is a file, not a folder", path=p,
                          fix="pick a path inside an existing folder")
    try:
        fd, probe = tempfile.mkstemp(prefix=".geofm-probe-", dir=folder)
    except OSError as err:
        if err.errno in DISK_FULL:
            raise DiskFullError(f"the disk is full: not even an empty {what} can be created", path=p,
                              fix=f"free space on the disk of {folder}, or write the {what} elsewhere") from err
        raise OutputError(f"the {what} cannot be written in {folder} ({err.strerror or err})", path=p,
                          fix="pick a folder you can write to (your home or project folder)") from err
    os.close(fd)
    os.unlink(probe)


def _suffix_for(what: str) -> str:
    return ".geofm" if "package" in what else ".json" if "JSON" in what else ".tif"


def train_outputs(output: PathLike) -> dict[str, Path]:
    """The files a training run writes for the package ``output``: the package, its .last.ckpt and .metrics.json."""
    from .checkpoint import checkpoint_path, metrics_path  # here: checkpoint imports this module

    return {"model package": Path(output), "resume checkpoint (.last.ckpt)": checkpoint_path(output),
            "metrics file (.metrics.json)": metrics_path(output)}


def check_train_outputs(config: Any, config_file: PathLike | None = None) -> None:
    """:func:`check_outputs` for a :class:`~geofm.core.config.TrainConfig` (and the JSON file it came from)."""
    weights = config.weights if config.weights and os.path.isfile(config.weights) else None
    outputs = train_outputs(config.output)
    check_outputs(outputs, {"image": config.images, "labels": config.labels, "weights file": weights,
                            "config file": config_file})
    # A resumed run reads its own .last.ckpt whole at the start and rewrites it each epoch: that one may be both.
    check_outputs({k: v for k, v in outputs.items() if not k.startswith("resume checkpoint")},
                  {"checkpoint to resume from": config.resume})
