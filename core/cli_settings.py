"""Command-line flags derived from the settings schema: one flag per setting the command line exposes."""

from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import Any

from .schema import Setting, default_of, settings_of


def add_setting_flags(parser: argparse.ArgumentParser, cls: type, skip: tuple[str, ...] = ()) -> None:
    """Add a flag for every setting of ``cls`` with ``cli`` exposed (except ``skip``); unset flags stay None."""
    for s in settings_of(cls):
        if s.exposed("cli") and s.name not in skip:
            parser.add_argument(*s.cli_flags(), dest=s.name, help=_help(s, cls), **_argument(s))


def values_from_args(args: argparse.Namespace, cls: type) -> dict[str, Any]:
    """The settings given on the command line (flags left out are not in the dict)."""
    return {s.name: getattr(args, s.name) for s in settings_of(cls)
            if s.exposed("cli") and getattr(args, s.name, None) is not None}


def _argument(s: Setting) -> dict[str, Any]:
    if s.kind == "bool":
        return {"action": argparse.BooleanOptionalAction, "default": None}
    if s.kind == "paths":
        return {"action": "append", "metavar": "PATH"}
    if s.kind in ("int", "ints"):
        return {"type": int, **({"nargs": "+"} if s.kind == "ints" else {})}
    if s.kind in ("float", "floats", "bbox"):
        nargs = {"floats": {"nargs": "+"}, "bbox": {"nargs": 4, "metavar": ("MINX", "MINY", "MAXX", "MAXY")}}
        return {"type": float, **nargs.get(s.kind, {})}
    if s.kind == "classes":
        return {"type": _json_classes, "metavar": "JSON"}
    if s.kind == "choice":
        return {"metavar": "|".join(s.registry.names())}
    return {}


def _help(s: Setting, cls: type) -> str:
    default = default_of(cls, s.name)
    shown = "" if default in (None, [], "") or s.kind == "bool" else f" [default: {default}]"
    return (s.describe() + shown).replace("%", "%%")


def _json_classes(text: str) -> list[dict[str, Any]]:
    """A JSON list of classes, given inline or as the path of a JSON file."""
    path = Path(text)
    try:
        value = json.loads(path.read_text(encoding="utf-8") if path.is_file() else text)
    except ValueError as err:
        raise argparse.ArgumentTypeError(f"not a JSON list of classes: {err}") from err
    return value
