"""Settings declared once: type, default, range or choices, unit, help for an analyst, level, and which fronts
(command line, QGIS dialog, Processing, remembered QGIS settings) expose each one.

A config dataclass declares every field with :func:`setting`; the CLI flags, Processing parameters, dialog
widgets and QgsSettings keys are derived from those declarations, and :func:`from_dict` checks types when a
stored or hand-written config is loaded. Stored configs carry ``schema_version``; older ones are upgraded.
"""

from __future__ import annotations

import math
import re
from collections.abc import Callable
from dataclasses import MISSING, Field, dataclass, field, fields
from typing import Any

from .errors import ConfigError
from .registries import ALL as REGISTRIES
from .registry import Registry

FRONTS = ("cli", "dialog", "processing", "saved")
#: Settings of older versions and what replaced them, for the message about an unknown key.
RENAMED = {"stride": "overlap"}
KINDS = ("int", "float", "bool", "str", "path", "paths", "choice", "weights", "floats", "ints", "classes", "bbox",
         "geojson")


@dataclass(frozen=True)
class Setting:
    """What a front needs to show one setting. ``fronts`` says, for each of :data:`FRONTS`, whether it exposes it."""

    name: str
    kind: str
    label: str
    help: str
    fronts: dict[str, bool]
    unit: str = ""
    minimum: float | None = None
    maximum: float | None = None
    choices: str | None = None  # a key of registries.ALL
    nullable: bool = False
    advanced: bool = False
    flags: tuple[str, ...] = ()  # CLI flags; default --name-with-dashes
    percent: bool = False  # a share 0..1 that dialogs show as 0..100 %
    zero_means: str = ""  # what 0 stands for, shown by dialogs in place of the number ("automatic", "never")

    @property
    def registry(self) -> Registry | None:
        return REGISTRIES[self.choices] if self.choices else None

    def exposed(self, front: str) -> bool:
        return self.fronts[front]

    def cli_flags(self) -> tuple[str, ...]:
        return self.flags or ("--" + self.name.replace("_", "-"),)

    def describe(self) -> str:
        """The help text with unit and range, as a tooltip or ``--help`` shows it."""
        extra = []
        if self.minimum is not None or self.maximum is not None:
            low = "" if self.minimum is None else f"{self.minimum:g}"
            high = "" if self.maximum is None else f"{self.maximum:g}"
            extra.append(f"{low}…{high}{' ' + self.unit if self.unit else ''}")
        elif self.unit:
            extra.append(self.unit)
        if self.registry is not None:
            extra.append("one of " + ", ".join(self.registry.names()))
        return self.help + (f" ({'; '.join(extra)})" if extra else "")


def setting(default: Any = MISSING, *, kind: str, label: str, help: str, cli: bool, dialog: bool, processing: bool,
            saved: bool, default_factory: Callable[[], Any] | Any = MISSING, **options: Any) -> Any:
    """A dataclass field carrying its :class:`Setting`. Every front must be decided: the four are required."""
    if kind not in KINDS:
        raise ValueError(f"unknown setting kind {kind!r}")
    meta = {"kind": kind, "label": label, "help": help,
            "fronts": {"cli": cli, "dialog": dialog, "processing": processing, "saved": saved}, **options}
    if default_factory is not MISSING:
        return field(default_factory=default_factory, metadata={"setting": meta})
    return field(default=default, metadata={"setting": meta})


def settings_of(cls: type) -> list[Setting]:
    """Every :class:`Setting` of config dataclass ``cls``, in declaration order."""
    return [_setting(f) for f in fields(cls)]


def setting_of(cls: type, name: str) -> Setting:
    for f in fields(cls):
        if f.name == name:
            return _setting(f)
    raise KeyError(name)


def default_of(cls: type, name: str) -> Any:
    f = next(f for f in fields(cls) if f.name == name)
    return f.default_factory() if f.default_factory is not MISSING else f.default


def _setting(f: Field) -> Setting:
    meta = f.metadata.get("setting")
    if meta is None:
        raise TypeError(f"field {f.name!r} is not declared with schema.setting(); decide its fronts")
    return Setting(name=f.name, **meta)


# -- loading -----------------------------------------------------------------------------------------------------
def check_values(cls: type, data: Any, source: str = "the config") -> dict[str, Any]:
    """``data`` checked against the settings of ``cls``: a dict, known keys, the right type for each value.

    Returns the values converted where that is lossless (an int where a float belongs). ConfigError names the
    setting, what was given and what is expected: never a string read as a list of characters.
    """
    if not isinstance(data, dict):
        raise ConfigError(f"{source} must be a JSON object of settings, not a {_json_type(data)}",
                          fix='write it as {"images": ["image.tif"], "labels": ["labels.tif"], …}')
    known = {s.name: s for s in settings_of(cls)}
    unknown = sorted(set(data) - set(known))
    if unknown:
        renamed = [f"'{old}' is now '{new}'" for old, new in RENAMED.items() if old in unknown and new in known]
        raise ConfigError(f"unknown setting(s) in {source}: {', '.join(unknown)}",
                          fix="; ".join(renamed) + ("; " if renamed else "") + f"use only: {', '.join(sorted(known))}")
    return {name: _check(known[name], value, source) for name, value in data.items()}


def _check(s: Setting, value: Any, source: str) -> Any:
    if value is None:
        if s.nullable:
            return None
        raise ConfigError(f"setting '{s.name}' in {source} is empty (null)", fix=f"give a value: {s.describe()}")
    checker = _CHECKERS[s.kind]
    try:
        return checker(s, value)
    except _Wrong as wrong:
        if s.kind == "choice" and isinstance(value, str):
            raise ConfigError(f"unknown {s.registry.what} {value!r} in {source}",
                              fix=f"choose one of: {', '.join(s.registry.names())}") from None
        raise ConfigError(f"setting '{s.name}' in {source} must be {wrong.expected}, not {_shown(value)}",
                          fix=f"{s.help}{' e.g. ' + wrong.example if wrong.example else ''}") from None


