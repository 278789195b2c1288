"""Training settings remembered between QGIS sessions (QgsSettings): the keys are the settings the schema marks
``saved``, with the engine's defaults."""

from __future__ import annotations

from typing import Any

from qgis.core import QgsSettings

PREFIX = "geofm/train/"


def saved_settings() -> list:
    """The TrainConfig settings (core.schema.Setting) remembered in QgsSettings."""
    from ..core.config import TrainConfig
    from ..core.schema import settings_of

    return [s for s in settings_of(TrainConfig) if s.exposed("saved")]


def defaults() -> dict[str, Any]:
    from ..core.config import TrainConfig
    from ..core.schema import default_of

    return {s.name: default_of(TrainConfig, s.name) for s in saved_settings()}


def load() -> dict[str, Any]:
    """Remembered values, each checked as a config checks it; the default where nothing (valid) is remembered."""
    from ..core.config import TrainConfig
    from ..core.errors import ConfigError
    from ..core.schema import check_values

    store = QgsSettings()
    out = defaults()
    for key, default in list(out.items()):
        value = store.value(PREFIX + key, None)
        if value is None:
            continue
        try:
            value = type(default)(value) if not isinstance(default, bool) else str(value).lower() in ("true", "1")
            out.update(check_values(TrainConfig, {key: value}, "the remembered settings"))
        except (TypeError, ValueError, ConfigError):
            pass  # a value from an older version that no longer fits: the default
    return out


def save(values: dict[str, Any]) -> None:
    """Remember ``values`` (only the saved settings)."""
    store = QgsSettings()
    for key in defaults():
        if key in values:
            store.setValue(PREFIX + key, values[key])
