"""Named choices (backbones, decoders, weight sources, …): one registry each, read by every front and by tests.

An entry names what it builds as ``"module:attribute"`` inside ``geofm.core`` and imports it only when asked,
so listing the choices (the CLI's ``--help``, a QGIS dialog, config validation) never imports torch.
"""

from __future__ import annotations

import importlib
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

from .errors import ConfigError


@dataclass(frozen=True)
class Entry:
    """One choice: its stored ``name`` (never an index), a ``label`` for dialogs and a one-line ``help``."""

    name: str
    label: str
    help: str
    target: str | None = None  # "module:attribute" relative to geofm.core, or None for a plain value
    extra: dict[str, Any] = field(default_factory=dict)

    def load(self) -> Any:
        """The object ``target`` names, imported now."""
        if self.target is None:
            raise ConfigError(f"'{self.name}' names no object to build")
        module, _, attribute = self.target.partition(":")
        return getattr(importlib.import_module(f"{__package__}.{module}"), attribute)


class Registry:
    """An ordered set of :class:`Entry`; the first one added is listed first (and is no default by itself)."""

    def __init__(self, what: str) -> None:
        self.what = what
        self._entries: dict[str, Entry] = {}

    def add(self, name: str, label: str, help: str, target: str | None = None, **extra: Any) -> None:
        """Register a choice; names are unique."""
        if name in self._entries:
            raise ValueError(f"{self.what} '{name}' is registered twice")
        self._entries[name] = Entry(name, label, help, target, extra)

    def names(self) -> tuple[str, ...]:
        return tuple(self._entries)

    def get(self, name: str) -> Entry:
        """The entry called ``name``; ConfigError listing the valid names otherwise."""
        try:
            return self._entries[name]
        except (KeyError, TypeError):
            raise ConfigError(f"unknown {self.what} {name!r}", fix=f"choose one of: {', '.join(self._entries)}") from None

    def load(self, name: str) -> Any:
        return self.get(name).load()

    def __contains__(self, name: object) -> bool:
        return name in self._entries

    def __iter__(self) -> Iterator[Entry]:
        return iter(self._entries.values())

    def __len__(self) -> int:
        return len(self._entries)