class _Wrong(Exception):
    def __init__(self, expected: str, example: str = "") -> None:
        self.expected, self.example = expected, example


def _int(s: Setting, v: Any) -> int:
    if isinstance(v, bool) or not isinstance(v, (int, float)) or (isinstance(v, float) and not v.is_integer()):
        raise _Wrong("a whole number", str(s.minimum or 1))
    return _in_range(s, int(v))


def _float(s: Setting, v: Any) -> float:
    if isinstance(v, bool) or not isinstance(v, (int, float)) or not math.isfinite(v):
        raise _Wrong("a finite number")
    return _in_range(s, float(v))


def _in_range(s: Setting, v: float) -> Any:
    if (s.minimum is not None and v < s.minimum) or (s.maximum is not None and v > s.maximum):
        low = "-∞" if s.minimum is None else f"{s.minimum:g}"
        high = "∞" if s.maximum is None else f"{s.maximum:g}"
        raise _Wrong(f"between {low} and {high}{' ' + s.unit if s.unit else ''}")
    return v


def _bool(s: Setting, v: Any) -> bool:
    if not isinstance(v, bool):
        raise _Wrong("true or false")
    return v


def _str(s: Setting, v: Any) -> str:
    if not isinstance(v, str):
        raise _Wrong("text")
    return v


def _choice(s: Setting, v: Any) -> str:
    registry = s.registry
    if not isinstance(v, str) or (v not in registry and not _extra_choice(s, v)):
        raise _Wrong("one of " + ", ".join(registry.names()))
    return v


def _extra_choice(s: Setting, v: str) -> bool:
    """Choices a registry cannot list: ``cuda:N`` devices."""
    return s.choices == "devices" and re.fullmatch(r"cuda:\d+", v) is not None


def _weights(s: Setting, v: Any) -> str:
    if not isinstance(v, str) or not v:
        raise _Wrong(f"one of {', '.join(s.registry.names())} or the path of a weights file")
    return v


def _list_of(item: Callable[[Setting, Any], Any], what: str, example: str) -> Callable[[Setting, Any], list]:
    def check(s: Setting, v: Any) -> list:
        if not isinstance(v, list):
            raise _Wrong(f"a list of {what}", example)
        try:
            return [item(s, x) for x in v]
        except _Wrong:
            raise _Wrong(f"a list of {what}", example) from None
    return check


def _classes(s: Setting, v: Any) -> list[dict[str, Any]]:
    example = '[{"value": 1, "name": "water", "colour": "#1f78b4"}]'
    if not isinstance(v, list) or not all(isinstance(c, dict) for c in v):
        raise _Wrong("a list of classes", example)
    from .classes import check_class_list  # here: classes imports rasterio, which the schema does not need
    from .errors import LabelError

    try:  # each class's value, name and colour, now rather than when the run starts
        return check_class_list(v)
    except LabelError as err:
        raise ConfigError(f"setting '{s.name}': {err.problem}", fix=err.fix) from None


def _bbox(s: Setting, v: Any) -> tuple[float, ...]:
    if not isinstance(v, (list, tuple)) or len(v) != 4:
        raise _Wrong("four numbers (minx, miny, maxx, maxy)", "[500000, 4100000, 510000, 4110000]")
    return tuple(_float(s, x) for x in v)


def _geojson(s: Setting, v: Any) -> dict[str, Any]:
    if not isinstance(v, dict) or v.get("type") not in ("Polygon", "MultiPolygon", "Feature", "FeatureCollection"):
        raise _Wrong("a GeoJSON Polygon or MultiPolygon (geometry, Feature or FeatureCollection)")
    return v


_CHECKERS: dict[str, Callable[[Setting, Any], Any]] = {
    "int": _int, "float": _float, "bool": _bool, "str": _str, "path": _str, "choice": _choice, "weights": _weights,
    "paths": _list_of(_str, "file paths", '["image.tif"]'),
    "floats": _list_of(_float, "numbers", "[0]"),
    "ints": _list_of(_int, "whole numbers", "[2, 1, 0]"),
    "classes": _classes, "bbox": _bbox, "geojson": _geojson,
}


def _json_type(value: Any) -> str:
    return {list: "list", str: "string", int: "number", float: "number", bool: "true/false",
            type(None): "null"}.get(type(value), type(value).__name__)


def _shown(value: Any) -> str:
    text = repr(value)
    return f"{_json_type(value)} {text if len(text) < 60 else text[:57] + '…'}"


# -- versions ----------------------------------------------------------------------------------------------------
Upgrader = Callable[[dict[str, Any]], dict[str, Any]]


def upgrade(data: dict[str, Any], current: int, upgraders: dict[int, Upgrader], what: str, source: str,
            version_if_missing: int) -> dict[str, Any]:
    """``data`` (a stored config, with or without ``schema_version``) brought to version ``current``.

    ``upgraders[n]`` turns version n into n + 1. A config newer than ``current`` is refused with the version
    it needs: an older geofm cannot guess what a newer one meant.
    """
    data = dict(data)
    version = data.pop("schema_version", version_if_missing)
    if isinstance(version, bool) or not isinstance(version, int) or version < 1:
        raise ConfigError(f"{source} has an unknown schema version {version!r}", fix="write it with geofm again")
    if version > current:
        raise ConfigError(f"{source} was written by a newer geofm ({what} schema version {version}; this geofm "
                          f"reads version {current} at most)", fix="update geofm to open it")
    for v in range(version, current):
        data = upgraders[v](data)
    return data
